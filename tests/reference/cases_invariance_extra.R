## Extra measurement-invariance references (issue 4, invariance package):
##   * lavTestScore(cumulative = TRUE) on the HS scalar model
##   * semTools measEq.syntax with ID.fac = "marker" and with lv.covariances (multi-group),
##     longitudinal lv.variances, a partial longitudinal scalar model
##   * group x time: measEq.syntax(group=, longFacNames=, group.equal=, long.equal=) on
##     tests/reference/data/long_sim_groups.csv (written here from long_sim.csv)
##   * effect sizes: latent mean differences (standardized by the pooled latent SD) and
##     variance ratios as lavaan ':=' parameters (delta-method SEs) in the partial scalar model
##   * dMACS (Nye & Drasgow 2011) computed by hand: numerical integration over the focal
##     group's latent distribution, pooled item variances with var() (divisor n - 1)
##
## Usage (repository root):  Rscript tests/reference/cases_invariance_extra.R
## Writes tests/reference/json/<case>.json (schema in tests/reference/README.md).

if (!file.exists("tests/reference/helpers.R"))
  stop("run this script from the repository root")
source("tests/reference/helpers.R")
source("tests/reference/make_data.R")      # paths only (make_data() is not called)
source("tests/reference/cases_core.R")     # HS_MODEL
source("tests/reference/cases_invariance.R")  # run_measeq(), LONG_MODEL, LONG_PATH

LONG_GROUPS_PATH <- file.path(DATA_DIR, "long_sim_groups.csv")
MCAR_PATH <- file.path(DATA_DIR, "hs_mcar.csv")

make_long_groups <- function() {
  ## long_sim.csv split in two groups of 150 (rows 1-150 "a", 151-300 "b"); in group "b"
  ## k2 is shifted by +0.4 at both occasions (an intercept difference across groups).
  long <- read_data(LONG_PATH)
  long$grp <- rep(c("a", "b"), each = 150)
  b <- long$grp == "b"
  long$k2_t1[b] <- long$k2_t1[b] + 0.4
  long$k2_t2[b] <- long$k2_t2[b] + 0.4
  write_exact_csv(long, LONG_GROUPS_PATH)
  invisible(long)
}

