## Two-level SEM by ML (issue 16): lavaan reference numbers for the numerical core
## (sem_models/estimation/twolevel.py).  Standalone, from the repository root:
##
##   Rscript tests/reference/cases_twolevel.R
##
## Writes
##   data/demo_twolevel.csv       lavaan's Demo.twolevel (2500 rows, 200 clusters), exact digits
##   data/demo_twolevel_mar.csv   the same with ~10% of y1 set to NA at random given x1 (MAR)
##   json/twolevel_demo_ml.json, twolevel_demo_mlr.json, twolevel_demo_mar_ml.json
##
## Besides the usual fit / parameter records every case stores, per level ("within",
## "cluster"), lavaan's implied, h1 and sampstat moments, the independence (baseline) model
## (`lav_object_independence`), lavaan's cluster-size sample statistics (YLp: S.PW =
## Sigma.W, cluster sizes, mean.d / cov.d), and, to test the moment-coordinate derivatives,
## `delta` (with lavaan's row names: per level mean then the column-wise lower triangle of the
## covariance), `information.expected`, `information.observed` and
## `information.first.order` (lavaan's per-unit scaling: divided by the total N).

source("tests/reference/helpers.R")

TL_MODEL <- paste("level: 1",
                  "  fw =~ y1 + y2 + y3",
                  "  fw ~ x1 + x2 + x3",
                  "level: 2",
                  "  fb =~ y1 + y2 + y3",
                  "  fb ~ w1 + w2", sep = "\n")

DEMO_PATH <- file.path(DATA_DIR, "demo_twolevel.csv")
MAR_PATH  <- file.path(DATA_DIR, "demo_twolevel_mar.csv")

write_twolevel_data <- function() {
  d <- lavaan::Demo.twolevel
  write_exact_csv(d, DEMO_PATH)
  set.seed(20261116)
  m <- d
  ## MAR: probability of a missing y1 rises with the (always observed) x1; ~10% overall
  p <- plogis(-2.5 + 0.9 * m$x1)
  m$y1[runif(nrow(m)) < p] <- NA
  write_exact_csv(m, MAR_PATH)
}

level_moments <- function(x) {
  ## list(within = list(cov, mean), cluster = list(cov, mean)) -> JSON records
  lapply(names(x), function(lv) {
    out <- list(level = lv, cov = named_matrix(x[[lv]]$cov))
    if (!is.null(x[[lv]]$mean)) out$mean <- named_vector(x[[lv]]$mean)
    out
  })
}

tl_parameters <- function(fit) {
  pe <- as.data.frame(parameterEstimates(fit, standardized = TRUE))
  pt <- parTable(fit)
  key_pe <- paste(pe$lhs, pe$op, pe$rhs, pe$level, sep = "\r")
  key_pt <- paste(pt$lhs, pt$op, pt$rhs, pt$level, sep = "\r")
  idx <- match(key_pe, key_pt)
  if (any(is.na(idx))) stop("could not match parameterEstimates rows to parTable")
  pe$free <- pt$free[idx]; pe$plabel <- pt$plabel[idx]; pe$exo <- pt$exo[idx]
  cols <- intersect(c("lhs", "op", "rhs", "level", "label", "est", "se", "z", "pvalue",
                      "ci.lower", "ci.upper", "std.lv", "std.all", "std.nox",
                      "free", "plabel", "exo"), names(pe))
  pe <- pe[, cols]
  names(pe) <- clean_names(names(pe))
  df_records(pe)
}

tl_matrix <- function(m) list(rownames = I(rownames(m)), colnames = I(colnames(m)),
                              matrix = unname(unclass(as.matrix(m))))

ylp_stats <- function(fit) {
  Lp  <- fit@Data@Lp[[1]]
  YLp <- fit@SampleStats@YLp[[1]][[2]]
  list(ov_names = I(lavNames(fit, "ov")),
       between_idx = I(Lp$between.idx[[2]]), within_idx = I(Lp$within.idx[[2]]),
       both_idx = I(Lp$both.idx[[2]]),
       nclusters = Lp$nclusters[[2]], nobs = Lp$nclusters[[1]],
       cluster_sizes = I(Lp$cluster.sizes[[2]]),
       cluster_size_ns = I(Lp$cluster.size.ns[[2]]),
       S_PW = unname(YLp$Sigma.W),
       mean_d = lapply(YLp$mean.d, function(v) I(as.numeric(v))),
       cov_d = lapply(YLp$cov.d, function(m) unname(as.matrix(m))),
       loglik_x = if (is.null(YLp$loglik.x)) NULL else YLp$loglik.x)
}

safe <- function(expr) tryCatch(expr, error = function(e) list(error = conditionMessage(e)))

twolevel_case <- function(case, data, data_path, opts) {
  fr <- fit_capture("sem", TL_MODEL, data, c(list(cluster = "cluster"), opts))
  fit <- fr$fit
  base <- lavaan:::lav_object_independence(fit)
  fm <- fitMeasures(fit)
  out <- c(list(case = case), VERSIONS, list(data = data_path),
           list(call = list(`function` = "sem", model = TL_MODEL,
                            options = py_opts_json(c(list(cluster = "cluster"), opts))),
                nobs = lavInspect(fit, "nobs"), ntotal = lavInspect(fit, "ntotal"),
                nclusters = lavInspect(fit, "nclusters"),
                converged = lavInspect(fit, "converged"),
                warnings = I(fr$warnings),
                lavaan_options = fit@Options[c("information", "h1.information",
                                               "observed.information", "se", "test",
                                               "optim.method", "fixed.x", "missing")],
                parameters = tl_parameters(fit),
                fit = get_fit(fit),
                implied = level_moments(lavInspect(fit, "implied")),
                h1 = level_moments(lavInspect(fit, "h1")),
                sampstat = level_moments(lavInspect(fit, "sampstat")),
                baseline = list(logl = as.numeric(fitMeasures(base, "logl")),
                                npar = as.numeric(fitMeasures(base, "npar")),
                                implied = level_moments(lavInspect(base, "implied")),
                                parameters = tl_parameters(base)),
                ylp = ylp_stats(fit),
                delta = tl_matrix(lavInspect(fit, "delta")),
                information_expected = safe(tl_matrix(lavInspect(fit, "information.expected"))),
                information_observed = safe(tl_matrix(lavInspect(fit, "information.observed"))),
                information_first_order = safe(tl_matrix(lavInspect(fit, "information.first.order"))),
                vcov = get_vcov(fit)))
  write_case(case, out)
  message(sprintf("%-22s logl %.4f h1 %.4f base %.4f chisq %.4f df %d scaled %s",
                  case, fm["logl"], fm["unrestricted.logl"], out$baseline$logl,
                  fm["chisq"], as.integer(fm["df"]),
                  if ("chisq.scaled" %in% names(fm)) sprintf("%.4f", fm["chisq.scaled"]) else "-"))
  invisible(out)
}

write_twolevel_data()
demo <- read_data(DEMO_PATH)
mar  <- read_data(MAR_PATH)
twolevel_case("twolevel_demo_ml", demo, DEMO_PATH, list())
twolevel_case("twolevel_demo_mlr", demo, DEMO_PATH, list(estimator = "MLR"))
twolevel_case("twolevel_demo_mar_ml", mar, MAR_PATH, list(missing = "ml"))
## NB: estimator = "MLR" with missing = "ml" stops in lavaan 0.6-14 on this data
## ("infinite or missing values in 'x'" in lav_model_vcov), so there is no such case.
