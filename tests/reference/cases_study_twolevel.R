## The study's two-level sensitivity step (sem_models/study/twolevel_step.py): lavaan 0.6-14
## reference numbers.  From the repository root:
##
##   python tests/reference/make_study_twolevel_data.py    # writes the data CSV
##   Rscript tests/reference/cases_study_twolevel.R
##
## Data: data/study_twolevel_trait.csv, the 180 children of the group format of the bundled
## alliance data, their therapy group and the four trait scale scores.
## Model: level 1 child_w =~ c_bond + c_task, therapist_w =~ t_bond + t_task; level 2
## child_b =~ 1*c_bond + 1*c_task, therapist_b =~ 1*t_bond + 1*t_task, the level-2 residual
## variances fixed to 0; ML and MLR, missing = "listwise".
## Writes json/study_twolevel_<estimator>.json with converged, warnings, parameters
## (parameterEstimates: lhs, op, rhs, level, est, se), fit (fitMeasures), icc
## (lavInspect "icc"), h1_tight (logl and ICCs of the saturated model fitted tightly, see
## h1_tight below) and icc_anova: per trait score, ICC(1) of the one-way ANOVA on the
## available scores from R's anova(lm(y ~ factor(group))): (MSB - MSW) / (MSB + (n0 - 1) MSW),
## n0 = (N - sum n_j^2 / N) / (J - 1).

source("tests/reference/helpers.R")

DATA_PATH <- file.path(DATA_DIR, "study_twolevel_trait.csv")
if (!file.exists(DATA_PATH))
  stop("run python tests/reference/make_study_twolevel_data.py first")
d <- read_data(DATA_PATH)

MODEL <- paste("level: 1",
               "  child_w =~ c_bond + c_task",
               "  therapist_w =~ t_bond + t_task",
               "level: 2",
               "  child_b =~ 1*c_bond + 1*c_task",
               "  therapist_b =~ 1*t_bond + 1*t_task",
               "  c_bond ~~ 0*c_bond",
               "  c_task ~~ 0*c_task",
               "  t_bond ~~ 0*t_bond",
               "  t_task ~~ 0*t_task", sep = "\n")

icc_anova <- function(y, g) {
  ok <- !is.na(y)
  y <- y[ok]; g <- factor(g[ok])
  a <- anova(lm(y ~ g))
  msb <- a[["Mean Sq"]][1]; msw <- a[["Mean Sq"]][2]
  nj <- as.numeric(table(g)); nj <- nj[nj > 0]
  N <- sum(nj); J <- length(nj)
  n0 <- (N - sum(nj^2) / N) / (J - 1)
  list(icc = (msb - msw) / (msb + (n0 - 1) * msw), n = N, clusters = J)
}

## lavaan's saturated two-level model refitted tightly over positive semi-definite Sigma_B
## (Sigma_W = L_W L_W', Sigma_B = L_B L_B', lavaan's lav_partable_unrestricted_chol, nlminb
## with rel.tol 1e-14), as in cases_twolevel_small_icc.R: lavaan's own h1 (EM) stops at a
## log-likelihood change of 1e-4, short of the maximum when a between variance is near 0.
h1_tight <- function(fit) {
  pt <- lavaan:::lav_partable_unrestricted_chol(lavdata = fit@Data, lavoptions = fit@Options,
                                                lavpta = fit@pta)
  o <- fit@Options
  o$se <- "none"; o$test <- "none"; o$do.fit <- TRUE; o$h1 <- FALSE; o$baseline <- FALSE
  o$fixed.x <- FALSE; o$model.type <- "unrestricted"; o$optim.attempts <- 4L
  o$warn <- FALSE; o$check.gradient <- FALSE; o$optim.force.convergence <- TRUE
  o$control <- list(rel.tol = 1e-14, iter.max = 20000L, eval.max = 40000L)
  FIT <- lavaan(pt, slotOptions = o, slotSampleStats = fit@SampleStats, slotData = fit@Data)
  imp <- lavInspect(FIT, "implied")
  vw <- diag(imp$within$cov); vb <- diag(imp$therapy_group$cov)
  list(logl = FIT@loglik$loglik, icc = as.list(vb / (vw + vb)))
}

for (est in c("ML", "MLR")) {
  fr <- fit_capture("sem", MODEL, d, list(cluster = "therapy_group", estimator = est,
                                          missing = "listwise"))
  fit <- fr$fit
  pe <- as.data.frame(parameterEstimates(fit))
  cols <- intersect(c("lhs", "op", "rhs", "level", "est", "se"), names(pe))
  scores <- c("c_bond", "c_task", "t_bond", "t_task")
  out <- c(list(case = paste0("study_twolevel_", tolower(est))), VERSIONS,
           list(data = DATA_PATH,
                call = list(`function` = "sem", model = MODEL,
                            options = list(cluster = "therapy_group", estimator = est,
                                           missing = "listwise")),
                converged = lavInspect(fit, "converged"),
                warnings = fr$warnings,
                nobs = lavInspect(fit, "nobs"),
                nclusters = lavInspect(fit, "nclusters"),
                parameters = df_records(pe[, cols]),
                fit = get_fit(fit),
                icc = as.list(lavInspect(fit, "icc")),
                h1_tight = h1_tight(fit),
                icc_anova = lapply(setNames(scores, scores),
                                   function(s) icc_anova(d[[s]], d$therapy_group))))
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null",
                    pretty = TRUE),
             file.path(JSON_DIR, paste0("study_twolevel_", tolower(est), ".json")))
}
