## lavaan references, wave 2 / issue 11: model-syntax semantics.
##   equal("...") modifier; std.lv = TRUE with group.equal = "loadings"; a phantom latent
##   (single latent indicator); a latent change score model; HS39 rescaled (scale invariance).
##
## Usage (from the repository root):  Rscript tests/reference/cases_wave2_semantics.R
## Writes tests/reference/json/w2_sem_*.json and the data files
## tests/reference/data/hs_x1_x100.csv, tests/reference/data/hs_x1000.csv.

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")   # helpers.R + wave-2 helpers (no cases)

HS_X1_PATH  <- file.path(DATA_DIR, "hs_x1_x100.csv")
HS_ALL_PATH <- file.path(DATA_DIR, "hs_x1000.csv")

W2_EQUAL_MODEL <- paste("visual =~ x1 + x2 + x3",
                        "textual =~ x4 + equal(\"visual=~x2\")*x5 + x6",
                        "speed =~ x7 + x8 + x9", sep = "\n")
W2_PHANTOM_MODEL <- paste(W2_HS_MODEL, "d =~ 1*textual", sep = "\n")

## Latent change score model (McArdle & Hamagami 2001; syntax as in Kievit et al. 2018,
## Developmental Cognitive Neuroscience 33, multiple-indicator univariate LCS): dem60 and
## dem65 measured by y1..y4 / y5..y8 with equal loadings and intercepts (marker y1 / y5:
## loading 1, intercept 0), residual covariances of the same item over time, and
## dem65 = 1*dem60 + 1*delta with dem65's own variance and intercept fixed to 0.
W2_LCS_MODEL <- paste(
  "dem60 =~ 1*y1 + l2*y2 + l3*y3 + l4*y4",
  "dem65 =~ 1*y5 + l2*y6 + l3*y7 + l4*y8",
  "y1 ~ 0*1",
  "y5 ~ 0*1",
  "y2 ~ i2*1",
  "y6 ~ i2*1",
  "y3 ~ i3*1",
  "y7 ~ i3*1",
  "y4 ~ i4*1",
  "y8 ~ i4*1",
  "y1 ~~ y5",
  "y2 ~~ y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "# latent change",
  "dem65 ~ 1*dem60",
  "dem65 ~ 0*1",
  "dem65 ~~ 0*dem65",
  "delta =~ 1*dem65",
  "delta ~ 1",
  "dem60 ~ 1",
  "delta ~~ delta",
  "dem60 ~~ dem60",
  "delta ~ beta*dem60",
  sep = "\n")
## the same model written as an autoregression: dem65 ~ b*dem60 (b = 1 + beta)
W2_LCS_EQUIV_MODEL <- paste(
  "dem60 =~ 1*y1 + l2*y2 + l3*y3 + l4*y4",
  "dem65 =~ 1*y5 + l2*y6 + l3*y7 + l4*y8",
  "y1 ~ 0*1",
  "y5 ~ 0*1",
  "y2 ~ i2*1",
  "y6 ~ i2*1",
  "y3 ~ i3*1",
  "y7 ~ i3*1",
  "y4 ~ i4*1",
  "y8 ~ i4*1",
  "y1 ~~ y5",
  "y2 ~~ y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "dem65 ~ b*dem60",
  "dem60 ~ 1",
  "dem65 ~ 1",
  sep = "\n")

