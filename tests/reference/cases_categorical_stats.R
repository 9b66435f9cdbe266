## lavaan references for the ordinal sample statistics (issue 14: stages 1-3 of
## Muthen 1984): thresholds, polychoric / polyserial / Pearson correlations, slopes under
## conditional.x, the asymptotic covariance matrix Gamma (NACOV) and the WLS weights.
##
## Usage (from the repository root):  Rscript tests/reference/cases_categorical_stats.R
## Writes the data sets tests/reference/data/cat_*.csv and tests/reference/json/cat_*.json.
##
## JSON layout (one file per case):
##   case, r_version, lavaan_version, semtools_version, data, notes
##   ordered, numeric (continuous endogenous), exo (conditional.x covariates), group, missing
##   group_labels                       lavaan's group order ([] = one group)
##   lavcor: list per group {cov, th}   lavCor(..., output = "fit") -> lavInspect("sampstat")
##   lavcor_warnings
##   fit (if a model is fitted): model, estimator, nobs, warnings and per group
##       {sampstat: the lavInspect(fit, "sampstat") pieces (cov/mean/th or res.cov/res.int/
##        res.th/res.slopes/cov.x/mean.x), gamma (lavInspect "gamma", names + matrix),
##        wls_obs (names + values), wls_v_diag (DWLS, diagonal of lavInspect "wls.v")}
##   fit_wls (same model, estimator = "WLS"): per group wls_v (full matrix)
## Matrices are {rownames, colnames, matrix (rows)}; vectors are {names, values}.

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

## ------------------------------------------------------------------
## data
## ------------------------------------------------------------------
HS_BREAKS <- list(
  x1 = c(-Inf, 4, 5, 6, Inf), x2 = c(-Inf, 5.5, 6.5, Inf),
  x3 = c(-Inf, 1.5, 2.5, 3.5, Inf), x4 = c(-Inf, 2.5, 3.5, Inf),
  x5 = c(-Inf, 3.5, 4.5, 5.5, Inf), x6 = c(-Inf, 1.5, 2.5, Inf),
  x7 = c(-Inf, 3.5, 4.5, Inf), x8 = c(-Inf, 5, 5.5, 6.5, Inf),
  x9 = c(-Inf, 4.75, 5.75, Inf))

hs_raw <- lavaan::HolzingerSwineford1939
hs <- data.frame(id = hs_raw$id, school = as.character(hs_raw$school),
                 stringsAsFactors = FALSE)
for (v in names(HS_BREAKS)) hs[[v]] <- as.integer(cut(hs_raw[[v]], HS_BREAKS[[v]]))
## continuous versions of the speed items, and centred covariates (centred so that
## lavaan's polyserial starting value is sane, see notes of cat_condx_mixed)
hs$y7 <- hs_raw$x7
hs$y8 <- hs_raw$x8
hs$y9 <- hs_raw$x9
age <- hs_raw$ageyr + hs_raw$agemo / 12
hs$agec <- age - mean(age)
hs$z9c <- hs_raw$x9 - mean(hs_raw$x9)

HS_PATH <- file.path(DATA_DIR, "cat_hs_cut.csv")
write_exact_csv(hs, HS_PATH)

set.seed(20261401)
hs_na <- hs
for (v in c(paste0("x", 1:9), "y7", "y8", "y9"))
  hs_na[[v]][runif(nrow(hs_na)) < 0.10] <- NA
HSNA_PATH <- file.path(DATA_DIR, "cat_hs_cut_na.csv")
write_exact_csv(hs_na, HSNA_PATH)

data(datCat, package = "semTools")
dc <- data.frame(lapply(datCat[paste0("u", 1:8)], function(x) as.integer(as.character(x))))
dc$g <- as.character(datCat$g)
DC_PATH <- file.path(DATA_DIR, "cat_datcat.csv")
write_exact_csv(dc, DC_PATH)

