## lavaan references, issue 11 (hardening): defaults and options whose semantics were missing
## or silently different.
##   * std.lv = TRUE with group.equal = c("loadings", "lv.variances") and with "lv.variances"
##     alone: the factor variances stay fixed to 1 in every group (lavaan frees them in later
##     groups only for "loadings" without "lv.variances"; see w2_sem_stdlv_metric);
##   * auto.fix.single for an observed indicator: "single =~ x4" fixes x4's residual
##     variance to 0 (w2_sem_phantom has the latent case);
##   * group.partial naming a constrained loading (df 53);
##   * a model with one observed variable (sem("x3 ~ 1")): baseline df 0, so NFI, PNFI, IFI
##     are NA.
##
## Usage (from the repository root):  Rscript tests/reference/cases_hardening.R
## Writes tests/reference/json/h11_*.json (schema of tests/reference/README.md).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/cases_wave2_results.R")   # helpers.R + wave-2 helpers (no cases)

H11_SINGLE_MODEL <- paste("visual =~ x1 + x2 + x3",
                          "single =~ x4",
                          "single ~ visual", sep = "\n")

run_hardening <- function() {
  hs <- read_data(HS_PATH)
  ex <- function(fit) list(partable_full = get_partable_full(fit))
  run_case("h11_stdlv_loadings_lvvariances", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school", std.lv = TRUE,
                group.equal = c("loadings", "lv.variances")), ex,
           notes = paste("std.lv with equal loadings and equal factor variances: the factor",
                         "variances stay 1 in both groups (same fit as marker identification",
                         "with loadings + lv.variances: chisq 127.834, df 57)."))
  run_case("h11_stdlv_lvvariances", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school", std.lv = TRUE, group.equal = "lv.variances"), ex,
           notes = "std.lv with equal factor variances only: the configural fit (df 48).")
  run_case("h11_single_indicator", "sem", H11_SINGLE_MODEL, hs, HS_PATH, list(), ex,
           notes = paste("auto.fix.single: x4 is the only indicator of 'single', so",
                         "x4 ~~ x4 is fixed to 0 (free 0, ustart 0)."))
  run_case("h11_group_partial", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school", group.equal = "loadings", group.partial = "visual=~x2"),
           ex, notes = "metric invariance with visual=~x2 free in both groups: df 53.")
  run_case("h11_one_variable", "sem", "x3 ~ 1", hs, HS_PATH, list(), ex,
           notes = paste("one observed variable: chisq 0, df 0, baseline df 0; lavaan",
                         "reports cfi = tli = rfi = 1 and NFI, PNFI, IFI, RNI as NA."))
  print(RESULTS)
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_hardening()
