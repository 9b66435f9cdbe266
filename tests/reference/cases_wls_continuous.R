## lavaan references for the weighted-least-squares family on continuous data (issue 13
## item 5): DWLS, WLSM, WLSMV, ULSM, ULSMV, mean-and-variance adjusted tests, two groups
## (GLS, WLS, ULS, WLSMV, MLMV; metric models with lavTestLRT), a model with observed
## covariates (fixed.x TRUE and FALSE), mean structures (GLS, WLS), and lavaan's
## sample statistics, weights and Gamma (lavInspect "wls.obs", "wls.v", "gamma").
##
## Usage (from the repository root):  Rscript tests/reference/cases_wls_continuous.R
## Writes tests/reference/json/w2_wls_*.json (schema as the wave-2 files:
## tests/reference/README.md, section "Wave 2"; extra keys listed per case in "notes").

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")   # helpers.R + wave-2 helpers (no cases)

W2_RESTRICTED_MODEL <- paste("visual =~ x1 + x2 + x3",
                             "textual =~ x4 + equal(\"visual=~x2\")*x5 + x6",
                             "speed =~ x7 + x8 + x9", sep = "\n")
WLS_COV_MODEL <- paste("visual =~ x1 + x2 + x3",
                       "textual =~ x4 + x5 + x6",
                       "visual + textual ~ ageyr + sex", sep = "\n")
LRT_METHODS <- c("default", "satorra.2000", "satorra.bentler.2001", "satorra.bentler.2010")

## lavaan's statistics, weights and Gamma per group (lavInspect), as named matrices
get_wls_pieces <- function(fit) {
  gl <- group_labels(fit)
  obs <- per_group(fit, lavInspect(fit, "wls.obs"))
  wv <- per_group(fit, lavInspect(fit, "wls.v"))
  gam <- per_group(fit, lavInspect(fit, "gamma"))
  lapply(seq_along(obs), function(g) {
    out <- list(group = if (length(gl)) gl[g] else "",
                wls_obs = I(unname(as.numeric(obs[[g]]))),
                wls_v = unname(unclass(as.matrix(wv[[g]]))))
    if (!is.null(gam[[g]])) out$gamma <- unname(unclass(as.matrix(gam[[g]])))
    out
  })
}

run_wls_continuous <- function() {
  hs <- read_data(HS_PATH)
  ex <- function(fit) list(tests = get_tests(fit), vcov = get_vcov(fit))
  ex_pieces <- function(fit) c(ex(fit), list(wls_pieces = get_wls_pieces(fit)))

  ## ---- one group: the robust variants --------------------------------------------------
  fulls <- list()
  for (est in c("DWLS", "WLSM", "WLSMV", "ULSM", "ULSMV")) {
    lo <- tolower(est)
    fulls[[est]] <- run_case(paste0("w2_wls_hs_", lo), "cfa", W2_HS_MODEL, hs, HS_PATH,
                             list(estimator = est),
                             if (est %in% c("WLSMV", "DWLS")) ex_pieces else ex)$fit
  }
  for (est in c("WLSM", "WLSMV", "ULSMV")) {
    full <- fulls[[est]]
    run_case(paste0("w2_wls_hs_", tolower(est), "_restricted"), "cfa", W2_RESTRICTED_MODEL,
             hs, HS_PATH, list(estimator = est),
             function(fit) c(ex(fit), list(lrt = get_lrt_methods(
               list(full = full, restricted = fit), LRT_METHODS))),
             notes = paste("x5's loading equal to x2's; lrt: lavTestLRT(full, restricted,",
                           "method = m) with full = w2_wls_hs_", tolower(est)))
  }
  run_case("w2_wls_hs_dwls_mva", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(estimator = "DWLS", se = "robust.sem", test = "mean.var.adjusted"), ex,
           notes = "DWLS with robust.sem SEs and the mean-and-variance adjusted test")
  run_case("w2_wls_hs_wls_meanstructure", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(estimator = "WLS", meanstructure = TRUE), ex_pieces,
           notes = "wls_pieces: lavInspect wls.obs, wls.v, gamma (means first)")
  run_case("w2_wls_hs_gls_meanstructure", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(estimator = "GLS", meanstructure = TRUE), ex_pieces,
           notes = "wls_pieces: lavInspect wls.obs, wls.v (means first)")

  ## ---- edge cases: a just-identified model (df 0), listwise deletion -------------------------
  run_case("w2_wls_hs_just_identified_wlsmv", "cfa", "visual =~ x1 + x2 + x3", hs, HS_PATH,
           list(estimator = "WLSMV"), ex, notes = "one factor, three indicators: df = 0")
  mcar_path <- file.path(DATA_DIR, "hs_mcar.csv")
  run_case("w2_wls_hs_mcar_wlsmv", "cfa", W2_HS_MODEL, read_data(mcar_path), mcar_path,
           list(estimator = "WLSMV"), ex,
           notes = "hs_mcar.csv (MCAR holes): lavaan's default listwise deletion")
  run_case("w2_wls_hs_mcar_gls_groups", "cfa", W2_HS_MODEL, read_data(mcar_path), mcar_path,
           list(estimator = "GLS", group = "school"), ex,
           notes = "hs_mcar.csv by school, listwise deletion")

  ## ---- two groups ------------------------------------------------------------------------
  for (est in c("GLS", "WLS", "ULS", "WLSMV", "MLMV")) {
    lo <- tolower(est)
    conf <- run_case(paste0("w2_wls_hs_groups_", lo), "cfa", W2_HS_MODEL, hs, HS_PATH,
                     list(estimator = est, group = "school"),
                     if (est == "WLS") ex_pieces else ex)$fit
    if (est %in% c("WLSMV", "MLMV", "GLS"))
      run_case(paste0("w2_wls_hs_groups_", lo, "_metric"), "cfa", W2_HS_MODEL, hs, HS_PATH,
               list(estimator = est, group = "school", group.equal = "loadings"),
               function(fit) c(ex(fit), list(lrt = get_lrt_methods(
                 list(configural = conf, metric = fit),
                 if (est == "GLS") "default" else LRT_METHODS))),
               notes = paste0("lrt: lavTestLRT(configural, metric, method = m), configural = ",
                              "w2_wls_hs_groups_", lo))
  }

  ## ---- observed covariates (fixed.x) ------------------------------------------------------
  for (spec in list(list("GLS", TRUE), list("WLS", TRUE), list("WLS", FALSE),
                    list("WLSMV", TRUE), list("WLSMV", FALSE), list("ULS", TRUE),
                    list("ULSMV", FALSE), list("MLMV", TRUE))) {
    est <- spec[[1]]; fx <- spec[[2]]
    run_case(paste0("w2_wls_cov_", tolower(est), if (fx) "_fx" else "_nofx"), "sem",
             WLS_COV_MODEL, hs, HS_PATH, list(estimator = est, fixed.x = fx),
             if (est == "WLS") ex_pieces else ex,
             notes = "two factors regressed on the observed covariates ageyr and sex")
  }
  print_w2_results()
  check_w2("w2_wls_hs_groups_mlmv", 115.851, 48)  # = the ML configural chisq (tutorial)
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_wls_continuous()
