## lavaan references, wave 2 / issue 13: coverage of lavaan features.
##   growth(); fits from sample moments (one and two groups); nonlinear equality and active
##   inequality constraints; estimators GLS / WLS / ULS / MLMV with lavTestLRT; residuals of
##   every type and lavResiduals(); factor scores (regression, Bartlett); modification
##   indices under ULS / GLS; the RSA package's shifted and rotated rising ridge (SRRR,
##   b4^2 == 4*b3*b5) and related polynomial-regression models.
##
## Usage (from the repository root):  Rscript tests/reference/cases_wave2_coverage.R
## Writes tests/reference/json/w2_cov_*.json and the data files
## tests/reference/data/demo_growth.csv (lavaan's Demo.growth) and
## tests/reference/data/rsa_srrr_sim.csv (simulated, set.seed(20261301)).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")   # helpers.R + wave-2 helpers (no cases)

GROWTH_PATH <- file.path(DATA_DIR, "demo_growth.csv")
RSA_PATH    <- file.path(DATA_DIR, "rsa_srrr_sim.csv")
HS_VARS     <- paste0("x", 1:9)

## lavaan tutorial ("Growth curves"): linear growth with time-invariant and time-varying
## covariates
W2_GROWTH_MODEL <- paste(
  "# intercept and slope with fixed coefficients",
  "i =~ 1*t1 + 1*t2 + 1*t3 + 1*t4",
  "s =~ 0*t1 + 1*t2 + 2*t3 + 3*t4",
  "# regressions",
  "i ~ x1 + x2",
  "s ~ x1 + x2",
  "# time-varying covariates",
  "t1 ~ c1",
  "t2 ~ c2",
  "t3 ~ c3",
  "t4 ~ c4",
  sep = "\n")

## one equality: x5's loading = x2's loading (same as w2_sem_equal_modifier)
W2_RESTRICTED_MODEL <- paste("visual =~ x1 + x2 + x3",
                             "textual =~ x4 + equal(\"visual=~x2\")*x5 + x6",
                             "speed =~ x7 + x8 + x9", sep = "\n")
W2_NONLIN_MODEL <- paste("visual =~ x1 + a*x2 + b*x3",
                         "textual =~ x4 + c*x5 + x6",
                         "speed =~ x7 + x8 + x9",
                         "a == b*c", sep = "\n")
## unconstrained: b (x2) = 0.554 < c (x3) = 0.729, so b > c is active (b = c at the optimum)
W2_INEQ_MODEL <- paste("visual =~ x1 + b*x2 + c*x3",
                       "textual =~ x4 + x5 + x6",
                       "speed =~ x7 + x8 + x9",
                       "b > c", sep = "\n")
W2_INEQ_EQ_MODEL <- sub("b > c", "b == c", W2_INEQ_MODEL, fixed = TRUE)

## ---- RSA (Schoenbrodt & Humberg, RSA package; Edwards 2002 polynomial regression) -------
RSA_POLY <- "z ~ b1*x + b2*y + b3*x2 + b4*x_y + b5*y2"
RSA_DEFS <- c("a1 := b1 + b2", "a2 := b3 + b4 + b5", "a3 := b1 - b2", "a4 := b3 - b4 + b5",
              "l1 := (b3 + b5 + sqrt((b3 + b5)^2 - 4*b3*b5 + b4^2))/2",
              "l2 := (b3 + b5 - sqrt((b3 + b5)^2 - 4*b3*b5 + b4^2))/2")
SRRR_DEFS <- c("meaneffect := (b2*b4 - 2*b1*b5) / b4",
               "C := (-2*b1*b5 - b2*b4) / (4*b4*b5)",
               "S := (-b4) / (2*b5)")
