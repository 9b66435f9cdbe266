## Core engine cases (issue 2): CFA, multi-group, SEM, covariates,
## labels / constraints.

HS_MODEL <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"

PD_MODEL <- paste(
  "# measurement model",
  "ind60 =~ x1 + x2 + x3",
  "dem60 =~ y1 + a*y2 + b*y3 + c*y4",
  "dem65 =~ y5 + a*y6 + b*y7 + c*y8",
  "# regressions",
  "dem60 ~ d1*ind60",
  "dem65 ~ d3*ind60 + d2*dem60",
  "# residual correlations",
  "y1 ~~ y5",
  "y2 ~~ y4 + y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "y6 ~~ y8",
  "# defined parameters",
  "ind_eff := d1*d2",
  "tot := d3 + d1*d2",
  sep = "\n")

PD_MODEL_PLAIN <- paste(
  "ind60 =~ x1 + x2 + x3",
  "dem60 =~ y1 + a*y2 + b*y3 + c*y4",
  "dem65 =~ y5 + a*y6 + b*y7 + c*y8",
  "dem60 ~ ind60",
  "dem65 ~ ind60 + dem60",
  "y1 ~~ y5",
  "y2 ~~ y4 + y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "y6 ~~ y8",
  sep = "\n")

run_core <- function() {
  hs <- read_data(HS_PATH)
  pd <- read_data(PD_PATH)
  full_extras <- function(fit) list(modindices = get_modindices(fit),
                                    implied = get_implied(fit),
                                    residuals = get_residuals(fit),
                                    fscores = get_fscores(fit),
                                    vcov = get_vcov(fit))

  run_case("hs_cfa", "cfa", HS_MODEL, hs, HS_PATH, list(), full_extras)
  run_case("hs_cfa_stdlv", "cfa", HS_MODEL, hs, HS_PATH, list(std.lv = TRUE),
           function(fit) list(implied = get_implied(fit), vcov = get_vcov(fit)))
  run_case("hs_cfa_meanstructure", "cfa", HS_MODEL, hs, HS_PATH,
           list(meanstructure = TRUE),
           function(fit) list(implied = get_implied(fit), vcov = get_vcov(fit),
                              residuals = get_residuals(fit)))
  run_case("hs_stdall", "cfa", HS_MODEL, hs, HS_PATH, list(),
           function(fit) list(standardized_solution = get_stdsol(fit)),
           notes = "Same fit as hs_cfa; standardized_solution holds standardizedSolution(fit, type=...) for std.all/std.lv/std.nox, including delta-method SEs of the standardized estimates.")

  ## ---- multi-group invariance by school --------------------------------
  mg_extras <- function(fit) list(implied = get_implied(fit), vcov = get_vcov(fit),
                                  modindices = get_modindices(fit))
  conf <- run_case("hs_configural", "cfa", HS_MODEL, hs, HS_PATH,
                   list(group = "school"), mg_extras)$fit
  metr <- run_case("hs_metric", "cfa", HS_MODEL, hs, HS_PATH,
                   list(group = "school", group.equal = "loadings"), mg_extras)$fit
  scal <- run_case("hs_scalar", "cfa", HS_MODEL, hs, HS_PATH,
                   list(group = "school", group.equal = c("loadings", "intercepts")),
                   mg_extras)$fit
  strict_opts <- list(group = "school",
                      group.equal = c("loadings", "intercepts", "residuals"))
  fr <- fit_capture("cfa", HS_MODEL, hs, strict_opts)
  lrt <- get_lrt(list(configural = conf, metric = metr, scalar = scal,
                      strict = fr$fit))
  case_json("hs_strict", fr, "cfa", HS_MODEL, strict_opts, HS_PATH,
            c(mg_extras(fr$fit), list(lrt = list(lrt))),
            notes = "lrt = lavTestLRT(hs_configural, hs_metric, hs_scalar, hs_strict)")
  run_case("hs_partial_scalar", "cfa", HS_MODEL, hs, HS_PATH,
           list(group = "school", group.equal = c("loadings", "intercepts"),
                group.partial = c("x3~1", "x7~1")), mg_extras)
  run_case("hs_groupequal_all", "cfa", HS_MODEL, hs, HS_PATH,
           list(group = "school",
                group.equal = c("loadings", "intercepts", "residuals",
                                "residual.covariances", "lv.variances",
                                "lv.covariances", "means")), mg_extras)

  ## ---- Political democracy SEM ---------------------------------------------
  run_case("pd_sem", "sem", PD_MODEL, pd, PD_PATH, list(),
           function(fit) list(modindices = get_modindices(fit),
                              vcov = get_vcov(fit),
                              implied = get_implied(fit),
                              wald = get_wald(fit, "d1 == 0; d3 == 0"),
                              wald_equal_loadings = get_wald(fit, "a == b")))
  run_case("pd_sem_stdlv", "sem", PD_MODEL_PLAIN, pd, PD_PATH, list(std.lv = TRUE),
           function(fit) list(vcov = get_vcov(fit), implied = get_implied(fit)),
           notes = paste("With std.lv=TRUE the a/b/c labels equate loadings of factors",
                         "whose (residual) variances are both fixed to 1, so this is",
                         "NOT the same model as pd_sem (different chi-square);",
                         "see pd_sem_nolabels / pd_sem_nolabels_stdlv for an",
                         "identification-only comparison."))
  pd_nolab <- gsub("[abc]\\*", "", PD_MODEL_PLAIN)
  run_case("pd_sem_nolabels", "sem", pd_nolab, pd, PD_PATH, list(),
           function(fit) list(vcov = get_vcov(fit)))
  run_case("pd_sem_nolabels_stdlv", "sem", pd_nolab, pd, PD_PATH, list(std.lv = TRUE),
           function(fit) list(vcov = get_vcov(fit)))

  ## ---- observed exogenous covariates ----------------------------------------
  cov_model <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                     "visual ~ ageyr + sex", "textual ~ ageyr + grade", sep = "\n")
  note_cov <- paste("HS39 has 1 row with missing grade; lavaan's default",
                    "missing='listwise' drops it (nobs 300 of 301 rows).")
  cov_extras <- function(fit) list(implied = get_implied(fit), vcov = get_vcov(fit),
                                   modindices = get_modindices(fit),
                                   standardized_solution = get_stdsol(fit))
  run_case("hs_covariates", "sem", cov_model, hs, HS_PATH, list(), cov_extras,
           notes = note_cov)
  run_case("hs_covariates_fixedx_false", "sem", cov_model, hs, HS_PATH,
           list(fixed.x = FALSE), cov_extras, notes = note_cov)

  ## ---- group-wise labels / fixed values --------------------------------------
  gl_model <- paste("visual =~ x1 + c(a1, a2)*x2 + c(b1, b2)*x3",
                    "textual =~ x4 + x5 + x6", "speed =~ x7 + x8 + x9", sep = "\n")
  run_case("hs_groupwise_labels", "cfa", gl_model, hs, HS_PATH,
           list(group = "school"),
           function(fit) list(wald = get_wald(fit, "a1 == a2; b1 == b2"),
                              vcov = get_vcov(fit)))
  gf_model <- paste("visual =~ x1 + c(1, NA)*x2 + x3",
                    "textual =~ x4 + x5 + x6", "speed =~ x7 + x8 + x9", sep = "\n")
  run_case("hs_groupwise_fixed", "cfa", gf_model, hs, HS_PATH,
           list(group = "school"), function(fit) list(vcov = get_vcov(fit)),
           notes = paste("x1 is the marker (auto.fix.first) in both groups; the x2",
                         "loading is additionally fixed to 1 in group 1 (Pasteur)",
                         "and free in group 2 (Grant-White)."))

  ## ---- explicit equality / inequality constraints ----------------------------
  pdc_model <- paste(
    "ind60 =~ x1 + x2 + x3",
    "dem60 =~ y1 + l2*y2 + l3*y3 + l4*y4",
    "dem65 =~ y5 + m2*y6 + m3*y7 + m4*y8",
    "dem60 ~ ind60",
    "dem65 ~ ind60 + dem60",
    "y1 ~~ y5",
    "y2 ~~ y4 + y6",
    "y3 ~~ y7",
    "y4 ~~ y8",
    "y6 ~~ y8",
    "x1 ~~ e1*x1",
    "x2 ~~ e2*x2",
    "# linear equality constraints",
    "l2 == m2",
    "l3 + l4 == 2*m3",
    "# bounds: e1 > 0.1 is active (unconstrained estimate ~0.08), e2 > 0.01 is inactive",
    "e1 > 0.1",
    "e2 > 0.01",
    sep = "\n")
  run_case("pd_constraints", "sem", pdc_model, pd, PD_PATH, list(),
           function(fit) list(vcov = get_vcov(fit)),
           notes = paste("Equality constraints l2 == m2 and l3 + l4 == 2*m3;",
                         "inequality e1 > 0.1 (active) and e2 > 0.01 (inactive)."))
  invisible(TRUE)
}
