## Writes the CSV data files used by the reference cases.
##  - data/HolzingerSwineford1939.csv, data/PoliticalDemocracy.csv
##    (lavaan's bundled datasets, exact round-trip precision)
##  - tests/reference/data/hs_mcar.csv, hs_mcar_allna.csv  (MCAR holes)
##  - tests/reference/data/sim_clustered.csv                 (clustered sim)
##  - tests/reference/data/long_sim.csv                      (longitudinal sim)
## All values are written so that they parse back to the identical doubles.

HS_PATH <- "data/HolzingerSwineford1939.csv"
PD_PATH <- "data/PoliticalDemocracy.csv"

make_data <- function() {
  ## ---- bundled datasets --------------------------------------------
  hs <- lavaan::HolzingerSwineford1939
  hs$school <- as.character(hs$school)
  write_exact_csv(hs, HS_PATH)
  pd <- lavaan::PoliticalDemocracy
  write_exact_csv(pd, PD_PATH)

  ## ---- MCAR holes in x1..x9 -------------------------------------------
  set.seed(20261125)
  xs <- paste0("x", 1:9)
  X <- as.matrix(hs[, xs])
  repeat {
    holes <- matrix(runif(length(X)) < 0.15, nrow(X), ncol(X))
    if (!any(rowSums(holes) == ncol(X))) break
  }
  X[holes] <- NA
  mcar <- hs
  mcar[, xs] <- X
  write_exact_csv(mcar, file.path(DATA_DIR, "hs_mcar.csv"))

  allna <- mcar
  extra <- mcar[c(1, nrow(mcar)), ]          # one Pasteur, one Grant-White row
  extra$id <- c(9001L, 9002L)
  extra[, xs] <- NA_real_
  allna <- rbind(allna, extra)
  write_exact_csv(allna, file.path(DATA_DIR, "hs_mcar_allna.csv"))

  ## ---- clustered simulation -------------------------------------------
  set.seed(20261125)
  nschool <- 20
  sizes <- sample(15:25, nschool, replace = TRUE)
  school <- rep(seq_len(nschool), sizes)
  n <- length(school)
  u_f1 <- rnorm(nschool, 0, 0.5)[school]       # school random intercepts
  u_f2 <- rnorm(nschool, 0, 0.4)[school]
  u_o  <- rnorm(nschool, 0, 0.3)[school]
  f1 <- rnorm(n) + u_f1
  f2 <- 0.4 * f1 + rnorm(n, 0, sqrt(1 - 0.16)) + u_f2
  lam <- c(1, 0.8, 0.7)
  y <- cbind(lam[1] * f1, lam[2] * f1, lam[3] * f1,
             lam[1] * f2, lam[2] * f2, lam[3] * f2) +
       matrix(rnorm(n * 6, 0, 0.6), n, 6)
  y <- sweep(y, 2, c(3, 2.5, 2, 3, 2.5, 2), "+")
  colnames(y) <- paste0("y", 1:6)
  o1 <- 1 + 0.5 * f1 + 0.3 * f2 + u_o + rnorm(n, 0, 0.7)
  o2 <- 2 + 0.2 * f1 + 0.6 * f2 + u_o + rnorm(n, 0, 0.7)
  sim <- data.frame(school = school, round(y, 3),
                    o1 = round(o1, 3), o2 = round(o2, 3))
  ## MAR: missingness on o1/o2 depends on observed y1 / y4
  p1 <- plogis(-2.6 + 1.2 * as.numeric(scale(sim$y1)))
  p2 <- plogis(-2.6 + 1.2 * as.numeric(scale(sim$y4)))
  sim$o1[runif(n) < p1] <- NA
  sim$o2[runif(n) < p2] <- NA
  write_exact_csv(sim, file.path(DATA_DIR, "sim_clustered.csv"))

  ## ---- longitudinal simulation -----------------------------------------
  set.seed(20261125)
  pop <- '
    B1 =~ 1*b1_t1 + 0.8*b2_t1 + 0.7*b3_t1
    K1 =~ 1*k1_t1 + 0.9*k2_t1 + 0.6*k3_t1
    B2 =~ 1*b1_t2 + 0.8*b2_t2 + 0.7*b3_t2
    K2 =~ 1*k1_t2 + 0.9*k2_t2 + 0.6*k3_t2
    B1 ~~ 1*B1 + 0.3*K1 + 0.6*B2 + 0.2*K2
    K1 ~~ 1*K1 + 0.2*B2 + 0.5*K2
    B2 ~~ 1.2*B2 + 0.35*K2
    K2 ~~ 1.1*K2
    B1 ~ 0*1
    K1 ~ 0*1
    B2 ~ 0.2*1
    K2 ~ 0.1*1
    b1_t1 ~ 3*1
    b2_t1 ~ 2.5*1
    b3_t1 ~ 2*1
    k1_t1 ~ 3*1
    k2_t1 ~ 2.7*1
    k3_t1 ~ 2.2*1
    b1_t2 ~ 3*1
    b2_t2 ~ 2.5*1
    b3_t2 ~ 2.3*1
    k1_t2 ~ 3*1
    k2_t2 ~ 2.7*1
    k3_t2 ~ 2.2*1
    b1_t1 ~~ 0.4*b1_t1 + 0.1*b1_t2
    b2_t1 ~~ 0.5*b2_t1 + 0.1*b2_t2
    b3_t1 ~~ 0.5*b3_t1 + 0.1*b3_t2
    k1_t1 ~~ 0.4*k1_t1 + 0.1*k1_t2
    k2_t1 ~~ 0.5*k2_t1 + 0.1*k2_t2
    k3_t1 ~~ 0.6*k3_t1 + 0.1*k3_t2
    b1_t2 ~~ 0.4*b1_t2
    b2_t2 ~~ 0.5*b2_t2
    b3_t2 ~~ 0.5*b3_t2
    k1_t2 ~~ 0.4*k1_t2
    k2_t2 ~~ 0.5*k2_t2
    k3_t2 ~~ 0.6*k3_t2
  '
  long <- lavaan::simulateData(pop, sample.nobs = 300)
  long <- round(long[, c("b1_t1", "b2_t1", "b3_t1", "k1_t1", "k2_t1", "k3_t1",
                         "b1_t2", "b2_t2", "b3_t2", "k1_t2", "k2_t2", "k3_t2")], 3)
  write_exact_csv(long, file.path(DATA_DIR, "long_sim.csv"))
  invisible(TRUE)
}
