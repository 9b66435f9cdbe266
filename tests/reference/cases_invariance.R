## Measurement invariance (issue 4): semTools::measEq.syntax (multi-group
## and longitudinal), score tests, robust / FIML invariance sequences.

LONG_PATH <- file.path(DATA_DIR, "long_sim.csv")

LONG_MODEL <- paste(
  "B1 =~ b1_t1 + b2_t1 + b3_t1",
  "K1 =~ k1_t1 + k2_t1 + k3_t1",
  "B2 =~ b1_t2 + b2_t2 + b3_t2",
  "K2 =~ k1_t2 + k2_t2 + k3_t2",
  sep = "\n")

## Options lavaan::lavaan() was called with by measEq.syntax(return.fit=TRUE)
measeq_call_options <- function(fit) {
  cl <- as.list(fit@call)[-1]
  drop <- c("model", "data", "debug", "warn", "do.fit")
  cl <- cl[setdiff(names(cl), drop)]
  lapply(cl, eval)
}

## Run measEq.syntax twice (syntax only, then return.fit=TRUE) and write a case.
## me_args: measEq.syntax arguments other than configural.model / data.
run_measeq <- function(case, configural, data, data_path, me_args,
                       extras_fun = NULL, notes = NULL) {
  syn <- capture_warnings(do.call(measEq.syntax,
           c(list(configural.model = configural, data = data), me_args)))
  syntax <- as.character(syn$value)
  fr <- capture_warnings(do.call(measEq.syntax,
           c(list(configural.model = configural, data = data), me_args,
             list(return.fit = TRUE))))
  fitres <- list(fit = fr$value, warnings = c(syn$warnings, fr$warnings))
  fit <- fitres$fit
  opts <- measeq_call_options(fit)
  me_json <- lapply(me_args, function(v) if (is.list(v)) lapply(v, I)
                    else if (is.character(v) && length(v) > 1) I(v) else v)
  names(me_json) <- gsub(".", "_", names(me_json), fixed = TRUE)
  for (nm in intersect(names(me_json), c("group_equal", "long_equal")))
    me_json[[nm]] <- I(setdiff(me_args[[gsub("_", ".", nm, fixed = TRUE)]], ""))
  extras <- list(measeq = list(configural_model = configural,
                               arguments = me_json,
                               syntax = syntax))
  if (!is.null(extras_fun)) extras <- c(extras, extras_fun(fit))
  case_json(case, fitres, "lavaan", syntax, opts, data_path, extras,
            notes = c(paste("Fit produced by semTools::measEq.syntax(return.fit=TRUE):",
                            "lavaan::lavaan(model = measeq$syntax, data, <call.options>)."),
                      notes))
  fitres
}

run_invariance <- function() {
  hs   <- read_data(HS_PATH)
  mcar <- read_data(MCAR_PATH)
  long <- read_data(LONG_PATH)

  ## ---- semTools measEq.syntax, multi-group by school ---------------------------
  steps <- list(
    configural  = "",
    metric      = "loadings",
    scalar      = c("loadings", "intercepts"),
    strict      = c("loadings", "intercepts", "residuals"),
    lvvariances = c("loadings", "intercepts", "residuals", "lv.variances"),
    means       = c("loadings", "intercepts", "residuals", "lv.variances", "means"))
  me_fits <- list()
  for (st in names(steps)) {
    nm <- paste0("hs_measeq_", st)
    ex <- if (st == "means") function(fit) list(lrt = list(get_lrt(c(me_fits, list(means = fit))))) else NULL
    me_fits[[st]] <- run_measeq(nm, HS_MODEL, hs, HS_PATH,
                                list(group = "school", group.equal = steps[[st]]),
                                ex)$fit
  }

  ## ---- score tests on lavaan's own scalar fit ------------------------------------
  sc_opts <- list(group = "school", group.equal = c("loadings", "intercepts"))
  run_case("hs_score_tests", "cfa", HS_MODEL, hs, HS_PATH, sc_opts,
           function(fit) list(score_tests = get_score_tests(fit),
                              score_tests_epc = get_score_tests(fit, epc = TRUE)),
           notes = paste("Same fit as hs_scalar. score_tests = lavTestScore(fit);",
                         "score_tests_epc = lavTestScore(fit, epc = TRUE). The uni",
                         "lhs/rhs are parTable plabels, resolved in lhs_param/rhs_param."))

  ## ---- longitudinal measEq.syntax -----------------------------------------------
  lsteps <- list(
    configural = "",
    metric     = "loadings",
    scalar     = c("loadings", "intercepts"),
    strict     = c("loadings", "intercepts", "residuals"))
  l_fits <- list()
  for (st in names(lsteps)) {
    nm <- paste0("long_sim_", st)
    ex <- if (st == "strict") function(fit) list(lrt = list(get_lrt(c(l_fits, list(strict = fit))))) else NULL
    l_fits[[st]] <- run_measeq(nm, LONG_MODEL, long, LONG_PATH,
                               list(longFacNames = list(B = c("B1", "B2"),
                                                        K = c("K1", "K2")),
                                    long.equal = lsteps[[st]]),
                               ex,
                               notes = paste("Two-occasion simulated data (N=300);",
                                             "default ID.fac='std.lv' and auto='all'",
                                             "(same-indicator residuals correlated",
                                             "across occasions)."))$fit
  }

  ## ---- invariance sequences: MLR (complete) and FIML (MCAR holes) ---------------
  gsteps <- steps[c("configural", "metric", "scalar", "strict")]
  for (variant in c("mlr", "fiml")) {
    fits <- list()
    for (st in names(gsteps)) {
      nm <- sprintf("hs_%s_sequence_%s", variant, st)
      o <- list(group = "school")
      if (!identical(gsteps[[st]], "")) o$group.equal <- gsteps[[st]]
      if (variant == "mlr") { o$estimator <- "MLR"; d <- hs; dp <- HS_PATH }
      else { o$missing <- "ml"; d <- mcar; dp <- MCAR_PATH }
      fr <- fit_capture("cfa", HS_MODEL, d, o)
      fits[[st]] <- fr$fit
      extras <- list(vcov = get_vcov(fr$fit))
      if (length(fits) > 1) {
        prev <- names(fits)[length(fits) - 1]
        extras$lrt <- list(get_lrt(fits[c(prev, st)]))
      }
      if (st == "strict") extras$lrt_all <- list(get_lrt(fits))
      case_json(nm, fr, "cfa", HS_MODEL, o, dp, extras,
                notes = paste("lrt: lavTestLRT(previous step, this step);",
                              "lrt_all (strict only): lavTestLRT(all four steps)."))
    }
  }
  invisible(TRUE)
}
