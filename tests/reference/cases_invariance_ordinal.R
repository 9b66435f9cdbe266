## Ordinal measurement invariance (issue 15): semTools 0.5-6 measEq.syntax with each ID.cat
## (Wu.Estabrook.2016, Mplus, Millsap.Tein.2004, LISREL) under delta / theta, lavaan 0.6-14.
##
## Usage (from the repository root):  Rscript tests/reference/cases_invariance_ordinal.R
## Needs tests/reference/data/cat_datcat.csv, cat_hs_cut.csv and ord_binary.csv (written by
## cases_categorical_stats.R / cases_ordinal_fits.R); writes tests/reference/json/inv_ord_*.json.
##
## JSON layout (one file per sequence):
##   case, versions, data, model, group, long_fac_names, ordered, parameterization, id_cat,
##   steps: one per level {level, group_equal, long_equal, npar, fit (fitMeasures: chisq, df,
##          chisq.scaled, ..., names with "." -> "_"; NA -> null), robust_wls {cfi, tli, rmsea}
##          (lavaan's lav_fit_cfi / lav_fit_tli formulas and lav_fit_rmsea of the standard
##          statistic with c.hat = scaling.factor * (df - shift) / df of the scaled-shifted
##          test, for the model and the baseline: the robust indices lavaan computes for
##          continuous (D)WLS, here for the ordinal fits, without lavaan's fallback to the
##          standard formulas when a c.hat is exactly 1), lrt (lavTestLRT(previous, this):
##          Satorra 2000, lavaan's default for WLSMV), partable (lhs, op, rhs, group, free, ustart, est)}
##   score (some cases): lavTestScore(fit) of the scalar model (univariate tests with the two
##          parameters of each constraint named, total test) and modindices(fit, op = "~1")
##          (freeing the intercepts that are fixed to 0).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

dc <- read_data(file.path(DATA_DIR, "cat_datcat.csv"))
hs <- read_data(file.path(DATA_DIR, "cat_hs_cut.csv"))
bin <- read_data(file.path(DATA_DIR, "ord_binary.csv"))

DATCAT <- "FU1 =~ u1 + u2 + u3 + u4\nFU2 =~ u5 + u6 + u7 + u8"
HS <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
## a longitudinal layout on the HS items: the same three items (4, 3, 3 categories) at two
## "occasions" (chains x1/x3, x2/x6, x4/x9)
HS_LONG <- "T1 =~ x1 + x2 + x4\nT2 =~ x3 + x6 + x9"
BIN <- "F1 =~ b1 + b2 + b3\nF2 =~ b4 + b5 + b6"

## group.equal / long.equal of each level under each convention
keywords <- function(id_cat, level) {
  wu <- list(configural = "", thresholds = "thresholds",
             metric = c("thresholds", "loadings"),
             scalar = c("thresholds", "loadings", "intercepts"),
             strict = c("thresholds", "loadings", "intercepts", "residuals"))
  other <- list(configural = "", metric = "loadings",
                scalar = c("loadings", "thresholds", "intercepts"),
                strict = c("loadings", "thresholds", "intercepts", "residuals"))
  if (id_cat == "Wu.Estabrook.2016") wu[[level]] else other[[level]]
}

robust_wls <- function(fit) {
  ts <- fit@test
  bs <- fit@baseline$test
  X2 <- ts[[1]]$stat; df <- ts[[1]]$df
  c1 <- ts[[2]]$scaling.factor * (df - ts[[2]]$shift.parameter) / df
  X0 <- bs[[1]]$stat; df0 <- bs[[1]]$df
  c0 <- bs[[2]]$scaling.factor * (df0 - bs[[2]]$shift.parameter) / df0
  N <- lavaan:::lav_utils_get_ntotal(lavobject = fit)
  G <- lavInspect(fit, "ngroups")
  ## lavaan's lav_fit_cfi / lav_fit_tli formulas with c.hat, written out: lavaan falls back to
  ## the standard formulas when a c.hat is exactly 1, which the baseline's
  ## tr(U Gamma) / df = 1 hits or misses by rounding (here: always the robust formulas)
  t1 <- max(X2 - c1 * df, 0)
  t2 <- max(X2 - c1 * df, X0 - c0 * df0, 0)
  cfi <- if (isTRUE(all.equal(t1, 0)) && isTRUE(all.equal(t2, 0))) 1 else 1 - t1 / t2
  tli <- 1 - ((X2 - c1 * df) * df0) / ((X0 - c0 * df0) * df)
  list(cfi = cfi, tli = tli, c_hat = c1, c_hat_null = c0,
       rmsea = lavaan:::lav_fit_rmsea(X2 = X2, df = df, N = N, G = G, c.hat = c1))
}

