## Shared helpers for the lavaan reference generator.
## Sourced by tests/reference/make_reference.R (run from the repo root).

suppressPackageStartupMessages({
  library(lavaan)
  library(semTools)
  library(jsonlite)
})

REF_DIR  <- "tests/reference"
JSON_DIR <- file.path(REF_DIR, "json")
DATA_DIR <- file.path(REF_DIR, "data")
dir.create(JSON_DIR, showWarnings = FALSE, recursive = TRUE)
dir.create(DATA_DIR, showWarnings = FALSE, recursive = TRUE)

VERSIONS <- list(
  r_version        = R.version.string,
  lavaan_version   = as.character(packageVersion("lavaan")),
  semtools_version = as.character(packageVersion("semTools"))
)

## ------------------------------------------------------------------
## CSV writing with exact (round-trip) numeric precision.
## Each double is written with the fewest significant digits (15..17)
## that parse back to the identical double; NA is written as an empty cell.
## ------------------------------------------------------------------
fmt_num <- function(x) {
  out <- rep("", length(x))
  ok <- !is.na(x)
  xo <- x[ok]
  s <- sprintf("%.15g", xo)
  bad <- as.numeric(s) != xo
  if (any(bad)) {
    s16 <- sprintf("%.16g", xo[bad])
    bad16 <- as.numeric(s16) != xo[bad]
    s16[bad16] <- sprintf("%.17g", xo[bad][bad16])
    s[bad] <- s16
  }
  out[ok] <- s
  out
}

write_exact_csv <- function(df, path) {
  df <- as.data.frame(df)
  out <- lapply(df, function(col) {
    if (is.factor(col)) col <- as.character(col)
    if (is.double(col)) {
      fmt_num(col)
    } else if (is.integer(col) || is.logical(col)) {
      ifelse(is.na(col), "", as.character(col))
    } else {
      ifelse(is.na(col), "", paste0('"', gsub('"', '""', col), '"'))
    }
  })
  hdr <- paste0('"', names(df), '"', collapse = ",")
  lines <- do.call(paste, c(out, sep = ","))
  writeLines(c(hdr, lines), path)
  ## round-trip check
  back <- read_data(path)
  for (nm in names(df)) {
    a <- df[[nm]]; b <- back[[nm]]
    if (is.factor(a)) a <- as.character(a)
    if (!isTRUE(all.equal(a, b, tolerance = 0)) ||
        !identical(is.na(a), is.na(b)) ||
        (is.numeric(a) && any(a[!is.na(a)] != b[!is.na(b)])))
      stop("CSV round trip failed for column ", nm, " in ", path)
  }
  invisible(path)
}

read_data <- function(path) {
  read.csv(path, stringsAsFactors = FALSE)
}

