"""Time FIML fits: sem-models against lavaan (and semopy) on HS39 with MCAR holes, and a large
simulated data set.

Run:  python benchmarks/bench_fiml.py [--rounds 7] [--block 3] [--rows 100000] [--no-semopy]

1. The 3-factor CFA of HolzingerSwineford1939 with ~14% of the x1..x9 cells missing
   (``tests/reference/data/hs_mcar.csv``, 76 missing-data patterns), ``missing="ml"``:
   our time for the fit alone, fit + standard errors (observed information, as lavaan), and
   fit + standard errors + all fit measures; lavaan's ``cfa(..., missing = "ml")`` (which
   already computes standard errors, the test and the baseline model) in one persistent R
   session when ``Rscript`` is on PATH.  Blocks of our runs and lavaan's alternate (timings on
   a shared machine drift); printed are medians over rounds and the per-round ratios.  semopy's
   ``Model.fit(obj="FIML")`` once (it is slow, and its FIML estimates do not agree with
   lavaan's: the largest absolute difference of the loadings is printed).
2. A simulated 100,000-row, 30-variable, 5-factor CFA with 20 missing-data patterns (about 40%
   incomplete rows): time and peak memory (tracemalloc: Python allocations including numpy
   arrays) of the fit, and of the fit with standard errors and fit measures.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sem_models as sm  # noqa: E402

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
MCAR = ROOT / "tests" / "reference" / "data" / "hs_mcar.csv"


from timing import RSession, block_mean, peak_memory  # noqa: E402  (benchmarks/timing.py)

R_TASKS = r"""
suppressMessages(library(lavaan))
d <- read.csv("%s")
m <- 'visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9'
list("fit" = function() cfa(m, d, missing = "ml"),
     "all" = function() fitMeasures(cfa(m, d, missing = "ml")))
"""


def time_hs(rounds: int, block: int) -> dict:
    """Per round, the mean time per run of ours (fit, fit + SEs, fit + SEs + fit measures)
    and, when Rscript is on PATH, of lavaan's cfa() and cfa() + fitMeasures() in one
    persistent R session, in alternating blocks."""
    data = pd.read_csv(MCAR)

    def fit():
        return sm.cfa(HS_MODEL, data, missing="ml")

    def fit_se():
        f = fit()
        f.estimates()
        return f

    def fit_all():
        fit_se().measures()

    ours = {"fit": fit, "fit_se": fit_se, "fit_all": fit_all}
    session = RSession(R_TASKS % MCAR.as_posix()) if shutil.which("Rscript") else None
    times: dict = {name: [] for name in ours}
    try:
        for func in ours.values():
            func()  # warm-up
        if session is not None:
            times.update(lavaan_fit=[], lavaan_all=[])
            session.block_mean("fit", 1)
        for _ in range(rounds):
            for name, func in ours.items():
                times[name].append(block_mean(func, block))
            if session is not None:
                times["lavaan_fit"].append(session.block_mean("fit", block))
                times["lavaan_all"].append(session.block_mean("all", block))
    finally:
        if session is not None:
            session.close()
    return times


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
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument("--block", type=int, default=3, help="runs per block")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-semopy", action="store_true")
    args = parser.parse_args()

    times = time_hs(args.rounds, args.block)
    med = {name: statistics.median(series) for name, series in times.items()}
    print("HS39 CFA with MCAR holes (N = 301, 76 patterns), missing='ml'")
    print(f"  sem-models  fit {med['fit'] * 1e3:8.1f} ms   fit+SE {med['fit_se'] * 1e3:8.1f} ms   "
          f"fit+SE+fit measures {med['fit_all'] * 1e3:8.1f} ms")
    if "lavaan_fit" not in times:
        print("  lavaan      (Rscript not on PATH: skipped)")
    else:
        print(f"  lavaan      cfa() {med['lavaan_fit'] * 1e3:8.1f} ms   cfa()+fitMeasures() "
              f"{med['lavaan_all'] * 1e3:8.1f} ms")
        for label, theirs, mine in (("cfa() / our fit+SE", "lavaan_fit", "fit_se"),
                                    ("with fit measures", "lavaan_all", "fit_all")):
            ratios = [t / o for t, o in zip(times[theirs], times[mine])]
            print(f"  ratio lavaan {label}: {statistics.median(ratios):6.1f}x "
                  f"(worst round {min(ratios):.1f}x)")
    data = pd.read_csv(MCAR)
    if not args.no_semopy:
        res = time_semopy(data, sm.cfa(HS_MODEL, data, missing="ml"))
        if res is None:
            print("  semopy      (not installed: skipped)")
        else:
            print(f"  semopy      Model.fit(obj='FIML') {res[0]:8.2f} s  (one run; ratio "
                  f"{res[0] / med['fit_se']:6.0f}x); its loadings differ from lavaan's/ours by up to "
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