## SRRR as the RSA package fits it: the curvature direction is not known, so the model is
## fitted with b3, b5 > 1e-6 ("up", starts 0.01) and < 1e-6 ("down", starts -0.01) and the
## converged fit with the smaller chisq is kept.
rsa_srrr <- function(dir) {
  s <- if (dir == "up") "0.01" else "-0.01"
  rel <- if (dir == "up") ">" else "<"
  paste(c(paste0(RSA_POLY, " + start(", s, ")*x2 + start(", s, ")*y2"),
          paste("b3", rel, "0.000001"), paste("b5", rel, "0.000001"),
          "b4^2 == 4*b3*b5", RSA_DEFS, SRRR_DEFS), collapse = "\n")
}
RSA_FULL <- paste(c(RSA_POLY, RSA_DEFS), collapse = "\n")
## rising ridge written with the nonlinear constraint (b3 == b5 makes b4 = +-2*b3)
RSA_RR_NONLIN <- paste(c(RSA_POLY, "b1 == b2", "b3 == b5", "b4^2 == 4*b3*b5", RSA_DEFS),
                       collapse = "\n")
## the RSA package's linear rising ridge (RR)
RSA_RR <- paste(c(RSA_POLY, "b1 == b2", "b3 == b5", "b3 + b4 + b5 == 0", RSA_DEFS),
                collapse = "\n")
RSA_OPTS <- list(fixed.x = TRUE, meanstructure = TRUE)

make_wave2_data <- function() {
  g <- lavaan::Demo.growth
  write_exact_csv(g, GROWTH_PATH)
  set.seed(20261301)
  n <- 400
  x <- rnorm(n)
  y <- 0.3 * x + sqrt(1 - 0.09) * rnorm(n)
  ## a downward rising ridge: -(0.5 x - 0.4 y)^2, i.e. b3 = -0.25, b4 = 0.4, b5 = -0.16
  ## (b4^2 = 4 b3 b5), plus linear terms
  z <- 0.2 + 0.3 * x + 0.1 * y - 0.25 * x^2 + 0.4 * x * y - 0.16 * y^2 + rnorm(n)
  d <- data.frame(x = x, y = y, z = z, x2 = x^2, x_y = x * y, y2 = y^2)
  write_exact_csv(d, RSA_PATH)
}

moments <- function(d, vars, group = NULL) {
  if (is.null(group)) {
    return(list(list(group = "", nobs = nrow(d),
                     cov = w2_mat(cov(d[, vars])),
                     mean = named_vector(colMeans(d[, vars])))))
  }
  labs <- unique(d[[group]])
  lapply(labs, function(g) {
    dd <- d[d[[group]] == g, vars]
    list(group = g, nobs = nrow(dd), cov = w2_mat(cov(dd)),
         mean = named_vector(colMeans(dd)))
  })
}

