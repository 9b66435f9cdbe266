## lavaan references, issue 10 items 6 (extra cases): lavInspect keys, R-squared,
## parameterEstimates(rsquare = TRUE) and the summary() text for models the three
## w2_results_* cases do not cover: observed regressions with fixed exogenous covariates
## (LISREL "dummy" latent variables), labels with == / > constraints and := parameters,
## MLR (scaled test column), MLR with FIML, and several groups with equal loadings (MLR).
##
## Usage (from the repository root):  Rscript tests/reference/cases_results_extra.R
## Writes tests/reference/json/w2_results_extra_*.json (same schema as w2_results_*.json:
## tests/reference/cases_wave2_results.R defines the extraction helpers used here).

if (!file.exists("tests/reference/cases_wave2_results.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")  # helpers only (its cases run under Rscript)

HS_MCAR_PATH <- "tests/reference/data/hs_mcar.csv"

EXTRA_PATHS_MODEL <- paste(
  "visual =~ x1 + x2 + x3",
  "textual =~ x4 + x5 + x6",
  "textual ~ visual + grade + sex",
  "x7 ~ textual + x9",
  "x8 ~ x7",
  sep = "\n")

EXTRA_DEFINED_MODEL <- paste(
  "ind60 =~ x1 + x2 + x3",
  "dem60 =~ y1 + l2*y2 + l3*y3 + y4",
  "dem65 =~ y5 + l6*y6 + l7*y7 + y8",
  "dem60 ~ a*ind60",
  "dem65 ~ c*ind60 + b*dem60",
  "y1 ~~ y5",
  "y2 ~~ y4 + y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "y6 ~~ y8",
  "dem65 ~~ v*dem65",
  "l2 == l6",
  "v > 0.01",
  "indirect := a*b",
  "total := c + a*b",
  sep = "\n")

run_results_extra <- function() {
  hs <- read_data(HS_PATH)
  pd <- read_data(PD_PATH)
  hs_mcar <- read_data(HS_MCAR_PATH)
  extras <- function(fit) list(lavInspect = get_inspect(fit),
                               r2 = ser(inspect(fit, "r2")),
                               pe_rsquare = get_pe_r2(fit),
                               partable_full = get_partable_full(fit),
                               summary_text = get_summary_text(fit))
  note <- paste("lavInspect: lavInspect(fit, key) for each key (lavaan's key names);",
                "'information' is the unit information of the fit's information type",
                "(expected for ML on complete data, observed for MLR and FIML);",
                "'std' = std.all matrices; 'sampstat' covariances have divisor N.")
  run_case("w2_results_extra_paths", "sem", EXTRA_PATHS_MODEL, hs, HS_PATH, list(), extras,
           notes = paste(note, "Observed variables in regressions become LISREL dummy",
                         "latent variables (lambda = 1, variances in psi)."))
  run_case("w2_results_extra_defined", "sem", EXTRA_DEFINED_MODEL, pd, PD_PATH, list(),
           extras, notes = paste(note, "Labels, an explicit equality constraint, an",
                                 "inactive inequality constraint and two := parameters."))
  run_case("w2_results_extra_mlr", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(estimator = "MLR"), extras, notes = note)
  run_case("w2_results_extra_fiml_mlr", "cfa", W2_HS_MODEL, hs_mcar, HS_MCAR_PATH,
           list(estimator = "MLR", missing = "fiml"), extras, notes = note)
  run_case("w2_results_extra_groups_mlr", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school", group.equal = "loadings", estimator = "MLR"), extras,
           notes = paste(note, "Multi-group: lavInspect values are objects keyed by group",
                         "label (Pasteur, Grant-White) where lavaan returns a list per group."))
  print_w2_results()
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_results_extra()