FIT_KEYS <- c("npar", "chisq", "df", "pvalue", "chisq.scaled", "df.scaled", "pvalue.scaled",
              "chisq.scaling.factor", "chisq.shift.parameter", "cfi", "tli", "rmsea",
              "cfi.scaled", "tli.scaled", "rmsea.scaled", "cfi.robust", "tli.robust",
              "rmsea.robust", "srmr", "baseline.chisq", "baseline.df")

get_pt <- function(fit) {
  pt <- as.data.frame(parTable(fit))
  pt <- pt[pt$op %in% c("=~", "|", "~1", "~~", "~*~"), ]
  gl <- group_labels(fit)
  grp <- if (length(gl)) gl[pt$group] else rep("", nrow(pt))
  df_records(data.frame(lhs = pt$lhs, op = pt$op, rhs = pt$rhs, group = grp,
                        free = pt$free > 0, ustart = pt$ustart, est = pt$est,
                        stringsAsFactors = FALSE))
}

run_sequence <- function(case, model, data, data_path, levels, id_cat, param, group = NULL,
                         long = list(), long_and_group = FALSE, ordered, score = FALSE) {
  steps <- list()
  prev <- NULL
  fits <- list()
  for (lv in levels) {
    kw <- keywords(id_cat, lv)
    args <- list(configural.model = model, data = data, ordered = ordered,
                 parameterization = param, ID.cat = id_cat, return.fit = TRUE)
    if (!is.null(group)) args$group <- group
    if (length(long)) {
      args$longFacNames <- long
      args$long.equal <- kw
      if (!is.null(group)) args$group.equal <- if (long_and_group) kw else ""
    } else {
      args$group.equal <- kw
    }
    fr <- capture_warnings(do.call(measEq.syntax, args))
    fit <- fr$value
    if (!isTRUE(lavInspect(fit, "converged"))) message("WARNING: ", case, " ", lv,
                                                      " did not converge")
    fm <- fitMeasures(fit, FIT_KEYS)
    fm <- as.list(setNames(as.numeric(fm), gsub(".", "_", names(fm), fixed = TRUE)))
    step <- list(level = lv, group_equal = I(if (length(long) && !long_and_group) character()
                                           else setdiff(kw, "")),
                 long_equal = I(if (length(long)) setdiff(kw, "") else character()),
                 npar = as.integer(fm$npar), fit = fm, robust_wls = robust_wls(fit),
                 partable = get_pt(fit), warnings = I(fr$warnings))
    if (!is.null(prev)) {
      l <- capture_warnings(lavTestLRT(prev, fit))
      a <- as.data.frame(l$value)
      step$lrt <- list(chisq_diff = a[2, "Chisq diff"], df_diff = a[2, "Df diff"],
                       pvalue = a[2, "Pr(>Chisq)"], method = attr(l$value, "heading"),
                       warnings = I(l$warnings))
    }
    steps[[length(steps) + 1]] <- step
    fits[[lv]] <- fit
    prev <- fit
  }
  out <- c(list(case = case), VERSIONS,
           list(data = data_path, model = model, group = group,
                long_fac_names = long, ordered = I(ordered), parameterization = param,
                id_cat = id_cat, levels = I(levels), steps = steps))
  if (score) {
    fit <- fits[["scalar"]]
    out$score <- get_score_tests(fit)
    mi <- as.data.frame(modindices(fit, op = "~1", sort. = FALSE))
    gl <- group_labels(fit)
    out$modindices_intercepts <- df_records(data.frame(
      lhs = mi$lhs, op = mi$op, group = gl[mi$group], mi = mi$mi, epc = mi$epc,
      stringsAsFactors = FALSE))
  }
  write_case(case, out)
  invisible(fits)
}

