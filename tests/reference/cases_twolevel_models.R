## Two-level SEM wired into sem() (issue 16): lavaan 0.6-14 reference numbers for
## tests/test_twolevel.py.  Standalone, from the repository root:
##
##   Rscript tests/reference/cases_twolevel_models.R
##
## Needs data/demo_twolevel.csv and data/demo_twolevel_mar.csv (cases_twolevel.R).  Writes
##   data/demo_twolevel_shuffled.csv      Demo.twolevel with the rows in random order
##   data/demo_twolevel_mar_shuffled.csv  the MAR version with the rows in random order
##   data/demo_twolevel_groups.csv        Demo.twolevel with a group column g (a, b)
##   json/twolevel_*.json                 cases below
##
## Cases (lavaan's default optimizer settings: nlminb stops ~1e-4 short of the maximum in
## flat directions such as the level-2 intercepts, and tighter rel.tol makes it report
## non-convergence, so the tests compare estimates to 2e-4 absolute): a model with a
## between-only outcome and covariate and a within-only covariate of one indicator; a "both"
## variable as a level-1 covariate with a saturated level 2; labels across levels with a
## defined parameter; two groups (lavaan's group: blocks with the same model in both groups,
## free and with loadings equal by labels); the shuffled files (what lavaan does with them).

source("tests/reference/helpers.R")

DEMO_MODEL <- paste("level: 1",
                    "  fw =~ y1 + y2 + y3",
                    "  fw ~ x1 + x2 + x3",
                    "level: 2",
                    "  fb =~ y1 + y2 + y3",
                    "  fb ~ w1 + w2", sep = "\n")
BETWEEN_MODEL <- paste("level: 1",
                       "  fw =~ y1 + y2 + y3",
                       "  y1 ~ x1",
                       "level: 2",
                       "  fb =~ y1 + y2 + y3",
                       "  w2 ~ fb + w1", sep = "\n")
BOTHX_MODEL <- paste("level: 1",
                     "  y1 ~ y2 + x1",
                     "level: 2",
                     "  y1 ~~ y2", sep = "\n")
CROSS_MODEL <- paste("level: within",
                     "  fw =~ y1 + a*y2 + b*y3",
                     "level: between",
                     "  fb =~ y1 + a*y2 + b*y3",
                     "  fb ~ w1",
                     "  ab := a*b", sep = "\n")
GROUP_BLOCK <- paste("level: 1",
                     "  fw =~ y1 + y2 + y3",
                     "  fw ~ x1",
                     "level: 2",
                     "  fb =~ y1 + y2 + y3", sep = "\n")
GROUP_BLOCK_EQ <- paste("level: 1",
                        "  fw =~ y1 + lw2*y2 + lw3*y3",
                        "  fw ~ x1",
                        "level: 2",
                        "  fb =~ y1 + lb2*y2 + lb3*y3", sep = "\n")

DEMO_PATH  <- file.path(DATA_DIR, "demo_twolevel.csv")
MAR_PATH   <- file.path(DATA_DIR, "demo_twolevel_mar.csv")
SHUF_PATH  <- file.path(DATA_DIR, "demo_twolevel_shuffled.csv")
MSHUF_PATH <- file.path(DATA_DIR, "demo_twolevel_mar_shuffled.csv")
GROUP_PATH <- file.path(DATA_DIR, "demo_twolevel_groups.csv")

demo <- read_data(DEMO_PATH)
mar  <- read_data(MAR_PATH)
set.seed(2026016)
write_exact_csv(demo[sample(nrow(demo)), ], SHUF_PATH)
write_exact_csv(mar[sample(nrow(mar)), ], MSHUF_PATH)
gd <- demo[, c("y1", "y2", "y3", "x1", "w1", "cluster")]
gd$g <- ifelse(gd$cluster %% 2 == 1, "a", "b")   # cluster 1 first: group "a" comes first
write_exact_csv(gd, GROUP_PATH)
shuf  <- read_data(SHUF_PATH)
mshuf <- read_data(MSHUF_PATH)
groups <- read_data(GROUP_PATH)

tl_parameters <- function(fit) {
  pe <- as.data.frame(parameterEstimates(fit, standardized = TRUE))
  cols <- intersect(c("lhs", "op", "rhs", "block", "group", "level", "label", "est", "se", "z",
                      "pvalue", "ci.lower", "ci.upper", "std.lv", "std.all", "std.nox"),
                    names(pe))
  pe <- pe[, cols]
  names(pe) <- clean_names(names(pe))
  df_records(pe)
}

