"""Time FIML fits: sem-models against lavaan (and semopy) on HS39 with MCAR holes, and a large
simulated data set.

Run:  python benchmarks/bench_fiml.py [--repeat 10] [--rows 100000] [--no-semopy]

1. The 3-factor CFA of HolzingerSwineford1939 with ~14% of the x1..x9 cells missing
   (``tests/reference/data/hs_mcar.csv``, 76 missing-data patterns), ``missing="ml"``:
   our median time for the fit alone, fit + standard errors (observed information, as lavaan),
   and fit + standard errors + all fit measures; lavaan's ``cfa(..., missing = "ml")`` timed
   inside one R session (median of repeated runs, no R start-up) when ``Rscript`` is on PATH,
   which already computes standard errors, the test and the baseline model; semopy's
   ``Model.fit(obj="FIML")`` once (it is slow, and its FIML estimates do not agree with
   lavaan's: the largest absolute difference of the loadings is printed).
2. A simulated 100,000-row, 30-variable, 5-factor CFA with 20 missing-data patterns (about 40%
   incomplete rows): time and peak memory (tracemalloc: Python allocations including numpy
   arrays) of the fit, and of the fit with standard errors and fit measures.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sem_models as sm  # noqa: E402

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
MCAR = ROOT / "tests" / "reference" / "data" / "hs_mcar.csv"


from timing import median_time, peak_memory  # noqa: E402  (benchmarks/timing.py)


R_SCRIPT = r"""
suppressMessages(library(lavaan))
d <- read.csv(commandArgs(TRUE)[1])
rep <- as.integer(commandArgs(TRUE)[2])
m <- 'visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9'
med <- function(f) { f(); median(sapply(seq_len(rep), function(i) system.time(f())[["elapsed"]])) }
t_fit <- med(function() cfa(m, d, missing = "ml"))
t_all <- med(function() fitMeasures(cfa(m, d, missing = "ml")))
cat(sprintf("%.6f %.6f\n", t_fit, t_all))
"""


def time_lavaan(repeat: int):
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
        script = fh.name
    out = subprocess.run(["Rscript", script, str(MCAR), str(repeat)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        print("lavaan failed:", out.stderr[-500:])
        return None
    fit_t, all_t = map(float, out.stdout.split()[-2:])
    return fit_t, all_t


def time_semopy(data: pd.DataFrame, ours: sm.SEMFit):
    try:
        import semopy
    except ImportError:
        return None
    import warnings
    cols = [f"x{i}" for i in range(1, 10)]
    model = semopy.Model(HS_MODEL)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data[cols], obj="FIML")
    elapsed = time.perf_counter() - start
    est = model.inspect()
    theirs = est[(est["op"] == "~") & est["rval"].isin(["visual", "textual", "speed"])]
    mine = ours.estimates().query("op == '=~'").set_index(["lhs", "rhs"])["est"]
    diff = max(abs(float(r["Estimate"]) - mine[(r["rval"], r["lval"])])
               for _, r in theirs.iterrows())
    return elapsed, diff


def simulate(rows: int, seed: int = 1) -> tuple[str, pd.DataFrame]:
    """5 factors x 6 indicators, factor correlations 0.3, loadings 0.5-0.9; 20 missing-data
    patterns: complete rows (60%) and 19 patterns with 1-6 variables missing."""
    rng = np.random.default_rng(seed)
    n_f, per = 5, 6
    p = n_f * per
    phi = np.full((n_f, n_f), 0.3) + 0.7 * np.eye(n_f)
    lam = np.zeros((p, n_f))
    for f in range(n_f):
        lam[f * per:(f + 1) * per, f] = rng.uniform(0.5, 0.9, per)
    theta = 1 - (lam ** 2).sum(axis=1) * 0.9
    eta = rng.multivariate_normal(np.zeros(n_f), phi, size=rows)
    X = eta @ lam.T + rng.normal(size=(rows, p)) * np.sqrt(theta) + rng.uniform(0, 3, p)
    patterns = [np.zeros(p, bool)]
    while len(patterns) < 20:
        pat = np.zeros(p, bool)
        pat[rng.choice(p, size=rng.integers(1, 7), replace=False)] = True
        if not any((pat == q).all() for q in patterns):
            patterns.append(pat)
    probs = np.r_[0.6, np.full(19, 0.4 / 19)]
    which = rng.choice(20, size=rows, p=probs)
    X[np.array(patterns)[which]] = np.nan
    names = [f"y{i + 1}" for i in range(p)]
    model = "\n".join(f"f{f + 1} =~ " + " + ".join(names[f * per:(f + 1) * per])
                      for f in range(n_f))
    return model, pd.DataFrame(X, columns=names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-semopy", action="store_true")
    args = parser.parse_args()

    data = pd.read_csv(MCAR)

    def fit():
        return sm.cfa(HS_MODEL, data, missing="ml")

    def fit_se():
        f = fit()
        f.estimates()
        return f

    def fit_all():
        f = fit_se()
        f.measures()
        return f

    t_fit = median_time(fit, args.repeat)
    t_se = median_time(fit_se, args.repeat)
    t_all = median_time(fit_all, args.repeat)
    print("HS39 CFA with MCAR holes (N = 301, 76 patterns), missing='ml'")
    print(f"  sem-models  fit {t_fit * 1e3:8.1f} ms   fit+SE {t_se * 1e3:8.1f} ms   "
          f"fit+SE+fit measures {t_all * 1e3:8.1f} ms")
    lav = time_lavaan(args.repeat)
    if lav is None:
        print("  lavaan      (Rscript not on PATH: skipped)")
    else:
        print(f"  lavaan      cfa() {lav[0] * 1e3:8.1f} ms   cfa()+fitMeasures() "
              f"{lav[1] * 1e3:8.1f} ms")
        print(f"  ratio lavaan cfa() / our fit+SE: {lav[0] / t_se:6.1f}x;  "
              f"with fit measures: {lav[1] / t_all:6.1f}x")
    if not args.no_semopy:
        res = time_semopy(data, fit())
        if res is None:
            print("  semopy      (not installed: skipped)")
        else:
            print(f"  semopy      Model.fit(obj='FIML') {res[0]:8.2f} s  (one run; ratio "
                  f"{res[0] / t_se:6.0f}x); its loadings differ from lavaan's/ours by up to "
                  f"{res[1]:.3f}")

    model, big = simulate(args.rows)
    n_pat = len(np.unique(~big.isna().to_numpy(), axis=0))
    print(f"\nSimulated FIML CFA: {len(big):,} rows x {big.shape[1]} variables, {n_pat} "
          f"missing-data patterns, {big.isna().any(axis=1).mean():.0%} incomplete rows")
    holder = {}

    def big_fit():
        holder["fit"] = sm.cfa(model, big, missing="ml")

    def big_all():
        f = sm.cfa(model, big, missing="ml")
        f.estimates()
        f.measures()
        holder["fit"] = f

    t1, m1 = peak_memory(big_fit)
    t2, m2 = peak_memory(big_all)
    f = holder["fit"]
    print(f"  fit                      {t1:6.2f} s   peak memory {m1:7.1f} MB  "
          f"(converged: {f.converged}, chisq {f.measures()['chisq']:.1f} on "
          f"{int(f.measures()['df'])} df)")
    print(f"  fit + SEs + fit measures {t2:6.2f} s   peak memory {m2:7.1f} MB  "
          f"(data itself: {big.memory_usage().sum() / 2 ** 20:.1f} MB)")


if __name__ == "__main__":
    main()