U8 <- paste0("u", 1:8)
X9 <- paste0("x", 1:9)
DC_PATH <- file.path(DATA_DIR, "cat_datcat.csv")
HS_PATH <- file.path(DATA_DIR, "cat_hs_cut.csv")
BIN_PATH <- file.path(DATA_DIR, "ord_binary.csv")
WU <- c("configural", "thresholds", "metric", "scalar")
OTHER <- c("configural", "metric", "scalar")

## datCat by g: every convention
run_sequence("inv_ord_datcat_wu_delta", DATCAT, dc, DC_PATH, WU, "Wu.Estabrook.2016",
             "delta", "g", ordered = U8, score = TRUE)
run_sequence("inv_ord_datcat_wu_theta", DATCAT, dc, DC_PATH, c(WU, "strict"),
             "Wu.Estabrook.2016", "theta", "g", ordered = U8)
run_sequence("inv_ord_datcat_mplus_delta", DATCAT, dc, DC_PATH, OTHER, "Mplus", "delta", "g",
             ordered = U8)
run_sequence("inv_ord_datcat_mplus_theta", DATCAT, dc, DC_PATH, c(OTHER, "strict"), "Mplus",
             "theta", "g", ordered = U8)
run_sequence("inv_ord_datcat_millsap_theta", DATCAT, dc, DC_PATH, c(OTHER, "strict"),
             "Millsap.Tein.2004", "theta", "g", ordered = U8)
run_sequence("inv_ord_datcat_lisrel_theta", DATCAT, dc, DC_PATH, c(OTHER, "strict"), "LISREL",
             "theta", "g", ordered = U8)

## HS39 cut into 3-4 categories, by school
run_sequence("inv_ord_hs_wu_delta", HS, hs, HS_PATH, WU, "Wu.Estabrook.2016", "delta",
             "school", ordered = X9)
run_sequence("inv_ord_hs_wu_theta", HS, hs, HS_PATH, c(WU, "strict"), "Wu.Estabrook.2016",
             "theta", "school", ordered = X9)
run_sequence("inv_ord_hs_mplus_delta", HS, hs, HS_PATH, OTHER, "Mplus", "delta", "school",
             ordered = X9)

## longitudinal (one group; and by school with groups and occasions constrained together)
LONG <- list(T = c("T1", "T2"))
HSL <- c("x1", "x2", "x4", "x3", "x6", "x9")
run_sequence("inv_ord_hs_long_wu_delta", HS_LONG, hs, HS_PATH, WU, "Wu.Estabrook.2016",
             "delta", long = LONG, ordered = HSL)
run_sequence("inv_ord_hs_long_wu_theta", HS_LONG, hs, HS_PATH, c(WU, "strict"),
             "Wu.Estabrook.2016", "theta", long = LONG, ordered = HSL)
run_sequence("inv_ord_hs_long_mplus_theta", HS_LONG, hs, HS_PATH, c(OTHER, "strict"), "Mplus",
             "theta", long = LONG, ordered = HSL)
run_sequence("inv_ord_hs_long_group_wu_delta", HS_LONG, hs, HS_PATH, WU, "Wu.Estabrook.2016",
             "delta", group = "school", long = LONG, long_and_group = TRUE, ordered = HSL)

## binary items by school (Wu & Estabrook: the equal threshold of a binary item only frees its
## intercept, so the thresholds step has 0 df; lavaan does not converge for the scalar model
## of these data, nor for the theta parameterization of the thresholds model)
run_sequence("inv_ord_binary_wu_delta", BIN, bin, BIN_PATH, WU[1:3], "Wu.Estabrook.2016",
             "delta", "school", ordered = paste0("b", 1:6))
