## lavaan references, wave 2 / issue 10: the results a lavaan user expects from a fit
## (lavInspect keys, R-squared, parameterEstimates(rsquare = TRUE), the summary() text).
##
## Usage (from the repository root):  Rscript tests/reference/cases_wave2_results.R
## Writes tests/reference/json/w2_results_*.json (schema: tests/reference/README.md,
## section "Wave 2").
##
## This file also defines the small wave-2 extraction helpers (ser(), fit_args(), ...) used
## by cases_wave2_semantics.R and cases_wave2_coverage.R, which source() it; the cases below
## run only when this file is the script given to Rscript (sys.nframe() == 0).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

HS_PATH <- "data/HolzingerSwineford1939.csv"
PD_PATH <- "data/PoliticalDemocracy.csv"
W2_HS_MODEL <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
## the sem() example of lavaan's tutorial / ?sem (no equality labels)
W2_PD_MODEL <- paste(
  "# measurement model",
  "ind60 =~ x1 + x2 + x3",
  "dem60 =~ y1 + y2 + y3 + y4",
  "dem65 =~ y5 + y6 + y7 + y8",
  "# regressions",
  "dem60 ~ ind60",
  "dem65 ~ ind60 + dem60",
  "# residual correlations",
  "y1 ~~ y5",
  "y2 ~~ y4 + y6",
  "y3 ~~ y7",
  "y4 ~~ y8",
  "y6 ~~ y8",
  sep = "\n")

## ------------------------------------------------------------------
## wave-2 helpers
## ------------------------------------------------------------------

## Generic serializer for lavInspect() / lavResiduals() output:
##   matrix          -> {"rownames", "colnames", "matrix"} (rows)
##   named vector    -> {"names", "values"}
##   unnamed vector  -> scalar (length 1) or array
##   data.frame with row names (lavaan summaries) -> like a matrix; other data.frames ->
##   records; list -> object (named) / array (unnamed), recursively.
w2_mat <- function(m) {
  m <- as.matrix(m)
  rn <- rownames(m); cn <- colnames(m)
  list(rownames = I(if (is.null(rn)) character() else rn),
       colnames = I(if (is.null(cn)) character() else cn),
       matrix = unname(unclass(m)))
}
ser <- function(x) {
  if (is.null(x)) return(NULL)
  if (is.data.frame(x)) {
    rn <- rownames(x)
    if (!is.null(rn) && !identical(rn, as.character(seq_len(nrow(x)))))
      return(w2_mat(as.matrix(x)))
    return(df_records(x))
  }
  if (is.matrix(x)) return(w2_mat(x))
  if (is.list(x)) {
    out <- lapply(unclass(x), ser)
    return(out)
  }
  if (is.factor(x)) x <- as.character(x)
  v <- unname(as.vector(x))
  if (!is.null(names(x))) return(list(names = I(names(x)), values = I(v)))
  if (length(v) == 1) return(v)
  I(v)
}

## Fit with arbitrary arguments (sample.cov fits, growth(), ...), capturing warnings.
fit_args <- function(fun, args) {
  r <- capture_warnings(do.call(fun, args))
  list(fit = r$value, warnings = r$warnings)
}

W2_INSPECT_KEYS <- c("free", "partable", "start", "est", "se", "std", "implied",
                     "sampstat", "nobs", "ngroups", "group.label", "r2", "cov.lv",
                     "cor.lv", "converged", "iterations", "information",
                     "information.expected", "information.observed", "vcov")
W2_ARRAY_KEYS <- c("nobs", "group.label")

## lavInspect(fit, key) for every key, keyed by lavaan's own key names.
get_inspect <- function(fit, keys = W2_INSPECT_KEYS) {
  out <- lapply(keys, function(k) {
    v <- tryCatch(lavInspect(fit, k), error = function(e) paste("ERROR:", conditionMessage(e)))
    if (k %in% W2_ARRAY_KEYS) I(unname(as.vector(v))) else ser(v)
  })
  names(out) <- keys
  out
}

## parTable(fit): every row incl. fixed / constraint rows, with start, est, se.
get_partable_full <- function(fit) {
  pt <- as.data.frame(parTable(fit))
  gl <- group_labels(fit)
  pt$group_label <- if (length(gl)) ifelse(pt$group >= 1, gl[pmax(pt$group, 1)], "") else ""
  keep <- intersect(c("id", "lhs", "op", "rhs", "user", "block", "group", "group_label",
                      "free", "ustart", "exo", "label", "plabel", "start", "est", "se"),
                    names(pt))
  df_records(pt[, keep])
}

## parameterEstimates(fit, rsquare = TRUE): the op == "r2" rows only.
get_pe_r2 <- function(fit) {
  pe <- as.data.frame(parameterEstimates(fit, rsquare = TRUE))
  pe <- pe[pe$op == "r2", , drop = FALSE]
  if (!"group" %in% names(pe)) pe$group <- 1L
  pe <- add_group_label(pe, fit)
  cols <- intersect(c("lhs", "op", "rhs", "group", "est"), names(pe))
  df_records(pe[, cols])
}

## capture.output(summary(fit, ...)) as one string (lines joined by "\n").
get_summary_text <- function(fit) {
  txt <- capture.output(summary(fit, fit.measures = TRUE, standardized = TRUE,
                                rsquare = TRUE))
  paste(txt, collapse = "\n")
}