## binary items built for the 2x2 rules of lav_bvord (N = 40):
##   b1 x b2: one empty cell (0.5 added with margins kept)
##   b1 x b3: equal 50/50 margins -> -cos(2 pi n11 / N) (Brown & Benedetti 1977)
##   b1 x b4: ad = bc -> 0
##   b1 x b5: two empty cells (b5 == b1) -> +1;  b1 x b6 (b6 = 1 - b1) -> -1
b1 <- rep(c(0, 1), each = 20)
b2 <- c(rep(0, 20), rep(0, 8), rep(1, 12))
b3 <- c(rep(0, 14), rep(1, 6), rep(0, 6), rep(1, 14))
b4 <- c(rep(0, 10), rep(1, 10), rep(0, 10), rep(1, 10))
b7 <- c(rep(0, 5), rep(1, 15), rep(0, 13), rep(1, 7))
bin <- data.frame(b1 = b1, b2 = b2, b3 = b3, b4 = b4, b5 = b1, b6 = 1 - b1, b7 = b7)
BIN_PATH <- file.path(DATA_DIR, "cat_binary.csv")
write_exact_csv(bin, BIN_PATH)

## ------------------------------------------------------------------
## helpers
## ------------------------------------------------------------------
as_groups <- function(x, fit) {
  if (lavInspect(fit, "ngroups") > 1) unname(x) else list(x)
}

sampstat_json <- function(s) {
  out <- list()
  for (nm in names(s)) {
    key <- gsub(".", "_", nm, fixed = TRUE)
    v <- s[[nm]]
    if (is.matrix(v)) out[[key]] <- named_matrix(v) else out[[key]] <- named_vector(v)
  }
  out
}

lavcor_json <- function(data, vars, ordered, group = NULL, missing = "listwise") {
  args <- list(object = data[, c(vars, group), drop = FALSE], ordered = ordered,
               missing = missing, output = "fit")
  if (!is.null(group)) args$group <- group
  res <- capture_warnings(do.call(lavCor, args))
  fit <- res$value
  ss <- as_groups(lavInspect(fit, "sampstat"), fit)
  list(groups = lapply(ss, sampstat_json), warnings = I(res$warnings),
       nobs = I(lavInspect(fit, "nobs")))
}

fit_json <- function(model, data, ordered, group = NULL, missing = "listwise",
                     fun = "cfa", estimator = "WLSMV") {
  opts <- list(ordered = ordered, estimator = estimator, missing = missing)
  if (!is.null(group)) opts$group <- group
  fr <- fit_capture(fun, model, data, opts)
  fit <- fr$fit
  ss <- as_groups(lavInspect(fit, "sampstat"), fit)
  gm <- as_groups(lavInspect(fit, "gamma"), fit)
  wo <- as_groups(lavInspect(fit, "wls.obs"), fit)
  wv <- as_groups(lavInspect(fit, "wls.v"), fit)
  groups <- lapply(seq_along(ss), function(g) {
    out <- list(sampstat = sampstat_json(ss[[g]]),
                gamma = named_matrix(gm[[g]]),
                wls_obs = named_vector(wo[[g]]))
    if (estimator == "WLS") out$wls_v <- named_matrix(wv[[g]])
    else out$wls_v_diag <- named_vector(setNames(diag(wv[[g]]), rownames(gm[[g]])))
    out
  })
  list(model = model, fun = fun, estimator = estimator,
       nobs = I(lavInspect(fit, "nobs")), warnings = I(fr$warnings),
       conditional_x = lavInspect(fit, "options")$conditional.x,
       groups = groups)
}

cases_done <- character()
write_cat_case <- function(case, data_path, vars, ordered, exo = character(),
                           group = NULL, missing = "listwise", data, model = NULL,
                           fun = "cfa", lavcor = TRUE, wls = TRUE, notes = NULL) {
  out <- c(list(case = case), VERSIONS,
           list(data = data_path, variables = I(vars), ordered = I(ordered),
                numeric = I(setdiff(vars, ordered)), exo = I(exo),
                group = if (is.null(group)) NULL else group, missing = missing))
  glab <- if (is.null(group)) character() else unique(data[[group]])
  out$group_labels <- I(glab)
  if (lavcor) out$lavcor <- lavcor_json(data, vars, ordered, group, missing)
  if (!is.null(model)) {
    out$fit <- fit_json(model, data, ordered, group, missing, fun, "WLSMV")
    if (wls) out$fit_wls <- fit_json(model, data, ordered, group, missing, fun, "WLS")
  }
  if (!is.null(notes)) out$notes <- notes
  write_case(case, out)
  cases_done <<- c(cases_done, case)
}