level_moments <- function(x) {
  lapply(names(x), function(lv) list(level = lv, cov = named_matrix(x[[lv]]$cov),
                                     mean = named_vector(x[[lv]]$mean)))
}

moments_by_group <- function(fit, what) {
  x <- lavInspect(fit, what)
  G <- lavInspect(fit, "ngroups")
  if (G == 1) return(list(level_moments(x)))
  if (!is.null(x[[1]]$cov)) {   # a flat list of blocks: group 1 within, between, group 2 ...
    return(lapply(seq_len(G), function(g) {
      b <- x[(2 * g - 1):(2 * g)]
      names(b) <- c("within", "cluster")
      level_moments(b)
    }))
  }
  lapply(x, level_moments)
}

twolevel_record <- function(case, model, data, data_path, opts = list(), extra = list()) {
  fr <- tryCatch(fit_capture("sem", model, data, c(list(cluster = "cluster"), opts)),
                 error = function(e) list(error = conditionMessage(e)))
  out <- c(list(case = case), VERSIONS, list(data = data_path),
           list(call = list(`function` = "sem", model = model,
                            options = py_opts_json(c(list(cluster = "cluster"), opts)))))
  if (!is.null(fr$error)) {
    out$error <- fr$error
    write_case(case, c(out, extra))
    message(sprintf("%-30s ERROR %s", case, fr$error))
    return(invisible(out))
  }
  fit <- fr$fit
  if (!lavInspect(fit, "converged")) {   # lavaan gives no fit measures then
    out <- c(out, list(converged = FALSE, warnings = I(fr$warnings),
                       parameters = tl_parameters(fit)), extra)
    write_case(case, out)
    message(sprintf("%-30s NOT CONVERGED: %s", case, paste(fr$warnings, collapse = " | ")))
    return(invisible(fit))
  }
  icc <- lavInspect(fit, "icc")
  if (!is.list(icc)) icc <- list(icc)
  out <- c(out, list(nobs = lavInspect(fit, "nobs"), ntotal = lavInspect(fit, "ntotal"),
                     nclusters = lavInspect(fit, "nclusters"),
                     converged = lavInspect(fit, "converged"),
                     warnings = I(fr$warnings),
                     parameters = tl_parameters(fit), fit = get_fit(fit),
                     implied = moments_by_group(fit, "implied"),
                     h1 = moments_by_group(fit, "h1"),
                     icc = lapply(icc, named_vector),
                     vcov_names = I(rownames(vcov(fit)))), extra)
  write_case(case, out)
  fm <- fitMeasures(fit)
  message(sprintf("%-30s logl %.4f chisq %.4f df %d npar %d", case, fm["logl"], fm["chisq"],
                  as.integer(fm["df"]), as.integer(fm["npar"])))
  invisible(fit)
}

TIGHT <- list()

twolevel_record("twolevel_between_ml", BETWEEN_MODEL, demo, DEMO_PATH, TIGHT)
twolevel_record("twolevel_bothx_ml", BOTHX_MODEL, demo, DEMO_PATH, TIGHT)
twolevel_record("twolevel_cross_ml", CROSS_MODEL, demo, DEMO_PATH, TIGHT)
twolevel_record("twolevel_cross_mlr", CROSS_MODEL, demo, DEMO_PATH,
                c(TIGHT, list(estimator = "MLR")))
twolevel_record("twolevel_groups_ml",
                paste("group: a", GROUP_BLOCK, "group: b", GROUP_BLOCK, sep = "\n"),
                groups, GROUP_PATH, c(TIGHT, list(group = "g")))
twolevel_record("twolevel_groups_equal_ml",
                paste("group: a", GROUP_BLOCK_EQ, "group: b", GROUP_BLOCK_EQ, sep = "\n"),
                groups, GROUP_PATH, c(TIGHT, list(group = "g")))
## the shuffled files: lavaan 0.6-14 on the same data in another row order
twolevel_record("twolevel_shuffled_ml", DEMO_MODEL, shuf, SHUF_PATH)
twolevel_record("twolevel_mar_shuffled_ml", DEMO_MODEL, mshuf, MSHUF_PATH,
                list(missing = "ml"))