## ------------------------------------------------------------------
## Fitting with warning capture
## ------------------------------------------------------------------
## opts: named list using lavaan's own argument names (e.g. group.equal).
## Returns list(fit=, warnings=character()).
fit_capture <- function(fun, model, data, opts = list()) {
  warns <- character()
  fit <- withCallingHandlers(
    do.call(fun, c(list(model = model, data = data), opts)),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(fit = fit, warnings = warns)
}

capture_warnings <- function(expr) {
  warns <- character()
  val <- withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  list(value = val, warnings = warns)
}

## lavaan option names -> python option names ("." -> "_")
py_opts <- function(opts) {
  if (length(opts) == 0) return(setNames(list(), character()))
  names(opts) <- gsub(".", "_", names(opts), fixed = TRUE)
  lapply(opts, function(v) if (is.character(v) && length(v) > 1) as.list(v) else v)
}

## list-valued options that must stay JSON arrays even when length 1
ARRAY_OPTS <- c("group_equal", "group_partial", "long_equal", "long_partial")
py_opts_json <- function(opts) {
  o <- py_opts(opts)
  for (nm in intersect(names(o), ARRAY_OPTS)) o[[nm]] <- I(unlist(o[[nm]]))
  o
}

## ------------------------------------------------------------------
## Extraction helpers
## ------------------------------------------------------------------
group_labels <- function(fit) {
  g <- lavInspect(fit, "group.label")
  if (length(g) == 0) character() else g
}

is_multigroup <- function(fit) lavInspect(fit, "ngroups") > 1

df_records <- function(df) {
  ## data.frame -> list of row records (NA -> null)
  df <- as.data.frame(df, stringsAsFactors = FALSE)
  rownames(df) <- NULL
  lapply(seq_len(nrow(df)), function(i) {
    r <- lapply(df[i, , drop = FALSE], function(v) {
      v <- unname(v)
      if (is.factor(v)) v <- as.character(v)
      v
    })
    r
  })
}

clean_names <- function(x) {
  x <- gsub("Pr(>Chisq)", "Pr_Chisq", x, fixed = TRUE)
  x <- gsub(".", "_", x, fixed = TRUE)
  x <- gsub(" ", "_", x, fixed = TRUE)
  x
}

add_group_label <- function(df, fit) {
  if (is_multigroup(fit) && "group" %in% names(df)) {
    gl <- group_labels(fit)
    grp <- df$group
    lab <- ifelse(grp >= 1 & grp <= length(gl), gl[pmax(1, pmin(grp, length(gl)))], NA)
    ## group 0 (e.g. ':=' or '==' rows) gets ""
    lab[grp == 0] <- ""
    df$group <- lab
  } else {
    df$group <- NULL
  }
  df$block <- NULL
  df$level <- NULL
  df
}

get_parameters <- function(fit) {
  ## Default parameterEstimates rows, plus user '==' / '<' / '>' constraint
  ## rows (remove.eq / remove.ineq = FALSE; system-generated equality rows
  ## from group.equal stay removed as in the default).
  pe <- parameterEstimates(fit, standardized = TRUE,
                           remove.eq = FALSE, remove.ineq = FALSE)
  pt <- parTable(fit)
  if (!"label" %in% names(pe)) pe$label <- ""
  if ("group" %in% names(pe)) {
    key_pe <- paste(pe$lhs, pe$op, pe$rhs, pe$group, sep = "\r")
    key_pt <- paste(pt$lhs, pt$op, pt$rhs, pt$group, sep = "\r")
  } else {
    key_pe <- paste(pe$lhs, pe$op, pe$rhs, sep = "\r")
    key_pt <- paste(pt$lhs, pt$op, pt$rhs, sep = "\r")
  }
  if (anyDuplicated(key_pt)) stop("duplicate parTable keys")
  idx <- match(key_pe, key_pt)
  if (any(is.na(idx))) stop("could not match parameterEstimates rows to parTable")
  pe$free   <- pt$free[idx]
  pe$plabel <- pt$plabel[idx]
  pe$user   <- pt$user[idx]
  pe$exo    <- pt$exo[idx]
  pe <- add_group_label(pe, fit)
  cols <- c("lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue",
            "ci.lower", "ci.upper", "std.lv", "std.all", "std.nox",
            "free", "plabel", "user", "exo")
  cols <- intersect(cols, names(pe))
  pe <- as.data.frame(pe)[, cols]
  names(pe) <- clean_names(names(pe))
  df_records(pe)
}

get_fit <- function(fit) {
  fm <- fitMeasures(fit)
  out <- lapply(as.list(unclass(fm)), function(v) unname(as.numeric(v)))
  names(out) <- clean_names(names(fm))
  out
}

named_matrix <- function(m) {
  m <- as.matrix(m)
  list(rownames = I(rownames(m)), colnames = I(colnames(m)),
       matrix = unname(unclass(m)))
}

named_vector <- function(v) {
  list(names = I(names(v)), values = I(unname(as.numeric(v))))
}

per_group <- function(fit, x) {
  ## x: either a single-group object or list per group (named by label)
  if (is_multigroup(fit)) x else list(x)
}

get_implied <- function(fit) {
  imp <- lavInspect(fit, "implied")
  imp <- per_group(fit, imp)
  gl <- group_labels(fit)
  lapply(seq_along(imp), function(g) {
    out <- list(group = if (length(gl)) gl[g] else "",
                cov = named_matrix(imp[[g]]$cov))
    if (!is.null(imp[[g]]$mean)) out$mean <- named_vector(imp[[g]]$mean)
    out
  })
}

get_residuals <- function(fit) {
  gl <- group_labels(fit)
  conv <- function(r, type) {
    r <- per_group(fit, r)
    lapply(seq_along(r), function(g) {
      out <- list(group = if (length(gl)) gl[g] else "", type = type)
      if (!is.null(r[[g]]$cov)) out$cov <- named_matrix(r[[g]]$cov)
      if (!is.null(r[[g]]$mean)) out$mean <- named_vector(r[[g]]$mean)
      out
    })
  }
  raw <- conv(resid(fit, type = "raw"), "raw")
  cb  <- conv(resid(fit, type = "cor.bentler"), "cor.bentler")
  st  <- tryCatch(conv(suppressWarnings(resid(fit, type = "standardized")), "standardized"),
                  error = function(e) NULL)
  lr <- lavResiduals(fit)   # default type = "cor.bentler", with summary
  lr <- per_group(fit, lr)
  summ <- lapply(seq_along(lr), function(g) {
    s <- lr[[g]]$summary
    list(group = if (length(gl)) gl[g] else "",
         rownames = I(rownames(s)), colnames = I(colnames(s)),
         matrix = unname(as.matrix(s)))
  })
  list(raw = raw, cor_bentler = cb, standardized = st, lavResiduals_summary = summ)
}

get_fscores <- function(fit, n = 10) {
  fs <- lavPredict(fit, method = "regression")
  fs <- if (is.list(fs) && !is.matrix(fs)) fs else list(fs)
  gl <- group_labels(fit)
  lapply(seq_along(fs), function(g) {
    m <- fs[[g]][seq_len(min(n, nrow(fs[[g]]))), , drop = FALSE]
    list(group = if (length(gl)) gl[g] else "",
         colnames = I(colnames(m)), matrix = unname(unclass(m)))
  })
}

get_vcov <- function(fit) {
  v <- vcov(fit)
  pt <- parTable(fit)
  fr <- pt[pt$free > 0, ]
  fr <- fr[order(fr$free), ]
  gl <- group_labels(fit)
  grp <- if (length(gl)) gl[fr$group] else rep("", nrow(fr))
  list(names = I(rownames(v)),
       free = I(fr$free), lhs = I(fr$lhs), op = I(fr$op), rhs = I(fr$rhs),
       group = I(grp), plabel = I(fr$plabel),
       matrix = unname(unclass(as.matrix(v))))
}

get_modindices <- function(fit, n = 20) {
  mi <- modindices(fit, sort. = TRUE)
  mi <- as.data.frame(mi)
  mi <- head(mi, n)
  if (!"group" %in% names(mi)) mi$group <- 1L
  mi <- add_group_label(mi, fit)
  cols <- intersect(c("lhs", "op", "rhs", "group", "mi", "epc", "sepc.lv",
                      "sepc.all", "sepc.nox"), names(mi))
  mi <- mi[, cols]
  names(mi) <- clean_names(names(mi))
  df_records(mi)
}

get_wald <- function(fit, constraints) {
  w <- capture_warnings(lavTestWald(fit, constraints = constraints))
  list(constraints = constraints, stat = w$value$stat, df = w$value$df,
       p_value = w$value$p.value, se = w$value$se,
       warnings = I(w$warnings))
}

get_lrt <- function(fits, method = "default", model.names = names(fits), ...) {
  r <- capture_warnings(do.call(lavTestLRT,
        c(unname(fits), list(method = method, model.names = model.names), list(...))))
  a <- r$value
  df <- as.data.frame(a)
  mod <- rownames(df)
  names(df) <- clean_names(names(df))
  df <- cbind(model = mod, df, stringsAsFactors = FALSE)
  list(method = method, heading = paste(attr(a, "heading"), collapse = "\n"),
       table = df_records(df), warnings = I(r$warnings))
}

get_score_tests <- function(fit, epc = FALSE) {
  r <- capture_warnings(lavTestScore(fit, epc = epc))
  st <- r$value
  pt <- parTable(fit)
  gl <- group_labels(fit)
  desc <- function(pl) {
    i <- match(pl, pt$plabel)
    if (is.na(i)) return(list(plabel = pl))
    list(plabel = pl, lhs = pt$lhs[i], op = pt$op[i], rhs = pt$rhs[i],
         group = if (length(gl)) gl[pt$group[i]] else "",
         label = pt$label[i], free = pt$free[i])
  }
  uni <- as.data.frame(st$uni)
  uni_rec <- lapply(seq_len(nrow(uni)), function(i) {
    list(lhs = uni$lhs[i], op = uni$op[i], rhs = uni$rhs[i],
         X2 = uni$X2[i], df = uni$df[i], p_value = uni$p.value[i],
         lhs_param = desc(uni$lhs[i]), rhs_param = desc(uni$rhs[i]))
  })
  tot <- as.data.frame(st$test)
  out <- list(total = list(X2 = tot$X2, df = tot$df, p_value = tot$p.value),
              uni = uni_rec, warnings = I(r$warnings))
  if (epc && !is.null(st$epc)) {
    e <- as.data.frame(st$epc)
    if (!"group" %in% names(e)) e$group <- 1L
    e <- add_group_label(e, fit)
    names(e) <- clean_names(names(e))
    out$epc <- df_records(e)
  }
  out
}

get_stdsol <- function(fit) {
  res <- list()
  for (type in c("std.all", "std.lv", "std.nox")) {
    s <- as.data.frame(standardizedSolution(fit, type = type))
    if (!"group" %in% names(s)) s$group <- 1L
    s <- add_group_label(s, fit)
    names(s) <- clean_names(names(s))
    res[[gsub(".", "_", type, fixed = TRUE)]] <- df_records(s)
  }
  res
}

## ------------------------------------------------------------------
## Case writer
## ------------------------------------------------------------------
RESULTS <- list()   # case -> c(chisq, df, npar)

fit_body <- function(fitres, fun, model, opts) {
  fit <- fitres$fit
  conv <- lavInspect(fit, "converged")
  pc <- tryCatch(capture_warnings(lavInspect(fit, "post.check")),
                 error = function(e) list(value = NA, warnings = conditionMessage(e)))
  list(call = list(`function` = fun, model = model,
                   options = py_opts_json(opts)),
       group_labels = I(group_labels(fit)),
       nobs = I(as.integer(lavInspect(fit, "nobs"))),
       norig = I(as.integer(lavInspect(fit, "norig"))),
       ntotal = lavInspect(fit, "ntotal"),
       converged = conv,
       post_check = isTRUE(pc$value),
       iterations = lavInspect(fit, "iterations"),
       warnings = I(c(fitres$warnings, pc$warnings)),
       parameters = get_parameters(fit),
       fit = get_fit(fit))
}

record_result <- function(case, fit) {
  fm <- fitMeasures(fit, c("chisq", "df", "npar"))
  conv <- lavInspect(fit, "converged")
  if (!isTRUE(conv)) message("WARNING: case ", case, " did not converge")
  RESULTS[[case]] <<- c(chisq = unname(fm["chisq"]), df = unname(fm["df"]),
                        npar = unname(fm["npar"]), converged = as.numeric(conv))
}

case_json <- function(case, fitres, fun, model, opts, data_path,
                      extras = list(), notes = NULL) {
  body <- fit_body(fitres, fun, model, opts)
  out <- c(list(case = case), VERSIONS, list(data = data_path),
           body[c("call")], body[setdiff(names(body), "call")])
  if (!is.null(notes)) out$notes <- notes
  for (nm in names(extras)) out[[nm]] <- extras[[nm]]
  write_case(case, out)
  record_result(case, fitres$fit)
  invisible(out)
}

write_case <- function(case, out) {
  path <- file.path(JSON_DIR, paste0(case, ".json"))
  jsonlite::write_json(out, path, auto_unbox = TRUE, digits = NA,
                       null = "null", na = "null", pretty = TRUE)
  message("wrote ", path)
}

## Fit, then write; returns the fit result (list(fit, warnings))
run_case <- function(case, fun, model, data, data_path, opts = list(),
                     extras_fun = NULL, notes = NULL) {
  fr <- fit_capture(fun, model, data, opts)
  extras <- if (is.null(extras_fun)) list() else extras_fun(fr$fit)
  case_json(case, fr, fun, model, opts, data_path, extras, notes)
  fr
}
