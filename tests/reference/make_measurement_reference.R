## lavaan references for the alliance measurement-model builders (measurement/).
##
## Run from the repo root:  Rscript tests/reference/make_measurement_reference.R
##
## Data: tests/reference/data/alliance_sim_large.csv, written by
##   PYTHONPATH=. python tests/reference/make_alliance_sim_large.py
## i.e. sem_models.datasets.simulate_alliance(seed=2000, n=2000, missing=False,
## clustering=False), items 1-4 of every informant x occasion x subscale, raw responses.
##
## Every model below is HAND-WRITTEN lavaan syntax (not produced by the Python builders), for
## the design Design(informants=c("c","t"), occasions=c("mid","end"),
## dimensions=c("bond","task"), items=4, reverse=c(2,4)). Items 2 and 4 are reverse-scored
## here (5 - x) before fitting. Each model is fitted with cfa() (ML, default options) and
## written to tests/reference/json/measurement_<model>.json as
##   {"model": syntax, "fit": {chisq, df, npar}, "parameters": [{lhs, op, rhs, est, se}],
##    "implied_cov": {names, values}, ...}
## plus semTools::compRelSEM / AVE for the state models and latent state-trait coefficients
## (computed here from lavInspect) for the state-trait models.

suppressPackageStartupMessages({
  library(lavaan)
  library(semTools)
  library(jsonlite)
})

REF <- "tests/reference"
dat <- read.csv(file.path(REF, "data", "alliance_sim_large.csv"))
rev_items <- grep("(bond|task)[24]$", names(dat), value = TRUE)
stopifnot(length(rev_items) == 16)
for (v in rev_items) dat[[v]] <- 5 - dat[[v]]

## ---------------------------------------------------------------------------------------
## hand-written models
## ---------------------------------------------------------------------------------------

states <- '
c_mid_bond =~ c_mid_bond1 + c_mid_bond2 + c_mid_bond3 + c_mid_bond4
c_mid_task =~ c_mid_task1 + c_mid_task2 + c_mid_task3 + c_mid_task4
c_end_bond =~ c_end_bond1 + c_end_bond2 + c_end_bond3 + c_end_bond4
c_end_task =~ c_end_task1 + c_end_task2 + c_end_task3 + c_end_task4
t_mid_bond =~ t_mid_bond1 + t_mid_bond2 + t_mid_bond3 + t_mid_bond4
t_mid_task =~ t_mid_task1 + t_mid_task2 + t_mid_task3 + t_mid_task4
t_end_bond =~ t_end_bond1 + t_end_bond2 + t_end_bond3 + t_end_bond4
t_end_task =~ t_end_task1 + t_end_task2 + t_end_task3 + t_end_task4
'

wording <- '
c_mid_wording =~ c_mid_bond2 + c_mid_bond4 + c_mid_task2 + c_mid_task4
c_end_wording =~ c_end_bond2 + c_end_bond4 + c_end_task2 + c_end_task4
'

state_wording_orth <- '
c_mid_wording ~~ 0*c_mid_bond + 0*c_mid_task + 0*c_end_bond + 0*c_end_task
c_mid_wording ~~ 0*t_mid_bond + 0*t_mid_task + 0*t_end_bond + 0*t_end_task
c_end_wording ~~ 0*c_mid_bond + 0*c_mid_task + 0*c_end_bond + 0*c_end_task
c_end_wording ~~ 0*t_mid_bond + 0*t_mid_task + 0*t_end_bond + 0*t_end_task
'

traits <- '
c_bond =~ c_mid_bond1 + c_mid_bond2 + c_mid_bond3 + c_mid_bond4 + c_end_bond1 + c_end_bond2 + c_end_bond3 + c_end_bond4
c_task =~ c_mid_task1 + c_mid_task2 + c_mid_task3 + c_mid_task4 + c_end_task1 + c_end_task2 + c_end_task3 + c_end_task4
t_bond =~ t_mid_bond1 + t_mid_bond2 + t_mid_bond3 + t_mid_bond4 + t_end_bond1 + t_end_bond2 + t_end_bond3 + t_end_bond4
t_task =~ t_mid_task1 + t_mid_task2 + t_mid_task3 + t_mid_task4 + t_end_task1 + t_end_task2 + t_end_task3 + t_end_task4
'