HS_MODEL <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                  "speed =~ x7 + x8 + x9", sep = "\n")
MIXED_MODEL <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                     "speed =~ y7 + y8 + y9", sep = "\n")
X9 <- paste0("x", 1:9)
X6 <- paste0("x", 1:6)

## ------------------------------------------------------------------
## cases
## ------------------------------------------------------------------
write_cat_case("cat_hs_cut", HS_PATH, X9, X9, data = hs, model = HS_MODEL)
write_cat_case("cat_hs_cut_groups", HS_PATH, X9, X9, group = "school", data = hs,
               model = HS_MODEL)
write_cat_case("cat_datcat", DC_PATH, paste0("u", 1:8), paste0("u", 1:8), group = "g",
               data = dc,
               model = paste("FU1 =~ u1 + u2 + u3 + u4", "FU2 =~ u5 + u6 + u7 + u8",
                             sep = "\n"))
write_cat_case("cat_mixed", HS_PATH, c(X6, "y7", "y8", "y9"), X6, data = hs,
               model = MIXED_MODEL)
write_cat_case("cat_condx", HS_PATH, c("x4", "x5", "x6", "x1"), c("x4", "x5", "x6", "x1"),
               exo = c("agec", "z9c"), data = hs, fun = "sem", lavcor = FALSE,
               model = paste("f =~ x4 + x5 + x6 + x1", "f ~ agec + z9c", sep = "\n"))
write_cat_case("cat_condx_mixed", HS_PATH, c("x4", "x5", "x6", "y7"), c("x4", "x5", "x6"),
               exo = "agec", data = hs, fun = "sem", lavcor = FALSE,
               model = paste("f =~ x4 + x5 + x6 + y7", "f ~ agec", sep = "\n"),
               notes = paste(
                 "Covariates are centred. With uncentred covariates lavaan 0.6-14's",
                 "polyserial starting value (cor * sd / sum(dnorm(th))) uses the intercept",
                 "thresholds, can exceed 1 and nlminb then stops at the 0.995 bound",
                 "(e.g. raw x7 with cut x6 given age and x9: 0.995 instead of the ML 0.129)."))
write_cat_case("cat_condx_groups", HS_PATH, c("x4", "x5", "x6", "x1"),
               c("x4", "x5", "x6", "x1"), exo = "agec", group = "school", data = hs,
               fun = "sem", lavcor = FALSE, wls = FALSE,
               model = paste("f =~ x4 + x5 + x6 + x1", "f ~ agec", sep = "\n"))
write_cat_case("cat_pairwise", HSNA_PATH, X9, X9, missing = "pairwise", data = hs_na,
               model = HS_MODEL)
write_cat_case("cat_mixed_pairwise", HSNA_PATH, c(X6, "y7", "y8", "y9"), X6,
               missing = "pairwise", data = hs_na, model = MIXED_MODEL)
write_cat_case("cat_condx_pairwise", HSNA_PATH, c("x4", "x5", "x6", "x1"),
               c("x4", "x5", "x6", "x1"), exo = "agec", missing = "pairwise",
               data = hs_na, fun = "sem", lavcor = FALSE, wls = FALSE,
               model = paste("f =~ x4 + x5 + x6 + x1", "f ~ agec", sep = "\n"))
write_cat_case("cat_listwise_na", HSNA_PATH, X9, X9, data = hs_na, model = HS_MODEL,
               wls = FALSE)

## binary 2x2 rules: lavCor only (rho = +-1 makes the model fit meaningless)
bres <- capture_warnings(lavCor(bin, ordered = names(bin), output = "fit"))
bout <- c(list(case = "cat_binary"), VERSIONS,
          list(data = BIN_PATH, variables = I(names(bin)), ordered = I(names(bin)),
               numeric = I(character()), exo = I(character()), missing = "listwise",
               group_labels = I(character()),
               lavcor = list(groups = list(sampstat_json(lavInspect(bres$value, "sampstat"))),
                             warnings = I(bres$warnings), nobs = I(nrow(bin)))))
write_case("cat_binary", bout)
cases_done <- c(cases_done, "cat_binary")

cat("categorical cases written:", paste(cases_done, collapse = ", "), "\n")