run_wave2_semantics <- function() {
  hs <- read_data(HS_PATH)
  pd <- read_data(PD_PATH)
  ex <- function(fit) list(vcov = get_vcov(fit), partable_full = get_partable_full(fit))

  ## ---- equal("visual=~x2") modifier -----------------------------------------------
  base <- fit_capture("cfa", W2_HS_MODEL, hs)$fit
  eqf <- run_case("w2_sem_equal_modifier", "cfa", W2_EQUAL_MODEL, hs, HS_PATH, list(),
                  function(fit) c(ex(fit), list(lrt = get_lrt_methods(
                    list(base = base, equal = fit)))),
                  notes = paste("x5's loading on textual is constrained equal to x2's loading",
                                "on visual (one equality: df 25). lrt: lavTestLRT against",
                                "the unconstrained 3-factor model (hs_cfa)."))

  ## ---- std.lv = TRUE with group.equal = "loadings" ------------------------------------
  conf <- fit_capture("cfa", W2_HS_MODEL, hs, list(group = "school", std.lv = TRUE))
  case_json("w2_sem_stdlv_configural", conf, "cfa", W2_HS_MODEL,
            list(group = "school", std.lv = TRUE), HS_PATH, ex(conf$fit))
  run_case("w2_sem_stdlv_metric", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school", std.lv = TRUE, group.equal = "loadings"),
           function(fit) c(ex(fit), list(lrt = get_lrt_methods(
             list(configural = conf$fit, metric = fit)))),
           notes = paste("With std.lv = TRUE and equal loadings lavaan fixes the factor",
                         "variances to 1 in the first group only (free in Grant-White):",
                         "same chisq / df as hs_metric (marker identification)."))

  ## ---- phantom latent ------------------------------------------------------------------
  run_case("w2_sem_phantom", "cfa", W2_PHANTOM_MODEL, hs, HS_PATH, list(), ex,
           notes = paste("d =~ 1*textual: lavaan fixes textual's residual variance",
                         "(textual ~~ textual) to 0 by itself (ustart 0, free 0), so d is a",
                         "re-expression of textual and the fit equals hs_cfa (chisq 85.306,",
                         "df 24); visual, speed and d are exogenous and covary."))

  ## ---- latent change score model -------------------------------------------------------
  lcs <- run_case("w2_sem_lcs_pd", "sem", W2_LCS_MODEL, pd, PD_PATH, list(), ex,
                  notes = paste("Latent change score model; delta = dem65 - dem60,",
                                "beta = self-feedback (delta ~ dem60)."))$fit
  run_case("w2_sem_lcs_pd_equiv", "sem", W2_LCS_EQUIV_MODEL, pd, PD_PATH, list(),
           function(fit) c(ex(fit), list(lrt = get_lrt_methods(
             list(lcs = lcs, autoregression = fit)))),
           notes = paste("Equivalent to w2_sem_lcs_pd (same chisq, df): b = 1 + beta,",
                         "dem65's intercept = delta's intercept, residual variance of",
                         "dem65 = var(delta)."))

  ## ---- rescaled data (scale invariance) ------------------------------------------------
  h1 <- hs; h1$x1 <- h1$x1 * 100
  write_exact_csv(h1, HS_X1_PATH)
  hall <- hs
  for (v in paste0("x", 1:9)) hall[[v]] <- hall[[v]] * 1000
  write_exact_csv(hall, HS_ALL_PATH)
  h1 <- read_data(HS_X1_PATH); hall <- read_data(HS_ALL_PATH)
  sx <- function(fit) c(ex(fit), list(standardized_solution = get_stdsol(fit),
                                      implied = get_implied(fit)))
  run_case("w2_sem_hs_x1_x100", "cfa", W2_HS_MODEL, h1, HS_X1_PATH, list(), sx,
           notes = paste("HS39 with x1 multiplied by 100 (x1 is visual's marker): chisq,",
                         "df and the standardized solution equal hs_cfa; visual's",
                         "variance scales by 1e4, the x2/x3 loadings by 1/100, x1's",
                         "residual variance by 1e4, cov(visual, .) by 100; z values of",
                         "free parameters are unchanged."))
  ## lavaan's own start values (latent variances 0.05) leave nlminb stuck near the start on
  ## this scale: it reports convergence after 9 iterations at chisq 918.85 (= the baseline
  ## chisq). Kept as w2_sem_hs_x1000_lavaan_default (what lavaan does); the reference optimum
  ## w2_sem_hs_x1000 starts from the hs_cfa solution rescaled by 1e6 ((co)variances).
  run_case("w2_sem_hs_x1000_lavaan_default", "cfa", W2_HS_MODEL, hall, HS_ALL_PATH, list(),
           ex, notes = paste("NOT an optimum: lavaan 0.6-14 with its default starts stops",
                             "near the start values (latent variances ~0.05) and reports",
                             "converged = TRUE with chisq 918.85 (the baseline chisq). Use",
                             "w2_sem_hs_x1000 for the scale-invariance reference."))
  f0 <- fit_capture("cfa", W2_HS_MODEL, hs)$fit
  st <- parTable(f0)
  st$est <- ifelse(st$op == "~~", st$est * 1e6, st$est)
  st$start <- st$est
  fr <- fit_capture("cfa", W2_HS_MODEL, hall, list(start = st))
  case_json("w2_sem_hs_x1000", fr, "cfa", W2_HS_MODEL,
            list(), HS_ALL_PATH,
            c(sx(fr$fit), list(lavaan_start = paste("start = parTable(hs_cfa fit) with the",
                                                     "(co)variance estimates * 1e6"))),
            notes = paste("HS39 with x1..x9 multiplied by 1000, fitted from start values =",
                          "the hs_cfa solution rescaled (lavaan's default starts fail here,",
                          "see w2_sem_hs_x1000_lavaan_default). chisq, df, z values and the",
                          "standardized solution equal hs_cfa; loadings unchanged,",
                          "(co)variances and their SEs scaled by 1e6."))

  print_w2_results()
  check_w2("w2_sem_equal_modifier", 99.222, 25)
  check_w2("w2_sem_stdlv_configural", 115.851, 48)
  check_w2("w2_sem_stdlv_metric", 124.044, 54)
  check_w2("w2_sem_phantom", 85.306, 24)
  check_w2("w2_sem_lcs_pd_equiv", RESULTS[["w2_sem_lcs_pd"]][["chisq"]],
           RESULTS[["w2_sem_lcs_pd"]][["df"]], tol = 1e-4)
  check_w2("w2_sem_hs_x1_x100", 85.306, 24)
  check_w2("w2_sem_hs_x1000", 85.306, 24)
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_wave2_semantics()
