## lavaan references, issue 13 (lavaan coverage), extra cases beside cases_wave2_coverage.R:
##   lower() / upper() bounds (with and without equality constraints), per-group modifiers
##   (start(c()), label(c()) with NA, c() with NA among bare labels, as.numeric(NA),
##   equal(c())), nonlinear constraints with MLR and in two groups, an inactive inequality,
##   the RSA package's SRSQD model (up / down), residual types and lavResiduals() for
##   ULS / GLS / MLR fits and a MIMIC model (fixed.x), Bartlett scores of the MIMIC model,
##   growth() from sample moments.
##
## Usage (from the repository root):  Rscript tests/reference/cases_coverage_extra.R
## Writes tests/reference/json/w2x_*.json in the wave-2 schema (tests/reference/README.md).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")   # helpers.R + wave-2 helpers (no cases)

RSA_PATH    <- file.path(DATA_DIR, "rsa_srrr_sim.csv")
GROWTH_PATH <- file.path(DATA_DIR, "demo_growth.csv")
HS_VARS     <- paste0("x", 1:9)

W2X_BOUNDS <- paste(W2_HS_MODEL, "x1 ~~ lower(0.6)*x1", "x7 ~~ upper(0.5)*x7", sep = "\n")
W2X_BOUNDS_EQ <- paste("visual =~ x1 + a*x2 + a*x3", "textual =~ x4 + x5 + x6",
                       "speed =~ x7 + x8 + x9", "x1 ~~ lower(0.6)*x1", sep = "\n")
W2X_GROUP_MODS <- paste(
  "visual =~ x1 + start(c(0.5, 0.6))*x2 + label(c(\"a\", NA))*x3",
  "textual =~ x4 + equal(c(\"visual=~x2\", \"visual=~x2.g2\"))*x5 + c(NA, b)*x6",
  "speed =~ x7 + c(as.numeric(NA), 1)*x8 + as.numeric(NA)*x9",
  "x9 ~~ lower(c(0.1, 0.1))*x9", sep = "\n")
W2X_NONLIN <- paste("visual =~ x1 + a*x2 + b*x3", "textual =~ x4 + c*x5 + x6",
                    "speed =~ x7 + x8 + x9", "a == b*c", sep = "\n")
W2X_NONLIN_GROUPS <- paste(
  "visual =~ x1 + c(a1, a2)*x2 + c(b1, b2)*x3", "textual =~ x4 + x5 + x6",
  "speed =~ x7 + x8 + x9", "a1 == b1^2", "a2 - b2 > 0.2", sep = "\n")
W2X_INEQ_INACTIVE <- paste("visual =~ x1 + b*x2 + c*x3", "textual =~ x4 + x5 + x6",
                           "speed =~ x7 + x8 + x9", "b < c", sep = "\n")
W2X_MIMIC <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                   "visual + textual ~ ageyr + sex", sep = "\n")
W2X_GROWTH <- paste("i =~ 1*t1 + 1*t2 + 1*t3 + 1*t4",
                    "s =~ 0*t1 + 1*t2 + 2*t3 + 3*t4", sep = "\n")

## the RSA package's SRSQD (Schoenbrodt & Humberg, RSA::RSA, models = "SRSQD")
RSA_POLY <- "z ~ b1*x + b2*y + b3*x2 + b4*x_y + b5*y2"
RSA_A <- c("a1 := b1 + b2", "a2 := b3 + b4 + b5", "a3 := b1 - b2", "a4 := b3 - b4 + b5",
           "a5 := b3 - b5")
rsa_srsqd <- function(dir) {
  s <- if (dir == "up") "0.001" else "-0.001"
  b <- if (dir == "up") "> 0.000001" else "< -0.000001"
  paste(c(paste0(RSA_POLY, " + start(", s, ")*y2"), "2*b1*b5 == b2*b4",
          paste("b3", b), paste("b5", b), "b4^2 == 4*b3*b5", RSA_A), collapse = "\n")
}
rsa_srrr <- function(dir) {
  s <- if (dir == "up") "0.01" else "-0.01"
  b <- if (dir == "up") "> 0.000001" else "< -0.000001"
  paste(c(paste0(RSA_POLY, " + start(", s, ")*x2 + start(", s, ")*y2"),
          paste("b3", b), paste("b5", b), "b4^2 == 4*b3*b5", RSA_A), collapse = "\n")
}
RSA_OPTS <- list(fixed.x = TRUE, meanstructure = TRUE)

