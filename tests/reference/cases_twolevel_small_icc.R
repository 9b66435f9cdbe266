## Two-level CFA with small ICCs and few clusters (tests/test_twolevel_robust.py): lavaan
## 0.6-14 reference numbers on the bundled simulated alliance study.  From the repository
## root:
##
##   python tests/reference/make_twolevel_small_icc_data.py    # writes the data CSV
##   Rscript tests/reference/cases_twolevel_small_icc.R
##
## Data: data/twolevel_small_icc_alliance.csv (sem_models.datasets.load("alliance")).
## Cases: informant (t = therapist, c = child) x dimension (bond, task) x cluster (school:
## all 360 children, 20 schools of 18; therapy_group: the 180 children of the group format,
## 33 groups of 4-7) x missing ("listwise", "ml"), each with two models:
##   "free"  level 1: f =~ 4 items; level 2: fb =~ the same 4 items
##   "fix0"  the same with the level-2 residual variances fixed to 0 (items ~~ 0*items)
## The rows are sorted by cluster before lavaan sees them (see run_small_icc: lavaan
## 0.6-14's two-level FIML is wrong for interleaved clusters, issue #379).
##
## Writes json/twolevel_small_icc_<model>_<missing>_<inf>_<dim>_<cluster>.json with
##   converged, warnings, logl, chisq (lavaan's, its negative values set to 0), df, npar,
##   unrestricted_logl (lavaan's h1: EM stopped at |change| < 1e-4 for complete data, a
##   Cholesky-parameterised fit for missing data), icc, h1 (lavaan's h1 moments),
##   parameters (parameterEstimates, only when lavaan converged), fit (fitMeasures, when
##   available) and
##   h1_psd: the saturated model refitted tightly over positive semi-definite Sigma_B:
##   lavaan's own two-level log-likelihood (lav_mvnorm_cluster_loglik_samplestats_2l, or
##   lav_mvnorm_cluster_missing_loglik_samplestats_2l with missing = "ml") maximised over
##   Mu_B, Sigma_W = L_W L_W', Sigma_B = L_B L_B' by nlminb (rel.tol 1e-15) alternating with
##   BFGS until no gain, from lavaan's h1: logl and moments.  This is the h1 against which sem_models
##   computes the chi-square: lavaan's complete-data EM stops at |change| < 1e-4, which on
##   the boundary is short of the maximum, and its missing-data h1 keeps the level-2
##   residual variances at >= 1e-4.

source("tests/reference/helpers.R")

DATA_PATH <- file.path(DATA_DIR, "twolevel_small_icc_alliance.csv")
if (!file.exists(DATA_PATH))
  stop("run python tests/reference/make_twolevel_small_icc_data.py first")
alliance <- read_data(DATA_PATH)

level_moments <- function(x) {
  lapply(names(x), function(lv) {
    out <- list(level = lv, cov = named_matrix(x[[lv]]$cov))
    if (!is.null(x[[lv]]$mean)) out$mean <- named_vector(x[[lv]]$mean)
    out
  })
}

safe <- function(expr) tryCatch(expr, error = function(e) NULL)

tl_parameters <- function(fit) {
  pe <- as.data.frame(parameterEstimates(fit))
  cols <- intersect(c("lhs", "op", "rhs", "level", "est", "se"), names(pe))
  df_records(pe[, cols])
}