run_wave2_coverage <- function() {
  make_wave2_data()
  hs <- read_data(HS_PATH)
  gr <- read_data(GROWTH_PATH)
  rsa <- read_data(RSA_PATH)
  ex <- function(fit) list(vcov = get_vcov(fit))

  ## ---- growth() ------------------------------------------------------------------------
  run_case("w2_cov_growth", "growth", W2_GROWTH_MODEL, gr, GROWTH_PATH, list(),
           function(fit) list(vcov = get_vcov(fit), implied = get_implied(fit),
                              partable_full = get_partable_full(fit),
                              r2 = ser(inspect(fit, "r2"))),
           notes = paste("growth(): meanstructure, observed intercepts fixed to 0, latent",
                         "intercepts free; x1, x2, c1..c4 exogenous (fixed.x = TRUE)."))

  ## ---- sample moments --------------------------------------------------------------------
  S <- cov(hs[, HS_VARS])
  fr <- fit_args("cfa", list(model = W2_HS_MODEL, sample.cov = S, sample.nobs = nrow(hs)))
  case_json("w2_cov_hs_samplecov", fr, "cfa", W2_HS_MODEL,
            list(sample.nobs = nrow(hs)), HS_PATH,
            list(sample_moments = moments(hs, HS_VARS)[1], implied = get_implied(fit = fr$fit),
                 vcov = get_vcov(fr$fit)),
            notes = paste("Fit from sample.cov = sample_moments[0].cov (N - 1",
                          "divisor, as cov()); lavaan rescales it by (N - 1)/N",
                          "(sample.cov.rescale = TRUE), so everything equals the raw-data",
                          "fit w2_cov_hs_raw (= hs_cfa)."))
  run_case("w2_cov_hs_raw", "cfa", W2_HS_MODEL, hs, HS_PATH, list(), ex)

  Sg <- lapply(split(hs[, HS_VARS], factor(hs$school, levels = unique(hs$school))), cov)
  Mg <- lapply(split(hs[, HS_VARS], factor(hs$school, levels = unique(hs$school))), colMeans)
  Ng <- as.vector(table(factor(hs$school, levels = unique(hs$school))))
  mom <- moments(hs, HS_VARS, "school")
  ## call.options records sample.nobs only: sample.cov / sample.mean are in sample_moments
  mopts <- list(sample.nobs = Ng)
  conf <- fit_args("cfa", list(model = W2_HS_MODEL, sample.cov = Sg, sample.mean = Mg,
                               sample.nobs = Ng))
  case_json("w2_cov_hs_moments_configural", conf, "cfa", W2_HS_MODEL, mopts, HS_PATH,
            list(sample_moments = mom, vcov = get_vcov(conf$fit),
                 implied = get_implied(conf$fit)),
            notes = paste("sample.cov / sample.mean = the cov / mean of sample_moments:",
                          "two groups from a named list of covariance matrices (divisor",
                          "N_g - 1) and mean vectors; group labels are the list names.",
                          "Equals hs_configural (raw data by school)."))
  scal <- fit_args("cfa", list(model = W2_HS_MODEL, sample.cov = Sg, sample.mean = Mg,
                               sample.nobs = Ng, group.equal = c("loadings", "intercepts")))
  case_json("w2_cov_hs_moments_scalar", scal, "cfa", W2_HS_MODEL,
            c(mopts, list(group.equal = c("loadings", "intercepts"))), HS_PATH,
            list(sample_moments = mom, vcov = get_vcov(scal$fit),
                 lrt = get_lrt_methods(list(configural = conf$fit, scalar = scal$fit))),
            notes = "Equals hs_scalar (raw data by school).")

  ## ---- nonlinear equality, active inequality -----------------------------------------------
  base <- fit_capture("cfa", W2_HS_MODEL, hs)$fit
  run_case("w2_cov_nonlinear_eq", "cfa", W2_NONLIN_MODEL, hs, HS_PATH, list(),
           function(fit) list(vcov = get_vcov(fit),
                              lrt = get_lrt_methods(list(base = base, nonlinear = fit))),
           notes = paste("a == b*c on the x2, x3, x5 loadings (unconstrained 0.554, 0.729,",
                         "1.113). The '==' row's est is a - b*c (~0)."))
  run_case("w2_cov_inequality_active", "cfa", W2_INEQ_MODEL, hs, HS_PATH, list(), ex,
           notes = paste("b > c on the x2, x3 loadings; unconstrained b = 0.554 < c = 0.729,",
                         "so the bound is active (b = c). lavaan does not count the",
                         "inequality in df (24, as unconstrained) and reports npar 21; the",
                         "estimates equal w2_cov_inequality_as_equality (df 25)."))
  run_case("w2_cov_inequality_as_equality", "cfa", W2_INEQ_EQ_MODEL, hs, HS_PATH, list(), ex)

  ## ---- estimators --------------------------------------------------------------------------
  est_extras <- function(fit) list(tests = get_tests(fit), vcov = get_vcov(fit),
                                   modindices_all = get_modindices_all(fit),
                                   implied = get_implied(fit))
  for (est in c("GLS", "WLS", "ULS", "MLMV")) {
    lo <- tolower(est)
    full <- run_case(paste0("w2_cov_hs_", lo), "cfa", W2_HS_MODEL, hs, HS_PATH,
                     list(estimator = est), est_extras)$fit
    run_case(paste0("w2_cov_hs_", lo, "_restricted"), "cfa", W2_RESTRICTED_MODEL, hs,
             HS_PATH, list(estimator = est),
             function(fit) {
               methods <- if (est == "MLMV")
                 c("default", "satorra.2000", "satorra.bentler.2001", "satorra.bentler.2010")
               else "default"
               list(tests = get_tests(fit), vcov = get_vcov(fit),
                    lrt = get_lrt_methods(list(full = full, restricted = fit), methods))
             },
             notes = paste("Restricted model: x5's loading equal to x2's (equal() modifier).",
                           "lrt: lavTestLRT(full, restricted, method = m)."))
  }

  ## ---- residuals, lavResiduals, factor scores ------------------------------------------------
  pf <- function(fit) list(residuals_all = get_residuals_all(fit),
                           fscores_methods = get_fscores_methods(fit),
                           implied = get_implied(fit))
  run_case("w2_cov_postfit", "cfa", W2_HS_MODEL, hs, HS_PATH, list(), pf,
           notes = paste("residuals_all.<type> = resid(fit, type) for raw, cor (=",
                         "cor.bollen), cor.bollen, cor.bentler, normalized, standardized;",
                         "lavResiduals = lavResiduals(fit) (cor.bentler: cov, cov.z,",
                         "summary), lavResiduals_raw = lavResiduals(fit, type = 'raw');",
                         "fscores_methods = lavPredict(fit, method) first 20 rows + colmeans."))
  run_case("w2_cov_postfit_groups", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school"), pf, notes = "As w2_cov_postfit, by school (with means).")

  ## ---- RSA polynomial regression with nonlinear constraints -----------------------------------
  rx <- function(fit) list(vcov = get_vcov(fit), partable_full = get_partable_full(fit))
  full <- run_case("w2_cov_rsa_full", "sem", RSA_FULL, rsa, RSA_PATH, RSA_OPTS, rx)$fit
  up <- run_case("w2_cov_rsa_srrr_up", "sem", rsa_srrr("up"), rsa, RSA_PATH, RSA_OPTS, rx,
                 notes = paste("SRRR 'up' branch (b3, b5 > 1e-6). The data have a downward",
                               "ridge, so both bounds are active (b3 = b5 = 1e-6, b4 ~ 0):",
                               "a degenerate boundary solution with NA SEs; the RSA package",
                               "discards it (larger chisq than 'down')."))$fit
  down <- run_case("w2_cov_rsa_srrr_down", "sem", rsa_srrr("down"), rsa, RSA_PATH, RSA_OPTS,
                   rx, notes = paste("SRRR 'down' branch (b3, b5 < 1e-6, b4^2 == 4*b3*b5):",
                                     "the branch the RSA package keeps here (smaller chisq)."))$fit
  rrn <- run_case("w2_cov_rsa_rr_nonlinear", "sem", RSA_RR_NONLIN, rsa, RSA_PATH, RSA_OPTS, rx,
                  notes = paste("b1 == b2; b3 == b5; b4^2 == 4*b3*b5 (b4 = +-2*b3): the",
                                "optimum has b4 = -2*b3, so it equals the linear rising ridge",
                                "w2_cov_rsa_rr (same chisq, df 3)."))$fit
  rr <- run_case("w2_cov_rsa_rr", "sem", RSA_RR, rsa, RSA_PATH, RSA_OPTS, rx)$fit
  pick <- if (fitMeasures(up, "chisq") > fitMeasures(down, "chisq")) "down" else "up"
  write_case("w2_cov_rsa_lrt", c(list(case = "w2_cov_rsa_lrt"), VERSIONS,
    list(data = RSA_PATH, srrr_direction = pick,
         lrt_full_srrr_rr = get_lrt_methods(list(full = full, SRRR = down, RR = rr)),
         lrt_full_rr_nonlinear = get_lrt_methods(list(full = full, RR_nonlinear = rrn)),
         notes = paste("srrr_direction: the RSA package's choice between the up and down",
                       "SRRR fits (smaller chisq). lrt_*: lavTestLRT of nested models."))))

  print_w2_results()
  check_w2("w2_cov_hs_samplecov", 85.306, 24)
  check_w2("w2_cov_hs_moments_configural", 115.851, 48)
  check_w2("w2_cov_hs_moments_scalar", 164.103, 60)
  check_w2("w2_cov_inequality_active", RESULTS[["w2_cov_inequality_as_equality"]][["chisq"]],
           24, tol = 1e-3)
  check_w2("w2_cov_rsa_rr_nonlinear", RESULTS[["w2_cov_rsa_rr"]][["chisq"]], 3, tol = 1e-4)
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_wave2_coverage()
