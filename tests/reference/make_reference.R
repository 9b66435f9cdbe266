## Generate lavaan reference values for the sem-models test-suite.
##
## Usage (from the repository root):
##   Rscript tests/reference/make_reference.R            # everything
##   Rscript tests/reference/make_reference.R core       # only some parts
## Parts: data, core, missing, invariance.
## Output: tests/reference/json/<case>.json (see tests/reference/README.md).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")

source("tests/reference/helpers.R")
source("tests/reference/make_data.R")
source("tests/reference/cases_core.R")
source("tests/reference/cases_missing_robust.R")
source("tests/reference/cases_invariance.R")

parts <- commandArgs(trailingOnly = TRUE)
if (length(parts) == 0) parts <- c("data", "core", "missing", "invariance")

t0 <- Sys.time()
if ("data" %in% parts) make_data()
if ("core" %in% parts) run_core()
if ("missing" %in% parts) run_missing_robust()
if ("invariance" %in% parts) run_invariance()

## ---- summary & checks ------------------------------------------------------
res <- do.call(rbind, RESULTS)
if (!is.null(res)) {
  cat("\ncase                                      chisq     df   npar conv\n")
  for (nm in rownames(res))
    cat(sprintf("%-38s %10.3f %6g %6g %4d\n", nm, res[nm, "chisq"], res[nm, "df"],
                res[nm, "npar"], as.integer(res[nm, "converged"])))
  bad <- rownames(res)[res[, "converged"] != 1]
  if (length(bad)) cat("NOT CONVERGED:", bad, "\n")

  expect <- list(hs_configural = c(115.85, 48), hs_metric = c(124.04, 54),
                 hs_scalar = c(164.10, 60), hs_strict = c(181.51, 69))
  for (nm in intersect(names(expect), rownames(res))) {
    ok <- abs(res[nm, "chisq"] - expect[[nm]][1]) < 0.01 &&
          res[nm, "df"] == expect[[nm]][2]
    cat(sprintf("check %-14s chisq %.3f df %g : %s\n", nm, res[nm, "chisq"],
                res[nm, "df"], if (ok) "OK" else "MISMATCH"))
    if (!ok) stop("reference check failed for ", nm)
  }
}
cat(sprintf("done in %.1f s\n", as.numeric(difftime(Sys.time(), t0, units = "secs"))))