## the saturated model over PSD Sigma_B, fitted tightly (see the header)
h1_psd <- function(fit) {
  Lp <- fit@Data@Lp[[1]]
  YLp <- fit@SampleStats@YLp[[1]]
  if (length(Lp$within.idx[[2]]) || length(Lp$between.idx[[2]]))
    stop("h1_psd: written for variables at both levels only")
  missing <- fit@Options$missing == "ml"
  loglik <- function(MuB, SW, SB) {
    MuW <- numeric(length(MuB))
    if (missing)
      lavaan:::lav_mvnorm_cluster_missing_loglik_samplestats_2l(
        Y1 = fit@Data@X[[1]], Y2 = YLp[[2]]$Y2, Lp = Lp, Mp = fit@Data@Mp[[1]],
        Mu.W = MuW, Sigma.W = SW, Mu.B = MuB, Sigma.B = SB, log2pi = TRUE,
        minus.two = FALSE)
    else
      lavaan:::lav_mvnorm_cluster_loglik_samplestats_2l(
        YLp = YLp, Lp = Lp, Mu.W = MuW, Sigma.W = SW, Mu.B = MuB, Sigma.B = SB,
        Sinv.method = "eigen", log2pi = TRUE, minus.two = FALSE)
  }
  p <- length(Lp$ov.idx[[1]])
  low <- lower.tri(diag(p), diag = TRUE)
  unpack <- function(th) {
    LW <- matrix(0, p, p); LB <- matrix(0, p, p)
    LW[low] <- th[p + seq_len(sum(low))]
    LB[low] <- th[p + sum(low) + seq_len(sum(low))]
    list(MuB = th[1:p], SW = LW %*% t(LW), SB = LB %*% t(LB))
  }
  obj <- function(th) {
    u <- unpack(th)
    v <- tryCatch(loglik(u$MuB, u$SW, u$SB), error = function(e) NA)
    if (!is.finite(v)) 1e10 else -v
  }
  imp <- lavInspect(fit, "h1")
  SW0 <- imp[[1]]$cov; SB0 <- imp[[2]]$cov
  e <- eigen(SB0, symmetric = TRUE)
  SB0 <- e$vectors %*% diag(pmax(e$values, 1e-6 * max(e$values))) %*% t(e$vectors)
  th0 <- c(as.numeric(imp[[1]]$mean + imp[[2]]$mean), t(chol(SW0))[low], t(chol(SB0))[low])
  best <- list(par = th0, objective = obj(th0))
  for (k in 1:10) {
    r <- nlminb(best$par, obj, control = list(rel.tol = 1e-15, x.tol = 1e-12,
                                             iter.max = 5000L, eval.max = 20000L))
    if (r$objective < best$objective) best <- r
    r <- optim(best$par, obj, method = "BFGS", control = list(reltol = 1e-16, maxit = 5000L))
    r$objective <- r$value
    gain <- best$objective - r$objective
    if (r$objective < best$objective) best <- r
    if (gain < 1e-9) break
  }
  u <- unpack(best$par)
  names_ov <- lavNames(fit, "ov")
  dimnames(u$SW) <- dimnames(u$SB) <- list(names_ov, names_ov)
  list(logl = -best$objective, lavaan_h1_logl = fit@h1$loglik,
       moments = list(list(level = "within", cov = named_matrix(u$SW)),
                      list(level = "between", cov = named_matrix(u$SB),
                           mean = named_vector(setNames(u$MuB, names_ov)))))
}

run_small_icc <- function(model_kind, missing, inf, dim, cluster) {
  items <- paste0(inf, "_mid_", dim, 1:4)
  model <- paste0("level: 1\n  f =~ ", paste(items, collapse = " + "),
                  "\nlevel: 2\n  fb =~ ", paste(items, collapse = " + "))
  if (model_kind == "fix0")
    model <- paste0(model, "\n", paste0("  ", items, " ~~ 0*", items, collapse = "\n"))
  d <- if (cluster == "school") alliance else alliance[alliance$format == "group", ]
  ## rows sorted by cluster: lavaan 0.6-14's two-level FIML log-likelihood is wrong when the
  ## rows of a cluster are not contiguous (lavaan issue #379, fixed in 2024); the therapy
  ## groups are interleaved in the data.  sem_models gives the same for any row order.
  d <- d[order(d[[cluster]]), ]
  case <- paste("twolevel_small_icc", model_kind, missing, inf, dim, cluster, sep = "_")
  fr <- fit_capture("sem", model, d, list(cluster = cluster, missing = missing))
  fit <- fr$fit
  conv <- lavInspect(fit, "converged")
  h1p <- safe(h1_psd(fit))
  out <- c(list(case = case), VERSIONS, list(data = DATA_PATH),
           list(call = list(`function` = "sem", model = model,
                            subset = if (cluster == "school") "all rows" else
                              "format == 'group'",
                            options = list(cluster = cluster,
                                           missing = if (missing == "ml") "fiml" else missing)),
                nobs = lavInspect(fit, "nobs"),
                nclusters = lavInspect(fit, "nclusters"),
                converged = conv,
                warnings = I(fr$warnings),
                logl = if (length(fit@loglik)) fit@loglik$loglik else NULL,
                chisq = if (length(fit@test)) fit@test[[1]]$stat else NULL,
                df = if (length(fit@test)) fit@test[[1]]$df else NULL,
                npar = lavInspect(fit, "npar"),
                unrestricted_logl = fit@h1$loglik,
                icc = named_vector(lavInspect(fit, "icc")),
                h1 = level_moments(lavInspect(fit, "h1")),
                h1_psd = h1p,
                parameters = if (conv) tl_parameters(fit) else NULL,
                fit = if (conv) safe(get_fit(fit)) else NULL))
  write_case(case, out)
  message(sprintf("%-58s conv %-5s logl %10.4f h1 %10.4f h1psd %10.4f chisq %s",
                  case, conv, if (is.null(out$logl)) NA else out$logl,
                  out$unrestricted_logl, if (is.null(h1p)) NA else h1p$logl,
                  if (is.null(out$chisq)) "-" else sprintf("%.4f", out$chisq)))
  invisible(out)
}

for (model_kind in c("free", "fix0"))
  for (missing in c("listwise", "ml"))
    for (inf in c("t", "c"))
      for (dim in c("bond", "task"))
        for (cluster in c("school", "therapy_group"))
          run_small_icc(model_kind, missing, inf, dim, cluster)
