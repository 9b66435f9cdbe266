## lavaan references for tests/test_resampling.py (bootstrap, simulation, power).
## Standalone, from the repository root, after `python tests/reference/make_resampling_inputs.py`:
##   Rscript tests/reference/cases_resampling.R
## Writes tests/reference/json/resampling.json:
##   refits      lavaan refits on the bootstrap samples listed in data/resampling_boot_idx.csv
##   bollen_stine lavaan's own Bollen-Stine bootstrap samples (data and chisq)
##   intervals   lavaan's bootstrap intervals computed from data/resampling_boot_draws.csv
##   population  implied moments of population models (simulateData's defaults)
##   sspower     semTools::SSpower (Satorra & Saris 1985) and the noncentrality

source("tests/reference/helpers.R")

HS <- read.csv("data/HolzingerSwineford1939.csv", stringsAsFactors = FALSE)
MCAR <- read.csv(file.path(DATA_DIR, "hs_mcar.csv"), stringsAsFactors = FALSE)

HS_MODEL <- "
visual  =~ x1 + x2 + a*x3
textual =~ x4 + x5 + b*x6
speed   =~ x7 + x8 + x9
ab := a*b
"
HS_PLAIN <- "
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"
out <- list(versions = VERSIONS)

## ---------------------------------------------------------------- refits on given samples
idx <- read.csv(file.path(DATA_DIR, "resampling_boot_idx.csv"), stringsAsFactors = FALSE)
cases <- list(
  hs_ord  = list(data = HS, model = HS_MODEL, opts = list()),
  hs_mg   = list(data = HS, model = HS_PLAIN,
                 opts = list(group = "school", group.equal = "loadings")),
  hs_fiml = list(data = MCAR, model = HS_PLAIN, opts = list(missing = "ml"))
)
refits <- list()
for (case in names(cases)) {
  cs <- cases[[case]]
  sub <- idx[idx$case == case, ]
  reps <- sort(unique(sub$rep))
  res <- list()
  for (r in reps) {
    rows <- sub$row[sub$rep == r]
    d <- cs$data[rows, ]
    fit <- do.call("sem", c(list(model = cs$model, data = d), cs$opts))
    pe <- parameterEstimates(fit, se = FALSE, zstat = FALSE, pvalue = FALSE, ci = FALSE)
    res[[length(res) + 1]] <- list(rep = r, est = pe$est,
                                   chisq = unname(fitMeasures(fit, "chisq")),
                                   converged = lavInspect(fit, "converged"))
  }
  pe <- parameterEstimates(fit, se = FALSE, zstat = FALSE, pvalue = FALSE, ci = FALSE)
  refits[[case]] <- list(lhs = pe$lhs, op = pe$op, rhs = pe$rhs,
                         group = if (is.null(pe$group)) rep(1L, nrow(pe)) else pe$group,
                         reps = res)
}
out$refits <- refits

## ---------------------------------------------------------------- Bollen-Stine data
## The transformed data of lavaan's bollen.stine bootstrap (lav_bootstrap_internal: centred X
## times the symmetric square roots of lavaan's sample icov and Sigma.hat, plus Mu.hat with a
## mean structure), built from lavaan's own matrices, and lavaan's chi-square on samples of it
## (rows from data/resampling_boot_idx.csv, case hs_ord / hs_mg).
bs_case <- function(model, opts, idx_case) {
  fit <- do.call("sem", c(list(model = model, data = HS), opts))
  Sigma.hat <- lavaan:::computeSigmaHat(lavmodel = fit@Model)
  Mu.hat <- lavaan:::computeMuHat(lavmodel = fit@Model)
  Z <- list()
  for (g in seq_len(lavInspect(fit, "ngroups"))) {
    X <- scale(fit@Data@X[[g]], center = TRUE, scale = FALSE)
    X <- X %*% lavaan:::lav_matrix_symmetric_sqrt(fit@SampleStats@icov[[g]]) %*%
      lavaan:::lav_matrix_symmetric_sqrt(Sigma.hat[[g]])
    if (fit@Model@meanstructure) X <- scale(X, center = -1 * Mu.hat[[g]], scale = FALSE)
    Z[[g]] <- unname(X)
  }
  ## our sample rows index the data file; map them to positions within each group
  sub <- idx[idx$case == idx_case, ]
  case_idx <- fit@Data@case.idx
  ov <- lavNames(fit)
  chisq <- c()
  for (r in 0:1) {
    rows <- sub$row[sub$rep == r]
    parts <- lapply(seq_along(Z), function(g) Z[[g]][match(rows[rows %in% case_idx[[g]]],
                                                           case_idx[[g]]), , drop = FALSE])
    d <- as.data.frame(do.call(rbind, parts))
    names(d) <- ov
    if (length(Z) > 1) d$school <- rep(lavInspect(fit, "group.label"), sapply(parts, nrow))
    refit <- do.call("sem", c(list(model = model, data = d), opts))
    chisq <- c(chisq, unname(fitMeasures(refit, "chisq")))
  }
  list(data = lapply(Z, function(z) as.vector(z)), chisq = chisq,
       observed_chisq = unname(fitMeasures(fit, "chisq")))
}
out$bollen_stine <- list(
  single = bs_case(HS_PLAIN, list(), "hs_ord"),
  groups = bs_case(HS_PLAIN, list(group = "school", group.equal = "loadings"), "hs_mg")
)

