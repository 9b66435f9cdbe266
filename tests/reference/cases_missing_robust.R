## Missing data (FIML), robust estimators (MLM / MLR), scaled difference
## tests and cluster-robust SEs (issue 3).

MCAR_PATH  <- file.path(DATA_DIR, "hs_mcar.csv")
ALLNA_PATH <- file.path(DATA_DIR, "hs_mcar_allna.csv")
SIM_PATH   <- file.path(DATA_DIR, "sim_clustered.csv")

SIM_MODEL <- paste("f1 =~ y1 + y2 + y3", "f2 =~ y4 + y5 + y6",
                   "o1 ~ f1 + f2", "o2 ~ f1 + f2", sep = "\n")

run_missing_robust <- function() {
  hs    <- read_data(HS_PATH)
  mcar  <- read_data(MCAR_PATH)
  allna <- read_data(ALLNA_PATH)
  sim   <- read_data(SIM_PATH)
  iv <- function(fit) list(implied = get_implied(fit), vcov = get_vcov(fit))
  scalar <- c("loadings", "intercepts")

  ## ---- FIML ------------------------------------------------------------------
  run_case("hs_fiml", "cfa", HS_MODEL, mcar, MCAR_PATH, list(missing = "ml"), iv)
  run_case("hs_fiml_mlr", "cfa", HS_MODEL, mcar, MCAR_PATH,
           list(estimator = "MLR", missing = "ml"), iv)
  run_case("hs_fiml_allna", "cfa", HS_MODEL, allna, ALLNA_PATH,
           list(missing = "ml"), iv,
           notes = paste("hs_mcar.csv plus 2 rows (id 9001, 9002) with x1..x9 all",
                         "missing; lavaan drops them (norig 303 -> nobs 301), so",
                         "results equal hs_fiml."))
  run_case("hs_fiml_groups_scalar", "cfa", HS_MODEL, mcar, MCAR_PATH,
           list(group = "school", group.equal = scalar, missing = "ml"), iv)
  run_case("hs_fiml_groups_scalar_mlr", "cfa", HS_MODEL, mcar, MCAR_PATH,
           list(group = "school", group.equal = scalar, missing = "ml",
                estimator = "MLR"), iv)
  run_case("hs_listwise_mcar", "cfa", HS_MODEL, mcar, MCAR_PATH, list(), iv,
           notes = "default missing='listwise' on the MCAR file: only complete rows are used")

  ## ---- robust, complete data -------------------------------------------------
  run_case("hs_mlm", "cfa", HS_MODEL, hs, HS_PATH, list(estimator = "MLM"), iv)
  run_case("hs_mlr", "cfa", HS_MODEL, hs, HS_PATH, list(estimator = "MLR"), iv)
  run_case("hs_mlm_groups_scalar", "cfa", HS_MODEL, hs, HS_PATH,
           list(group = "school", group.equal = scalar, estimator = "MLM"), iv)
  run_case("hs_mlr_groups_scalar", "cfa", HS_MODEL, hs, HS_PATH,
           list(group = "school", group.equal = scalar, estimator = "MLR"), iv)

  ## ---- scaled chi-square difference tests ------------------------------------
  models <- list()
  lrts <- list()
  for (est in c("MLR", "MLM")) {
    o_conf <- list(group = "school", estimator = est)
    o_metr <- list(group = "school", group.equal = "loadings", estimator = est)
    f_conf <- fit_capture("cfa", HS_MODEL, hs, o_conf)
    f_metr <- fit_capture("cfa", HS_MODEL, hs, o_metr)
    n_conf <- paste0(tolower(est), "_configural")
    n_metr <- paste0(tolower(est), "_metric")
    models[[n_conf]] <- fit_body(f_conf, "cfa", HS_MODEL, o_conf)
    models[[n_metr]] <- fit_body(f_metr, "cfa", HS_MODEL, o_metr)
    record_result(paste0("hs_scaled_diff/", n_conf), f_conf$fit)
    record_result(paste0("hs_scaled_diff/", n_metr), f_metr$fit)
    fl <- setNames(list(f_conf$fit, f_metr$fit), c(n_conf, n_metr))
    for (meth in c("default", "satorra.bentler.2001", "satorra.bentler.2010",
                   "satorra.2000")) {
      l <- tryCatch(get_lrt(fl, method = meth),
                    error = function(e) list(method = meth, error = conditionMessage(e)))
      l$estimator <- est
      lrts[[length(lrts) + 1]] <- l
    }
  }
  write_case("hs_scaled_diff",
             c(list(case = "hs_scaled_diff"), VERSIONS,
               list(data = HS_PATH,
                    notes = paste("No single fit: 'models' holds the configural and",
                                  "metric (group.equal='loadings') fits by school for",
                                  "MLR and MLM; 'lrt' holds lavTestLRT(configural,",
                                  "metric, method=...) for each estimator and method.",
                                  "method 'default' is what lavTestLRT does without",
                                  "a method argument."),
                    models = models, lrt = lrts)))

  ## ---- clustered data ----------------------------------------------------------
  cl_notes <- paste("Simulated: 20 schools with 15-25 children; school random",
                    "intercepts on f1, f2 and the outcomes; ~10% MAR missingness",
                    "on o1/o2 (depending on y1/y4). See make_data.R.")
  run_case("sim_clustered", "sem", SIM_MODEL, sim, SIM_PATH,
           list(estimator = "MLR", missing = "ml", cluster = "school"),
           function(fit) list(vcov = get_vcov(fit), implied = get_implied(fit),
                              lavaan_options = used_options(fit)),
           notes = cl_notes)
  run_case("sim_clustered_ml", "sem", SIM_MODEL, sim, SIM_PATH,
           list(estimator = "ML", missing = "ml", cluster = "school"),
           function(fit) list(vcov = get_vcov(fit),
                              lavaan_options = used_options(fit)),
           notes = paste(cl_notes, "Same as sim_clustered but estimator='ML';",
                         "see lavaan_options for the se/test lavaan chose."))
  run_case("sim_clustered_ml_nocluster", "sem", SIM_MODEL, sim, SIM_PATH,
           list(estimator = "ML", missing = "ml"),
           function(fit) list(vcov = get_vcov(fit),
                              lavaan_options = used_options(fit)),
           notes = paste(cl_notes, "Plain FIML ignoring the clustering",
                         "(point estimates should equal sim_clustered)."))
  invisible(TRUE)
}

## se / test / information settings lavaan resolved for a fit
used_options <- function(fit) {
  o <- lavInspect(fit, "options")
  keep <- c("estimator", "se", "test", "information", "h1.information",
            "observed.information", "missing", "meanstructure", "fixed.x",
            "likelihood", "mimic")
  o <- o[intersect(keep, names(o))]
  names(o) <- gsub(".", "_", names(o), fixed = TRUE)
  lapply(o, function(v) if (length(v) > 1) I(v) else v)
}