same_item_residuals <- '
c_mid_bond1 ~~ c_end_bond1
c_mid_bond2 ~~ c_end_bond2
c_mid_bond3 ~~ c_end_bond3
c_mid_bond4 ~~ c_end_bond4
c_mid_task1 ~~ c_end_task1
c_mid_task2 ~~ c_end_task2
c_mid_task3 ~~ c_end_task3
c_mid_task4 ~~ c_end_task4
t_mid_bond1 ~~ t_end_bond1
t_mid_bond2 ~~ t_end_bond2
t_mid_bond3 ~~ t_end_bond3
t_mid_bond4 ~~ t_end_bond4
t_mid_task1 ~~ t_end_task1
t_mid_task2 ~~ t_end_task2
t_mid_task3 ~~ t_end_task3
t_mid_task4 ~~ t_end_task4
'

trait_wording_orth <- '
c_mid_wording ~~ 0*c_bond + 0*c_task + 0*t_bond + 0*t_task
c_end_wording ~~ 0*c_bond + 0*c_task + 0*t_bond + 0*t_task
'

lst_traits <- '
c_bond =~ 1*c_mid_bond + 1*c_end_bond
c_task =~ 1*c_mid_task + 1*c_end_task
t_bond =~ 1*t_mid_bond + 1*t_end_bond
t_task =~ 1*t_mid_task + 1*t_end_task
c_mid_bond ~~ c_mid_task
c_end_bond ~~ c_end_task
t_mid_bond ~~ t_mid_task
t_end_bond ~~ t_end_task
'

states_equal_loadings <- '
c_mid_bond =~ c_mid_bond1 + lcb2*c_mid_bond2 + lcb3*c_mid_bond3 + lcb4*c_mid_bond4
c_mid_task =~ c_mid_task1 + lct2*c_mid_task2 + lct3*c_mid_task3 + lct4*c_mid_task4
c_end_bond =~ c_end_bond1 + lcb2*c_end_bond2 + lcb3*c_end_bond3 + lcb4*c_end_bond4
c_end_task =~ c_end_task1 + lct2*c_end_task2 + lct3*c_end_task3 + lct4*c_end_task4
t_mid_bond =~ t_mid_bond1 + ltb2*t_mid_bond2 + ltb3*t_mid_bond3 + ltb4*t_mid_bond4
t_mid_task =~ t_mid_task1 + ltt2*t_mid_task2 + ltt3*t_mid_task3 + ltt4*t_mid_task4
t_end_bond =~ t_end_bond1 + ltb2*t_end_bond2 + ltb3*t_end_bond3 + ltb4*t_end_bond4
t_end_task =~ t_end_task1 + ltt2*t_end_task2 + ltt3*t_end_task3 + ltt4*t_end_task4
'

models <- list(
  state = states,
  state_wording = paste(states, wording, state_wording_orth),
  trait = paste(traits, same_item_residuals),
  trait_wording = paste(traits, same_item_residuals, wording, trait_wording_orth),
  state_trait = paste(states, lst_traits),
  state_trait_wording = paste(states, lst_traits, wording, trait_wording_orth),
  state_trait_equal_loadings = paste(states_equal_loadings, lst_traits)
)

## ---------------------------------------------------------------------------------------
## helpers
## ---------------------------------------------------------------------------------------

lst_coefficients <- function(fit) {
  est <- lavInspect(fit, "est")
  lam <- est$lambda
  beta <- est$beta
  psi <- est$psi
  phi <- lavInspect(fit, "cov.lv")
  sigma <- lavInspect(fit, "cov.ov")
  out <- list()
  for (inf in c("c", "t")) for (occ in c("mid", "end")) for (dim in c("bond", "task")) {
    st <- paste(inf, occ, dim, sep = "_")
    tr <- paste(inf, dim, sep = "_")
    for (k in 1:4) {
      y <- paste0(st, k)
      l <- lam[y, st]
      g <- beta[st, tr]
      vy <- sigma[y, y]
      others <- setdiff(colnames(lam)[lam[y, ] != 0], st)
      msp <- if (length(others)) {
        a <- lam[y, others]
        as.numeric(t(a) %*% phi[others, others, drop = FALSE] %*% a) / vy
      } else 0
      con <- (l * g)^2 * phi[tr, tr] / vy
      spe <- l^2 * psi[st, st] / vy
      out[[length(out) + 1]] <- list(indicator = y, consistency = con,
                                     occasion_specificity = spe, method_specificity = msp,
                                     reliability = con + spe + msp)
    }
  }
  out
}

