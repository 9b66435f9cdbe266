## lavaan 0.6-14 references for ordinal fits (issue 14: WLSMV and relatives, delta / theta
## parameterization, groups with equal thresholds, conditional.x, mixed, pairwise missing).
##
## Usage (from the repository root):  Rscript tests/reference/cases_ordinal_fits.R
## Needs the data written by cases_categorical_stats.R (tests/reference/data/cat_*.csv);
## writes tests/reference/data/ord_bench.csv (simulated 16 four-category items, two groups)
## and tests/reference/json/ord_*.json.
##
## JSON layout (one file per case):
##   case, versions, data, call {function, model, options (python names)}
##   nobs, group_labels, converged
##   partable      parTable(fit) rows (id lhs op rhs user group free ustart exo label plabel
##                 est se), group as the group's label
##   parameters    parameterEstimates(fit, standardized = TRUE) rows (helpers.R)
##   std           standardizedSolution(fit) rows (est.std, se)
##   fit           fitMeasures(fit) (names with "." -> "_")
##   r2            lavInspect(fit, "r2") per group (names + values)
##   implied       lavInspect(fit, "implied") per group (cov / mean / th or res.* pieces)
##   lrt           (some cases) lavTestLRT of the listed fits
##   modindices    (some cases) modindices(fit) rows

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")

hs <- read_data(file.path(DATA_DIR, "cat_hs_cut.csv"))
hs_na <- read_data(file.path(DATA_DIR, "cat_hs_cut_na.csv"))
dc <- read_data(file.path(DATA_DIR, "cat_datcat.csv"))

## simulated benchmark data: 16 four-category items, 4 factors, two groups of 500
set.seed(20261414)
simulate_group <- function(n, shift) {
  lam <- rep(c(0.8, 0.7, 0.6, 0.75), 4)
  phi <- matrix(0.4, 4, 4); diag(phi) <- 1
  eta <- MASS::mvrnorm(n, rep(shift, 4), phi)
  ystar <- sapply(1:16, function(j) lam[j] * eta[, (j - 1) %/% 4 + 1] +
                    rnorm(n, 0, sqrt(1 - lam[j]^2)))
  th <- c(-1.2, 0, 0.9)
  out <- as.data.frame(sapply(1:16, function(j) findInterval(ystar[, j], th) + 1L))
  names(out) <- paste0("y", 1:16)
  out
}
bench <- rbind(cbind(simulate_group(500, 0), g = "A"), cbind(simulate_group(500, 0.3), g = "B"))
BENCH_PATH <- file.path(DATA_DIR, "ord_bench.csv")
write_exact_csv(bench, BENCH_PATH)

## binary items: the HS cut items split at their second category
binary <- data.frame(school = hs$school)
for (j in 1:6) binary[[paste0("b", j)]] <- as.integer(hs[[paste0("x", j)]] >= 2)
BINARY_PATH <- file.path(DATA_DIR, "ord_binary.csv")
write_exact_csv(binary, BINARY_PATH)

DATA <- list(binary = list(path = BINARY_PATH, data = binary),
             hs = list(path = file.path(DATA_DIR, "cat_hs_cut.csv"), data = hs),
             hs_na = list(path = file.path(DATA_DIR, "cat_hs_cut_na.csv"), data = hs_na),
             dc = list(path = file.path(DATA_DIR, "cat_datcat.csv"), data = dc),
             bench = list(path = BENCH_PATH, data = bench))

## ------------------------------------------------------------------
## extraction
## ------------------------------------------------------------------
get_partable <- function(fit) {
  pt <- parTable(fit)
  keep <- c("id", "lhs", "op", "rhs", "user", "group", "free", "ustart", "exo", "label",
            "plabel", "est", "se")
  pt <- as.data.frame(pt)[, intersect(keep, names(pt))]
  gl <- group_labels(fit)
  if (length(gl)) pt$group <- ifelse(pt$group >= 1, gl[pmax(pt$group, 1)], "")
  else pt$group <- ifelse(pt$group >= 1, "", "")
  df_records(pt)
}

get_std <- function(fit) {
  ss <- standardizedSolution(fit)
  ss <- add_group_label(ss, fit)
  cols <- intersect(c("lhs", "op", "rhs", "group", "est.std", "se"), names(ss))
  ss <- as.data.frame(ss)[, cols]
  names(ss) <- clean_names(names(ss))
  df_records(ss)
}