run_coverage_extra <- function() {
  hs  <- read_data(HS_PATH)
  rsa <- read_data(RSA_PATH)
  gr  <- read_data(GROWTH_PATH)
  ex <- function(fit) list(vcov = get_vcov(fit), partable_full = get_partable_full(fit))
  post <- function(fit) list(residuals_all = get_residuals_all(fit),
                             fscores_methods = get_fscores_methods(fit),
                             implied = get_implied(fit), vcov = get_vcov(fit))
  ## residual types one at a time: lavaan refuses some (an error is recorded instead)
  resid_each <- function(fit) {
    gl <- group_labels(fit)
    one <- function(type) tryCatch({
      r <- capture_warnings(resid(fit, type = type))
      rr <- per_group(fit, r$value)
      lapply(seq_along(rr), function(g) {
        out <- list(group = if (length(gl)) gl[g] else "", type = type)
        if (!is.null(rr[[g]]$cov)) out$cov <- w2_mat(rr[[g]]$cov)
        if (!is.null(rr[[g]]$mean)) out$mean <- named_vector(rr[[g]]$mean)
        out
      })
    }, error = function(e) list(error = conditionMessage(e)))
    res <- lapply(W2_RESID_TYPES, one)
    names(res) <- gsub(".", "_", W2_RESID_TYPES, fixed = TRUE)
    res$lavResiduals <- tryCatch({
      x <- per_group(fit, lavResiduals(fit))
      lapply(seq_along(x), function(g) c(list(group = if (length(gl)) gl[g] else ""),
                                         ser(x[[g]])))
    }, error = function(e) list(error = conditionMessage(e)))
    res
  }
  post_nofs <- function(fit) list(residuals_all = resid_each(fit),
                                  implied = get_implied(fit), vcov = get_vcov(fit))

  ## ---- modifiers ----------------------------------------------------------------------
  run_case("w2x_bounds", "cfa", W2X_BOUNDS, hs, HS_PATH, list(), ex,
           notes = paste("lower(0.6) on x1's and upper(0.5) on x7's residual variance; both",
                         "bounds are active; lavaan keeps their SEs (bounds are not",
                         "constraints for the information) and df 24."))
  run_case("w2x_bounds_eq", "cfa", W2X_BOUNDS_EQ, hs, HS_PATH, list(), ex,
           notes = paste("lower() with an equality constraint (shared label a): lavaan",
                         "warns that bounds have no effect and ignores them."))
  run_case("w2x_group_modifiers", "cfa", W2X_GROUP_MODS, hs, HS_PATH,
           list(group = "school"), ex,
           notes = paste("start(c()), label(c(\"a\", NA)) (no label in group 2), equal(c())",
                         "per group, c(NA, b) (lavaan drops the NA: label b in both groups,",
                         "with a warning), c(as.numeric(NA), 1), as.numeric(NA),",
                         "lower(c()) (inactive)."))

  ## ---- constraints ----------------------------------------------------------------------
  run_case("w2x_nonlinear_mlr", "cfa", W2X_NONLIN, hs, HS_PATH, list(estimator = "MLR"),
           function(fit) list(vcov = get_vcov(fit), tests = get_tests(fit)),
           notes = "a == b*c with MLR: robust SEs and the Yuan-Bentler test.")
  run_case("w2x_nonlinear_groups", "cfa", W2X_NONLIN_GROUPS, hs, HS_PATH,
           list(group = "school"), ex,
           notes = paste("a1 == b1^2 (group 1) and the inequality a2 - b2 > 0.2 (group 2,",
                         "linear, between two parameters)."))
  run_case("w2x_inequality_inactive", "cfa", W2X_INEQ_INACTIVE, hs, HS_PATH, list(), ex,
           notes = "b < c holds at the unconstrained optimum: the same fit as hs_cfa.")

  ## ---- RSA: SRSQD, SRRR (with the RSA package's -1e-6 bound for 'down') ------------------
  for (dir in c("up", "down")) {
    run_case(paste0("w2x_rsa_srsqd_", dir), "sem", rsa_srsqd(dir), rsa, RSA_PATH, RSA_OPTS,
             ex, notes = paste("RSA package SRSQD,", dir))
    run_case(paste0("w2x_rsa_srrr_", dir), "sem", rsa_srrr(dir), rsa, RSA_PATH, RSA_OPTS,
             ex, notes = paste("RSA package SRRR (bounds +-1e-6),", dir))
  }

  ## ---- residuals of other estimators, MIMIC with fixed.x -----------------------------------
  run_case("w2x_resid_uls", "cfa", W2_HS_MODEL, hs, HS_PATH, list(estimator = "ULS"),
           post_nofs)
  run_case("w2x_resid_gls", "cfa", W2_HS_MODEL, hs, HS_PATH, list(estimator = "GLS"),
           post_nofs)
  run_case("w2x_resid_mlr", "cfa", W2_HS_MODEL, hs, HS_PATH, list(estimator = "MLR"),
           post_nofs)
  run_case("w2x_resid_mimic", "sem", W2X_MIMIC, hs, HS_PATH, list(), post)

  ## ---- growth() from sample moments -------------------------------------------------------
  tv <- paste0("t", 1:4)
  S <- cov(gr[, tv]); M <- colMeans(gr[, tv])
  fr <- fit_args("growth", list(model = W2X_GROWTH, sample.cov = S, sample.mean = M,
                                sample.nobs = nrow(gr)))
  case_json("w2x_growth_moments", fr, "growth", W2X_GROWTH, list(sample.nobs = nrow(gr)),
            GROWTH_PATH, list(vcov = get_vcov(fr$fit),
                              sample_moments = list(list(group = "", nobs = nrow(gr),
                                                         cov = w2_mat(S),
                                                         mean = named_vector(M)))),
            notes = "linear growth of t1..t4 from sample.cov / sample.mean (divisor N - 1)")
  print_w2_results()
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_coverage_extra()