write_model <- function(name, syntax) {
  fit <- cfa(syntax, data = dat)
  stopifnot(lavInspect(fit, "converged"))
  fm <- fitMeasures(fit, c("chisq", "df", "npar"))
  pe <- parameterEstimates(fit)[, c("lhs", "op", "rhs", "est", "se")]
  res <- list(
    model = syntax,
    data = "tests/reference/data/alliance_sim_large.csv (items 2 and 4 reverse-scored: 5 - x)",
    lavaan_call = "cfa(model, data)",
    versions = list(r = R.version.string,
                    lavaan = as.character(packageVersion("lavaan")),
                    semTools = as.character(packageVersion("semTools"))),
    fit = list(chisq = unname(fm["chisq"]), df = unname(fm["df"]), npar = unname(fm["npar"])),
    parameters = pe,
    implied_cov = list(names = lavNames(fit, "ov"),
                       values = unname(lavInspect(fit, "cov.ov")[lavNames(fit, "ov"),
                                                                 lavNames(fit, "ov")]))
  )
  if (grepl("^state(_wording)?$", name)) {
    res$compRelSEM <- as.list(compRelSEM(fit))
    res$compRelSEM_implied <- as.list(compRelSEM(fit, obs.var = FALSE))
    res$compRelSEM_alpha <- as.list(compRelSEM(fit, tau.eq = TRUE))
    res$AVE <- as.list(AVE(fit))
  }
  if (grepl("^state_trait", name)) res$lst_coefficients <- lst_coefficients(fit)
  out <- file.path(REF, "json", paste0("measurement_", name, ".json"))
  writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"), out)
  cat(sprintf("%-28s chisq = %10.4f  df = %3d  npar = %3d\n", name, fm["chisq"], fm["df"],
              fm["npar"]))
}

dir.create(file.path(REF, "json"), showWarnings = FALSE, recursive = TRUE)
for (nm in names(models)) write_model(nm, models[[nm]])

## ---------------------------------------------------------------------------------------
## missing data: child state model on the bundled data/alliance.csv (6 items, reverse-keyed
## items 2, 4, 6; 21% of the children lack all end-of-treatment child items), FIML.
## compRelSEM's observed covariance is then lavaan's EM estimate (sampstat).
## ---------------------------------------------------------------------------------------

all <- read.csv("data/alliance.csv")
for (v in grep("(bond|task)[246]$", names(all), value = TRUE)) all[[v]] <- 5 - all[[v]]
child_fiml <- '
c_mid_bond =~ c_mid_bond1 + c_mid_bond2 + c_mid_bond3 + c_mid_bond4 + c_mid_bond5 + c_mid_bond6
c_mid_task =~ c_mid_task1 + c_mid_task2 + c_mid_task3 + c_mid_task4 + c_mid_task5 + c_mid_task6
c_end_bond =~ c_end_bond1 + c_end_bond2 + c_end_bond3 + c_end_bond4 + c_end_bond5 + c_end_bond6
c_end_task =~ c_end_task1 + c_end_task2 + c_end_task3 + c_end_task4 + c_end_task5 + c_end_task6
'
fit <- cfa(child_fiml, data = all, missing = "ml")
stopifnot(lavaan::lavInspect(fit, "converged"))
fm <- fitMeasures(fit, c("chisq", "df", "npar"))
ov <- lavNames(fit, "ov")
res <- list(
  model = child_fiml,
  data = "data/alliance.csv (items 2, 4, 6 reverse-scored: 5 - x)",
  lavaan_call = 'cfa(model, data, missing = "ml")',
  versions = list(r = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                  semTools = as.character(packageVersion("semTools"))),
  fit = list(chisq = unname(fm["chisq"]), df = unname(fm["df"]), npar = unname(fm["npar"])),
  parameters = parameterEstimates(fit)[, c("lhs", "op", "rhs", "est", "se")],
  implied_cov = list(names = ov, values = unname(lavInspect(fit, "cov.ov")[ov, ov])),
  sampstat_cov = list(names = ov, values = unname(lavInspect(fit, "sampstat")$cov[ov, ov])),
  compRelSEM = as.list(compRelSEM(fit)),
  AVE = as.list(AVE(fit))
)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           file.path(REF, "json", "measurement_state_child_fiml.json"))
cat(sprintf("%-28s chisq = %10.4f  df = %3d  npar = %3d\n", "state_child_fiml", fm["chisq"],
            fm["df"], fm["npar"]))