get_r2 <- function(fit) {
  r2 <- per_group(fit, lavInspect(fit, "r2"))
  lapply(r2, named_vector)
}

get_implied_cat <- function(fit) {
  imp <- per_group(fit, lavInspect(fit, "implied"))
  lapply(imp, function(x) {
    out <- list()
    for (nm in names(x)) {
      key <- gsub(".", "_", nm, fixed = TRUE)
      v <- x[[nm]]
      if (is.matrix(v)) out[[key]] <- named_matrix(v) else out[[key]] <- named_vector(v)
    }
    out
  })
}

run_ord_case <- function(case, model, dname, opts, fun = "cfa", extra = NULL) {
  d <- DATA[[dname]]
  fr <- fit_capture(fun, model, d$data, opts)
  fit <- fr$fit
  out <- c(list(case = case), VERSIONS,
           list(data = d$path,
                call = list(`function` = fun, model = model, options = py_opts_json(opts)),
                nobs = I(lavInspect(fit, "nobs")), group_labels = I(group_labels(fit)),
                converged = lavInspect(fit, "converged"), warnings = I(fr$warnings),
                partable = get_partable(fit), parameters = get_parameters(fit),
                std = get_std(fit), fit = get_fit(fit), r2 = get_r2(fit),
                implied = get_implied_cat(fit)))
  if (!is.null(extra)) out <- c(out, extra(fit))
  write_case(case, out)
  invisible(fit)
}

lrt_json <- function(...) {
  res <- lavTestLRT(...)
  df <- as.data.frame(res)
  df$model <- rownames(df)
  names(df) <- clean_names(names(df))
  list(rows = df_records(df), method = attr(res, "heading"))
}

mi_json <- function(fit) {
  mi <- modindices(fit, sort. = FALSE)
  mi <- add_group_label(mi, fit)
  cols <- intersect(c("lhs", "op", "rhs", "group", "mi", "epc", "sepc.lv", "sepc.all",
                      "sepc.nox"), names(mi))
  mi <- as.data.frame(mi)[, cols]
  names(mi) <- clean_names(names(mi))
  list(modindices = df_records(mi))
}

## ------------------------------------------------------------------
## cases
## ------------------------------------------------------------------
HS_MODEL <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                  "speed =~ x7 + x8 + x9", sep = "\n")
MIXED_MODEL <- paste("visual =~ x1 + x2 + x3", "textual =~ x4 + x5 + x6",
                     "speed =~ y7 + y8 + y9", sep = "\n")
DC_MODEL <- paste("FU1 =~ u1 + u2 + u3 + u4", "FU2 =~ u5 + u6 + u7 + u8", sep = "\n")
X9 <- paste0("x", 1:9)
X6 <- paste0("x", 1:6)
U8 <- paste0("u", 1:8)

## HS items cut into categories: one group, every estimator, both parameterizations
run_ord_case("ord_hs", HS_MODEL, "hs", list(ordered = X9), extra = mi_json)
run_ord_case("ord_hs_theta", HS_MODEL, "hs", list(ordered = X9, parameterization = "theta"))
for (est in c("WLS", "WLSM", "ULSMV", "ULS", "DWLS"))
  run_ord_case(paste0("ord_hs_", tolower(est)), HS_MODEL, "hs",
           list(ordered = X9, estimator = est))
## by school
run_ord_case("ord_hs_groups", HS_MODEL, "hs", list(ordered = X9, group = "school"))
run_ord_case("ord_hs_groups_th", HS_MODEL, "hs",
         list(ordered = X9, group = "school", group.equal = "thresholds"))
run_ord_case("ord_hs_groups_th_theta", HS_MODEL, "hs",
         list(ordered = X9, group = "school", group.equal = c("thresholds", "loadings"),
              parameterization = "theta"))
## user thresholds: labels (equal across items), a fixed threshold, a structural part
run_ord_case("ord_hs_syntax",
         paste(HS_MODEL, "speed ~ visual + textual", "x1 | t1 + a*t2 + t3",
               "x3 | t1 + a*t2 + t3", "x2 | -0.3*t1 + t2", sep = "\n"),
         "hs", list(ordered = X9), fun = "sem")

## semTools' datCat: configural, equal thresholds, plus equal loadings (delta and theta)
f_conf <- run_ord_case("ord_datcat", DC_MODEL, "dc",
                   list(ordered = U8, group = "g", std.lv = TRUE))
