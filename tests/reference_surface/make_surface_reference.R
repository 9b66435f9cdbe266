## lavaan reference for the response-surface module (run from the repo root, after
## `python tests/reference_surface/make_inputs.py`):
##   Rscript tests/reference_surface/make_surface_reference.R
## Reads data/rsa_sim.csv and syntax/<case>.lav, centres both predictors at the scale
## midpoint 2.5, adds the polynomial terms, fits each syntax with lavaan::sem (ML,
## meanstructure, fixed.x = TRUE; multi-group by `format` for *_groups cases) and writes
## json/<case>.json. Schema: see README.md in this folder.

suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})

DIR <- "tests/reference_surface"
dir.create(file.path(DIR, "json"), showWarnings = FALSE)
raw <- read.csv(file.path(DIR, "data", "rsa_sim.csv"), stringsAsFactors = FALSE)

dat <- raw
dat$t_bond <- raw$t_bond - 2.5
dat$c_bond <- raw$c_bond - 2.5
dat$t_bond2 <- dat$t_bond^2
dat$t_bond_c_bond <- dat$t_bond * dat$c_bond
dat$c_bond2 <- dat$c_bond^2

cases <- sub("\\.lav$", "", list.files(file.path(DIR, "syntax"), pattern = "\\.lav$"))

for (case in cases) {
  model <- paste(readLines(file.path(DIR, "syntax", paste0(case, ".lav"))), collapse = "\n")
  grouped <- grepl("_groups$", case)
  warns <- character()
  fit <- withCallingHandlers(
    if (grouped) {
      sem(model, data = dat, group = "format", estimator = "ML", meanstructure = TRUE)
    } else {
      sem(model, data = dat, estimator = "ML", meanstructure = TRUE)
    },
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  pe <- parameterEstimates(fit, remove.eq = FALSE, remove.ineq = FALSE)
  if (!"group" %in% names(pe)) pe$group <- 1L
  glab <- lavInspect(fit, "group.label")
  pe$group_label <- ifelse(pe$op %in% c(":=", "==", "<", ">") | length(glab) == 0, "",
                           glab[pmax(pe$group, 1L)])
  V <- lavInspect(fit, "vcov")
  fm <- fitMeasures(fit)
  out <- list(
    case = case,
    r_version = R.version.string,
    lavaan_version = as.character(packageVersion("lavaan")),
    data = file.path(DIR, "data", "rsa_sim.csv"),
    centering = 2.5,
    call = list(model = model, estimator = "ML", meanstructure = TRUE,
                group = if (grouped) "format" else NULL),
    group_labels = if (length(glab)) as.list(glab) else list(),
    nobs = as.list(lavInspect(fit, "nobs")),
    converged = lavInspect(fit, "converged"),
    warnings = as.list(warns),
    parameters = lapply(seq_len(nrow(pe)), function(i) list(
      lhs = pe$lhs[i], op = pe$op[i], rhs = pe$rhs[i], group = pe$group_label[i],
      label = pe$label[i], est = pe$est[i], se = pe$se[i], z = pe$z[i],
      pvalue = pe$pvalue[i], ci_lower = pe$ci.lower[i], ci_upper = pe$ci.upper[i])),
    vcov = list(names = as.list(rownames(V)), matrix = unname(lapply(seq_len(nrow(V)),
                function(i) as.numeric(V[i, ])))),
    fit = as.list(fm[c("npar", "logl", "aic", "bic", "ntotal", "chisq", "df")])
  )
  if (case == "rsa_full_groups") {
    wald <- list()
    for (k in 1:5) {
      con <- sprintf("a%d_group == a%d_individual", k, k)
      w <- lavTestWald(fit, con)
      wald[[paste0("a", k)]] <- list(constraints = con, stat = w$stat, df = w$df,
                                      p_value = w$p.value)
    }
    con <- paste(sprintf("a%d_group == a%d_individual", 1:5, 1:5), collapse = "\n")
    w <- lavTestWald(fit, con)
    wald[["all"]] <- list(constraints = con, stat = w$stat, df = w$df, p_value = w$p.value)
    out$wald <- wald
  }
  write_json(out, file.path(DIR, "json", paste0(case, ".json")),
             auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE, null = "null")
  cat(sprintf("%-18s converged=%s npar=%g logl=%.4f chisq=%.4f df=%g warnings=%d\n",
              case, out$converged, fm["npar"], fm["logl"], fm["chisq"], fm["df"],
              length(warns)))
}