## lavInspect(fit, "test"): every test statistic lavaan computed (standard, scaled, ...).
get_tests <- function(fit) {
  tt <- lavInspect(fit, "test")
  lapply(unclass(tt), function(t) lapply(t, function(v) {
    if (is.character(v)) return(v)
    v <- unname(as.vector(v))
    if (length(v) == 1) v else I(v)
  }))
}

## All modification indices, sorted by mi (largest first).
get_modindices_all <- function(fit) get_modindices(fit, n = 100000L)

## Residuals of every type (resid(fit, type = t)), per group, and lavResiduals().
W2_RESID_TYPES <- c("raw", "cor", "cor.bollen", "cor.bentler", "normalized", "standardized")
get_residuals_all <- function(fit) {
  gl <- group_labels(fit)
  one <- function(type) {
    r <- capture_warnings(resid(fit, type = type))
    rr <- per_group(fit, r$value)
    lapply(seq_along(rr), function(g) {
      out <- list(group = if (length(gl)) gl[g] else "", type = type)
      if (!is.null(rr[[g]]$cov)) out$cov <- w2_mat(rr[[g]]$cov)
      if (!is.null(rr[[g]]$mean)) out$mean <- named_vector(rr[[g]]$mean)
      out$warnings <- I(r$warnings)
      out
    })
  }
  res <- lapply(W2_RESID_TYPES, one)
  names(res) <- gsub(".", "_", W2_RESID_TYPES, fixed = TRUE)
  lr <- function(type) {
    x <- per_group(fit, lavResiduals(fit, type = type))
    lapply(seq_along(x), function(g) c(list(group = if (length(gl)) gl[g] else ""),
                                       ser(x[[g]])))
  }
  res$lavResiduals <- lr("cor.bentler")
  res$lavResiduals_raw <- lr("raw")
  res
}

## Factor scores: first n rows, column means and number of rows, per group.
get_fscores_methods <- function(fit, methods = c("regression", "Bartlett"), n = 20) {
  gl <- group_labels(fit)
  out <- lapply(methods, function(m) {
    fs <- lavPredict(fit, method = m)
    fs <- if (is.list(fs) && !is.matrix(fs)) fs else list(fs)
    lapply(seq_along(fs), function(g) {
      x <- unclass(fs[[g]])
      list(group = if (length(gl)) gl[g] else "", method = m, nrow = nrow(x),
           colnames = I(colnames(x)),
           head = unname(x[seq_len(min(n, nrow(x))), , drop = FALSE]),
           colmeans = I(unname(colMeans(x))))
    })
  })
  names(out) <- methods
  out
}

## lavTestLRT with several methods; an error is recorded instead of stopping.
get_lrt_methods <- function(fits, methods = "default") {
  lapply(methods, function(m) tryCatch(
    get_lrt(fits, method = m),
    error = function(e) list(method = m, error = conditionMessage(e))))
}

print_w2_results <- function() {
  res <- do.call(rbind, RESULTS)
  if (is.null(res)) return(invisible())
  cat("\ncase                                      chisq     df   npar conv\n")
  for (nm in rownames(res))
    cat(sprintf("%-38s %10.4f %6g %6g %4d\n", nm, res[nm, "chisq"], res[nm, "df"],
                res[nm, "npar"], as.integer(res[nm, "converged"])))
  bad <- rownames(res)[res[, "converged"] != 1]
  if (length(bad)) cat("NOT CONVERGED:", bad, "\n")
}

## stop if a case's chi-square / df differ from an expected (published) value
check_w2 <- function(case, chisq, df, tol = 0.01) {
  r <- RESULTS[[case]]
  ok <- abs(r[["chisq"]] - chisq) < tol && r[["df"]] == df
  cat(sprintf("check %-32s chisq %.3f df %g (expected %.3f, %g): %s\n", case,
              r[["chisq"]], r[["df"]], chisq, df, if (ok) "OK" else "MISMATCH"))
  if (!ok) stop("reference check failed for ", case)
}

## ------------------------------------------------------------------
## cases
## ------------------------------------------------------------------
run_wave2_results <- function() {
  hs <- read_data(HS_PATH)
  pd <- read_data(PD_PATH)
  extras <- function(fit) list(lavInspect = get_inspect(fit),
                               r2 = ser(inspect(fit, "r2")),
                               pe_rsquare = get_pe_r2(fit),
                               partable_full = get_partable_full(fit),
                               summary_text = get_summary_text(fit))
  note <- paste("lavInspect: lavInspect(fit, key) for each key (lavaan's key names);",
                "'information' is the unit (per-observation) information matrix",
                "(expected for ML on complete data); 'std' = std.all matrices;",
                "'sampstat' covariances have divisor N.")
  run_case("w2_results_hs", "cfa", W2_HS_MODEL, hs, HS_PATH, list(), extras, notes = note)
  run_case("w2_results_pd", "sem", W2_PD_MODEL, pd, PD_PATH, list(), extras, notes = note)
  run_case("w2_results_hs_groups", "cfa", W2_HS_MODEL, hs, HS_PATH,
           list(group = "school"), extras,
           notes = paste(note, "Multi-group: lavInspect values are objects keyed by group",
                         "label (Pasteur, Grant-White) where lavaan returns a list per group."))
  print_w2_results()
  check_w2("w2_results_hs", 85.306, 24)
  check_w2("w2_results_pd", 38.125, 35)
  check_w2("w2_results_hs_groups", 115.851, 48)
  invisible(TRUE)
}

if (sys.nframe() == 0L) run_wave2_results()
