## Extra lavaan references for issue 3 (missing data and robust inference):
## observed exogenous covariates under FIML / MLM / MLR, and cluster-robust inference on
## complete data with MLM (robust.cluster.sem) and MLR.
##
## Usage (from the repository root):  Rscript tests/reference/cases_issue3_extra.R
## Writes tests/reference/json/<case>.json with the schema of tests/reference/README.md.

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

HS_PATH    <- "data/HolzingerSwineford1939.csv"
MCAR_PATH  <- file.path(DATA_DIR, "hs_mcar.csv")
SIM_PATH   <- file.path(DATA_DIR, "sim_clustered.csv")

COV_MODEL <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                   "visual ~ ageyr", "textual ~ ageyr + grade", sep = "\n")
SIM_CFA <- paste("f1 =~ y1 + y2 + y3", "f2 =~ y4 + y5 + y6", sep = "\n")

used_options <- function(fit) {
  o <- lavInspect(fit, "options")
  keep <- c("estimator", "se", "test", "information", "h1.information",
            "observed.information", "missing", "meanstructure", "fixed.x")
  o <- o[intersect(keep, names(o))]
  names(o) <- gsub(".", "_", names(o), fixed = TRUE)
  lapply(o, function(v) if (length(v) > 1) I(v) else v)
}
extras <- function(fit) list(vcov = get_vcov(fit), lavaan_options = used_options(fit))

hs    <- read_data(HS_PATH)
mcar  <- read_data(MCAR_PATH)
sim   <- read_data(SIM_PATH)

## covariates (fixed.x = TRUE): one row of hs_mcar.csv has a missing 'grade'; lavaan drops
## it under missing = "ml" ("cases were deleted due to missing values in exogenous
## variable(s), while fixed.x = TRUE")
run_case("hs_fiml_covariates", "sem", COV_MODEL, mcar, MCAR_PATH,
         list(missing = "ml"), extras,
         notes = "fixed.x = TRUE with a missing covariate: the row is dropped (nobs 300)")
run_case("hs_fiml_covariates_mlr", "sem", COV_MODEL, mcar, MCAR_PATH,
         list(missing = "ml", estimator = "MLR"), extras)
run_case("hs_fiml_covariates_fixedx_false", "sem", COV_MODEL, mcar, MCAR_PATH,
         list(missing = "ml", fixed.x = FALSE), extras,
         notes = "fixed.x = FALSE: the covariates are modelled, the row is kept (nobs 301)")
## covariates with robust estimators on complete data
run_case("hs_mlm_covariates", "sem", COV_MODEL, hs, HS_PATH,
         list(estimator = "MLM"), extras,
         notes = "one row with missing grade is listwise-deleted (nobs 300)")
run_case("hs_mlr_covariates", "sem", COV_MODEL, hs, HS_PATH,
         list(estimator = "MLR"), extras)
## clusters on complete data
run_case("sim_cluster_mlm", "cfa", SIM_CFA, sim, SIM_PATH,
         list(estimator = "MLM", cluster = "school"), extras,
         notes = "MLM + cluster: se = robust.cluster.sem, Gamma summed within clusters")
run_case("sim_cluster_mlr", "cfa", SIM_CFA, sim, SIM_PATH,
         list(estimator = "MLR", cluster = "school"), extras)
invisible(run_case("sim_cluster_ml", "cfa", SIM_CFA, sim, SIM_PATH,
         list(cluster = "school"), extras))