run_invariance_extra <- function() {
  hs <- read_data(HS_PATH)
  long <- read_data(LONG_PATH)
  lg <- make_long_groups()

  ## ---- cumulative score tests --------------------------------------------------
  sc_opts <- list(group = "school", group.equal = c("loadings", "intercepts"))
  run_case("hs_score_cumulative", "cfa", HS_MODEL, hs, HS_PATH, sc_opts,
           function(fit) {
             r <- capture_warnings(lavTestScore(fit, cumulative = TRUE))
             cu <- as.data.frame(r$value$cumulative)
             pt <- parTable(fit)
             gl <- group_labels(fit)
             rec <- lapply(seq_len(nrow(cu)), function(i) {
               j <- match(cu$rhs[i], pt$plabel)
               list(lhs = cu$lhs[i], op = cu$op[i], rhs = cu$rhs[i], X2 = cu$X2[i],
                    df = cu$df[i], p_value = cu$p.value[i],
                    rhs_param = list(lhs = pt$lhs[j], op = pt$op[j], rhs = pt$rhs[j],
                                     group = gl[pt$group[j]]))
             })
             list(score_cumulative = rec)
           },
           notes = "lavTestScore(fit, cumulative = TRUE)$cumulative on the hs_scalar model.")

  ## ---- score tests under FIML and MLR (lavaan: expected information, standard test) -
  mcar <- read_data(MCAR_PATH)
  for (v in list(list(case = "hs_score_tests_fiml", data = mcar, path = MCAR_PATH,
                      opts = c(sc_opts, list(missing = "ml"))),
                 list(case = "hs_score_tests_mlr", data = hs, path = HS_PATH,
                      opts = c(sc_opts, list(estimator = "MLR"))))) {
    run_case(v$case, "cfa", HS_MODEL, v$data, v$path, v$opts,
             function(fit) list(score_tests = get_score_tests(fit)),
             notes = "lavTestScore(fit) on the scalar model (information = 'expected').")
  }

  ## ---- measEq.syntax: marker identification, lv.covariances ------------------------
  run_measeq("hs_measeq_marker_configural", HS_MODEL, hs, HS_PATH,
             list(group = "school", ID.fac = "marker", group.equal = ""))
  run_measeq("hs_measeq_marker_scalar", HS_MODEL, hs, HS_PATH,
             list(group = "school", ID.fac = "marker",
                  group.equal = c("loadings", "intercepts")))
  run_measeq("hs_measeq_lvcovariances", HS_MODEL, hs, HS_PATH,
             list(group = "school",
                  group.equal = c("loadings", "intercepts", "residuals", "lv.variances",
                                  "lv.covariances")))
  run_measeq("long_sim_lvvariances", LONG_MODEL, long, LONG_PATH,
             list(longFacNames = list(B = c("B1", "B2"), K = c("K1", "K2")),
                  long.equal = c("loadings", "intercepts", "residuals", "lv.variances")))

  ## ---- partial longitudinal scalar: b3's intercept free at occasion 2 ---------------
  syn <- as.character(measEq.syntax(LONG_MODEL, data = long,
                                    longFacNames = list(B = c("B1", "B2"), K = c("K1", "K2")),
                                    long.equal = c("loadings", "intercepts")))
  syn_p <- sub("b3_t2 ~ NA*1 + nu.3*1", "b3_t2 ~ NA*1 + nu.3.t2*1", syn, fixed = TRUE)
  if (identical(syn, syn_p)) stop("could not release b3_t2 ~ 1 in the measEq syntax")
  popts <- list(meanstructure = TRUE, std.lv = TRUE, auto.fix.first = FALSE,
                auto.var = TRUE, auto.cov.lv.x = TRUE, int.ov.free = TRUE, int.lv.free = FALSE)
  fr <- fit_capture("lavaan", syn_p, long, popts)
  case_json("long_sim_partial_scalar", fr, "lavaan", syn_p, popts, LONG_PATH,
            notes = paste("long_sim_scalar syntax with the intercept of b3_t2 given its own",
                          "label (nu.3.t2): partial longitudinal scalar invariance."))

  ## ---- group x time --------------------------------------------------------------
  lfn <- list(B = c("B1", "B2"), K = c("K1", "K2"))
  gt <- list(
    long_group_configural = list(group.equal = "", long.equal = ""),
    long_group_longscalar = list(group.equal = "", long.equal = c("loadings", "intercepts")),
    long_group_longscalar_gmetric = list(group.equal = "loadings",
                                         long.equal = c("loadings", "intercepts")),
    long_group_longscalar_gscalar = list(group.equal = c("loadings", "intercepts"),
                                         long.equal = c("loadings", "intercepts")),
    long_group_strict = list(group.equal = c("loadings", "intercepts", "residuals"),
                             long.equal = c("loadings", "intercepts", "residuals")))
  for (nm in names(gt)) {
    run_measeq(nm, LONG_MODEL, lg, LONG_GROUPS_PATH,
               c(list(group = "grp", longFacNames = lfn), gt[[nm]]),
               notes = paste("long_sim_groups.csv: long_sim.csv split into groups a (rows",
                             "1-150) and b (151-300), k2 shifted by +0.4 in group b."))
  }

  ## ---- effect sizes in the partial scalar model (lavaan parameterisation) ---------
  n <- table(factor(hs$school, levels = unique(hs$school)))
  n1 <- as.integer(n[1]); n2 <- as.integer(n[2])
  eff_model <- paste(
    HS_MODEL,
    "visual ~ c(0, NA)*1 + c(mv1, mv2)*1",
    "textual ~ c(0, NA)*1 + c(mt1, mt2)*1",
    "speed ~ c(0, NA)*1 + c(ms1, ms2)*1",
    "## the reference-group means are fixed at 0 (lavaan allows no fixed labels in ':=')",
    "visual ~~ c(vv1, vv2)*visual",
    "textual ~~ c(vt1, vt2)*textual",
    "speed ~~ c(vs1, vs2)*speed",
    "diff_visual := mv2",
    "diff_textual := mt2",
    "diff_speed := ms2",
    sprintf("d_visual := mv2/sqrt((%d*vv1 + %d*vv2)/%d)", n1 - 1, n2 - 1, n1 + n2 - 2),
    sprintf("d_textual := mt2/sqrt((%d*vt1 + %d*vt2)/%d)", n1 - 1, n2 - 1, n1 + n2 - 2),
    sprintf("d_speed := ms2/sqrt((%d*vs1 + %d*vs2)/%d)", n1 - 1, n2 - 1, n1 + n2 - 2),
    "ratio_visual := vv2/vv1",
    "ratio_textual := vt2/vt1",
    "ratio_speed := vs2/vs1",
    sep = "\n")
  eff_opts <- list(group = "school", group.equal = c("loadings", "intercepts"),
                   group.partial = c("x3~1", "x7~1"))
  run_case("hs_effects_partial", "cfa", eff_model, hs, HS_PATH, eff_opts,
           notes = paste("hs_partial_scalar with labelled latent means / variances and ':='",
                         "effect sizes: diff_* = mean difference (Grant-White - Pasteur),",
                         "d_* = difference / pooled latent SD (variances pooled with n - 1",
                         "weights), ratio_* = variance ratio; delta-method SEs by lavaan."))

  ## ---- dMACS by hand --------------------------------------------------------------
  dm_opts <- list(group = "school", group.equal = c("loadings", "intercepts"),
                  group.partial = c("visual=~x3", "x3~1", "x7~1"))
  run_case("hs_dmacs", "cfa", HS_MODEL, hs, HS_PATH, dm_opts, function(fit) {
    pe <- parameterEstimates(fit)
    gl <- group_labels(fit)
    get <- function(lhs, op, rhs, g) pe$est[pe$lhs == lhs & pe$op == op & pe$rhs == rhs &
                                             pe$group == g]
    items <- list(c("visual", "x3"), c("speed", "x7"))
    out <- lapply(items, function(it) {
      f <- it[1]; x <- it[2]
      lamR <- get(f, "=~", x, 1); lamF <- get(f, "=~", x, 2)
      nuR <- get(x, "~1", "", 1); nuF <- get(x, "~1", "", 2)
      muF <- get(f, "~1", "", 2); varF <- get(f, "~~", f, 2)
      xr <- hs[[x]][hs$school == gl[1]]; xf <- hs[[x]][hs$school == gl[2]]
      nr <- length(xr); nf <- length(xf)
      sdp <- sqrt(((nr - 1) * var(xr) + (nf - 1) * var(xf)) / (nr + nf - 2))
      integrand <- function(xi) ((nuR + lamR * xi) - (nuF + lamF * xi))^2 *
        dnorm(xi, muF, sqrt(varF))
      val <- integrate(integrand, -Inf, Inf, rel.tol = 1e-12)$value
      signed <- integrate(function(xi) ((nuR + lamR * xi) - (nuF + lamF * xi)) *
                            dnorm(xi, muF, sqrt(varF)), -Inf, Inf, rel.tol = 1e-12)$value
      list(factor = f, item = x, reference_group = gl[1], focal_group = gl[2],
           lambda_ref = lamR, lambda_focal = lamF, nu_ref = nuR, nu_focal = nuF,
           mean_focal = muF, var_focal = varF, sd_pooled = sdp,
           dmacs = sqrt(val) / sdp, dmacs_signed = signed / sdp)
    })
    list(dmacs = out)
  }, notes = paste("dMACS (Nye & Drasgow 2011) of x3 (loading and intercept free) and x7",
                   "(intercept free) by numerical integration over N(mu_F, var_F) of the",
                   "focal group (Grant-White); SD pooled from var() with n - 1 weights."))
  invisible(TRUE)
}

if (sys.nframe() == 0L) {
  run_invariance_extra()
  res <- do.call(rbind, RESULTS)
  for (nm in rownames(res))
    cat(sprintf("%-34s %10.3f %6g %6g %4d\n", nm, res[nm, "chisq"], res[nm, "df"],
                res[nm, "npar"], as.integer(res[nm, "converged"])))
}
