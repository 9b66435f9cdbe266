## lavaan references for the invariance-sequence semantics of issue 10: the strict level fitted
## on top of the partial scalar model that passed (HS39 by school, lavaan's parameterisation,
## x3 and x7 intercepts free in both groups as group.partial does), and its scaled
## (Satorra-Bentler 2001) difference test against that partial scalar model under MLR.
##
## Usage (from the repository root):  Rscript tests/reference/cases_sequence_semantics.R
## Writes tests/reference/json/seq_hs_*.json with the schema of tests/reference/README.md.

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

HS_PATH  <- "data/HolzingerSwineford1939.csv"
HS_MODEL <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
hs <- read_data(HS_PATH)
partial <- c("x3~1", "x7~1")

for (est in c("ML", "MLR")) {
  sfx <- tolower(est)
  sc_opts <- list(group = "school", group.equal = c("loadings", "intercepts"),
                  group.partial = partial, estimator = est)
  st_opts <- list(group = "school",
                  group.equal = c("loadings", "intercepts", "residuals"),
                  group.partial = partial, estimator = est)
  sc <- fit_capture("cfa", HS_MODEL, hs, sc_opts)
  st <- fit_capture("cfa", HS_MODEL, hs, st_opts)
  lrt <- lavTestLRT(sc$fit, st$fit)
  lrt_tab <- data.frame(model = c("partial_scalar", "partial_strict"),
                        Df = lrt$Df, Chisq = lrt$Chisq,
                        Chisq_diff = lrt[["Chisq diff"]], Df_diff = lrt[["Df diff"]],
                        Pr_Chisq = lrt[["Pr(>Chisq)"]])
  case_json(paste0("seq_hs_partial_scalar_", sfx), sc, "cfa", HS_MODEL, sc_opts, HS_PATH,
            list())
  case_json(paste0("seq_hs_partial_strict_", sfx), st, "cfa", HS_MODEL, st_opts, HS_PATH,
            list(lrt = list(list(table = lrt_tab))),
            notes = "lrt = lavTestLRT(partial scalar, strict on top of the partial scalar)")
}