run_ord_case("ord_datcat_theta", DC_MODEL, "dc",
         list(ordered = U8, group = "g", std.lv = TRUE, parameterization = "theta"))
f_th <- run_ord_case("ord_datcat_th", DC_MODEL, "dc",
                 list(ordered = U8, group = "g", std.lv = TRUE, group.equal = "thresholds"))
run_ord_case("ord_datcat_th_theta", DC_MODEL, "dc",
         list(ordered = U8, group = "g", std.lv = TRUE, group.equal = "thresholds",
              parameterization = "theta"))
f_thl <- run_ord_case("ord_datcat_thload", DC_MODEL, "dc",
                  list(ordered = U8, group = "g", std.lv = TRUE,
                       group.equal = c("thresholds", "loadings")),
                  extra = function(fit) list(
                    lrt = lrt_json(f_conf, f_th, fit),
                    lrt_sb2001 = lrt_json(f_conf, f_th, fit,
                                          method = "satorra.bentler.2001")))
run_ord_case("ord_datcat_thload_theta", DC_MODEL, "dc",
         list(ordered = U8, group = "g", std.lv = TRUE,
              group.equal = c("thresholds", "loadings"), parameterization = "theta"))
run_ord_case("ord_datcat_partial", DC_MODEL, "dc",
         list(ordered = U8, group = "g", std.lv = TRUE,
              group.equal = c("thresholds", "loadings"),
              group.partial = c("u1|t2", "FU1=~u2")))

## conditional.x: MIMIC models
run_ord_case("ord_mimic", "f =~ x4 + x5 + x6 + x1\nf ~ agec + z9c", "hs",
         list(ordered = c("x4", "x5", "x6", "x1")), fun = "sem")
run_ord_case("ord_mimic_groups", "f =~ x4 + x5 + x6 + x1\nf ~ agec", "hs",
         list(ordered = c("x4", "x5", "x6", "x1"), group = "school"), fun = "sem")
run_ord_case("ord_mimic_mixed", "f =~ x4 + x5 + x6 + y7\nf ~ agec", "hs",
         list(ordered = c("x4", "x5", "x6")), fun = "sem")
run_ord_case("ord_mimic_theta", "f =~ x4 + x5 + x6 + x1\nf ~ agec + z9c", "hs",
         list(ordered = c("x4", "x5", "x6", "x1"), parameterization = "theta"), fun = "sem")

## mixed ordinal / continuous, pairwise missing data
run_ord_case("ord_mixed", MIXED_MODEL, "hs", list(ordered = X6))
run_ord_case("ord_pairwise", HS_MODEL, "hs_na", list(ordered = X9, missing = "pairwise"))
run_ord_case("ord_mixed_pairwise", MIXED_MODEL, "hs_na", list(ordered = X6, missing = "pairwise"))
run_ord_case("ord_listwise", HS_MODEL, "hs_na", list(ordered = X9))
run_ord_case("ord_mimic_pairwise", "f =~ x4 + x5 + x6 + x1\nf ~ agec", "hs_na",
             list(ordered = c("x4", "x5", "x6", "x1"), missing = "pairwise"), fun = "sem")

## binary items (one threshold each), both parameterizations; pairwise missing by group
B6 <- paste0("b", 1:6)
BIN_MODEL <- paste("f1 =~ b1 + b2 + b3", "f2 =~ b4 + b5 + b6", sep = "\n")
run_ord_case("ord_binary", BIN_MODEL, "binary", list(ordered = B6))
run_ord_case("ord_binary_theta_groups", BIN_MODEL, "binary",
             list(ordered = B6, group = "school", group.equal = "loadings",
                  parameterization = "theta"))
run_ord_case("ord_pairwise_groups", HS_MODEL, "hs_na",
             list(ordered = X9, missing = "pairwise", group = "school",
                  group.equal = "thresholds"))

## benchmark data (16 items, 4 categories): one group and two groups
BENCH_MODEL <- paste("f1 =~ y1 + y2 + y3 + y4", "f2 =~ y5 + y6 + y7 + y8",
                     "f3 =~ y9 + y10 + y11 + y12", "f4 =~ y13 + y14 + y15 + y16", sep = "\n")
Y16 <- paste0("y", 1:16)
run_ord_case("ord_bench_1g", BENCH_MODEL, "bench", list(ordered = Y16))
run_ord_case("ord_bench_2g", BENCH_MODEL, "bench", list(ordered = Y16, group = "g"))

cat("ordinal fit cases written\n")