## ---------------------------------------------------------------- intervals from our draws
set.seed(1)
fit_i <- sem(HS_MODEL, HS, se = "bootstrap", bootstrap = 2L)
D <- as.matrix(read.csv(file.path(DATA_DIR, "resampling_boot_draws.csv"), check.names = FALSE))
pt <- parTable(fit_i)
free_rows <- which(pt$free > 0)
free_rows <- free_rows[order(pt$free[free_rows])]
BOOT <- D[, paste0(pt$lhs[free_rows], pt$op[free_rows], pt$rhs[free_rows]), drop = FALSE]
colnames(BOOT) <- NULL
attr(BOOT, "error.idx") <- integer(0)
attr(BOOT, "seed") <- 1
fit_i@boot$coef <- BOOT
DEF <- apply(BOOT, 1, fit_i@Model@def.function)
DEF <- if (is.null(dim(DEF))) as.matrix(DEF) else t(DEF)
se <- pt$se
se[free_rows] <- apply(BOOT, 2, sd)
se[pt$op == ":="] <- apply(DEF, 2, sd)
fit_i@ParTable$se <- se
intervals <- list()
for (type in c("perc", "basic", "norm", "bca.simple")) {
  pe <- parameterEstimates(fit_i, boot.ci.type = type, level = 0.9)
  intervals[[type]] <- list(lhs = pe$lhs, op = pe$op, rhs = pe$rhs, est = pe$est, se = pe$se,
                            ci_lower = pe$ci.lower, ci_upper = pe$ci.upper)
}
out$intervals <- intervals

## ---------------------------------------------------------------- population moments
POP_SEM <- "
f1 =~ 0.7*y1 + 0.7*y2 + 0.7*y3
f2 =~ 0.7*y4 + 0.6*y5 + 0.8*y6
f2 ~ 0.25*f1
y1 ~~ 0.51*y1
y2 ~~ 0.51*y2
y3 ~~ 0.51*y3
y4 ~~ 0.51*y4
y5 ~~ 0.64*y5
y6 ~~ 0.36*y6
"
pops <- list(
  sem      = list(model = POP_SEM, n = 100L),
  defaults = list(model = "f =~ x1 + 0.8*x2 + x3\ny ~ 0.3*f + x\nx1 ~~ 0.2*x2", n = 100L),
  means    = list(model = "f =~ 0.6*x1 + 0.6*x2 + 0.6*x3\nx1 ~ 0.5*1\nf ~ 0.2*1\nx3 ~ -1*1",
                  n = 100L),
  groups   = list(model = "f =~ c(0.7, 0.5)*x1 + 0.7*x2 + 0.7*x3\nf ~~ c(1, 1.5)*f\nx2 ~~ c(0.3, 0.6)*x2",
                  n = c(100L, 100L))
)
population <- list()
for (nm in names(pops)) {
  w <- capture_warnings(simulateData(pops[[nm]]$model, sample.nobs = pops[[nm]]$n,
                                     return.fit = TRUE, seed = 1))
  fitted_m <- fitted(attr(w$value, "fit"))
  if (length(pops[[nm]]$n) == 1) fitted_m <- list(fitted_m)
  population[[nm]] <- list(
    model = pops[[nm]]$model, n = pops[[nm]]$n, warnings = w$warnings,
    groups = lapply(fitted_m, function(m) list(
      names = colnames(m$cov), cov = unname(m$cov),
      mean = if (is.null(m$mean)) NULL else unname(as.numeric(m$mean)))))
}
out$population <- population

## ---------------------------------------------------------------- Satorra-Saris power
POP_FULL <- paste(POP_SEM, "f1 ~~ 1*f1\nf2 ~~ 1*f2\n")
ANALYSIS <- "f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\nf2 ~ f1\n"
RESTRICTED <- "f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\nf2 ~ 0*f1\n"
Sigma <- fitted(sem(POP_FULL, sample.nobs = 100L))$cov
sspower <- list()
for (N in c(100L, 200L, 400L)) {
  small <- sem(RESTRICTED, sample.cov = Sigma, sample.nobs = N)
  sspower[[length(sspower) + 1]] <- list(
    n = N,
    power = semTools::SSpower(powerModel = RESTRICTED, n = N, nparam = 1, popModel = POP_FULL,
                              fun = "sem", alpha = 0.05),
    ncp = unname(fitMeasures(small, "chisq")))
}
out$sspower <- list(population = POP_SEM, analysis = ANALYSIS, parameter = "f2~f1",
                    alpha = 0.05, cases = sspower)

write(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"),
      file.path(JSON_DIR, "resampling.json"))
cat("wrote", file.path(JSON_DIR, "resampling.json"), "\n")
