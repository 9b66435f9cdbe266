## semTools references for tests/test_permutation.py (permutation tests of invariance).
## Standalone, from the repository root, after `python tests/reference/make_permutation_inputs.py`:
##   Rscript tests/reference/cases_permutation.R
## Writes tests/reference/json/permutation.json: for HS39 by school (configural, metric and
## scalar CFA, lavaan's cfa(group.equal=)), semTools::permuteMeasEq() run on the permutations
## of data/permutation_hs_codes.csv (our seeded permutations replace semTools' own shuffle
## through its datafun= hook):
##   observed  AFI.obs (con minus uncon; the configural model alone: its own indices)
##   dist      AFI.dist, one array per index (one value per permutation)
##   pvalue    AFI.pval (semTools: mean(dist >= obs) for badness, <= for goodness indices)
##   anova     the chi-square difference test of the pair

source("tests/reference/helpers.R")

HS <- read.csv("data/HolzingerSwineford1939.csv", stringsAsFactors = FALSE)
CODES <- read.csv(file.path(DATA_DIR, "permutation_hs_codes.csv"))
MODEL <- "
visual  =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed   =~ x7 + x8 + x9
"
AFIS <- c("chisq", "cfi", "tli", "rmsea", "srmr", "aic", "bic")
LABELS <- c("Pasteur", "Grant-White")

fits <- list(
  configural = cfa(MODEL, HS, group = "school", group.label = LABELS),
  metric = cfa(MODEL, HS, group = "school", group.label = LABELS, group.equal = "loadings"),
  scalar = cfa(MODEL, HS, group = "school", group.label = LABELS,
               group.equal = c("loadings", "intercepts")))
stopifnot(identical(lavInspect(fits$configural, "group.label"), LABELS))

## semTools draws its own shuffle first, then datafun replaces the group column by our next
## permutation (the permutations run in order without parallelType; the data are stacked by
## group as lavInspect(con, "data"))
counter <- new.env()
use_codes <- function(data) {
  counter$i <- counter$i + 1L
  data$school <- LABELS[CODES[[counter$i]]]
  data
}

run <- function(con, uncon) {
  counter$i <- 0L
  args <- list(nPermute = ncol(CODES), con = con, AFIs = AFIS, showProgress = FALSE,
               datafun = use_codes, iseed = 1)
  if (!is.null(uncon)) args$uncon <- uncon
  res <- do.call(semTools::permuteMeasEq, args)
  stopifnot(res@n.Converged == ncol(CODES), all(res@n.nonConverged == 0),
            counter$i == ncol(CODES))
  list(observed = as.list(res@AFI.obs), pvalue = as.list(res@AFI.pval),
       dist = lapply(as.list(res@AFI.dist), as.numeric),
       anova = if (is.null(uncon)) NULL else as.list(res@ANOVA))
}

out <- list(versions = VERSIONS, model = MODEL, afis = AFIS, n_permutations = ncol(CODES),
            configural = run(fits$configural, NULL),
            metric = run(fits$metric, fits$configural),
            scalar = run(fits$scalar, fits$metric))

write(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"),
      file.path(JSON_DIR, "permutation.json"))
cat("wrote", file.path(JSON_DIR, "permutation.json"), "\n")
