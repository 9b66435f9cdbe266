"""Like-for-like pairs against lavaan 0.6-14 in one run (issue 18), each next to its floor.

Run:  python benchmarks/bench_pairs.py [--rounds 7] [--rounds-alliance 5] [--rounds-large 1]
                                        [--skip-large] [--only NAME ...]

Pairs (ours | lavaan, both computing standard errors):

* ``fit+est``  fit + ``estimates()``            | ``cfa()`` / ``sem()`` (computes the SEs)
* ``fit+fm``   fit + ``estimates()`` + ``measures()`` | the same call + ``fitMeasures()``

for

* ``HS39 CFA``       the 3-factor CFA of HolzingerSwineford1939 (complete data, ML);
* ``HS39 FIML``      the same with ~14% MCAR holes (tests/reference/data/hs_mcar.csv,
  76 missing-data patterns), ``missing="ml"``;
* ``alliance ML``    an alliance-size FIML trait model: ``simulate_alliance(seed=1)`` (N = 360)
  without single-item holes (the MAR block missingness of the child / therapist end-of-
  treatment items and of the follow-up outcomes: 7 patterns), items 1-4 of both informants x
  occasions x subscales reverse-scored, ``trait_model`` + outcome regressions
  (``outcome_syntax``): 36 variables, 146 parameters, ``sem(missing="ml", fixed_x=False)``;
* ``alliance MLR+cl`` the same with ``estimator="MLR", cluster="school"`` (20 schools);
* ``FIML p=120``     a simulated 5-factor CFA, 24 indicators each, N = 10,000, 20 patterns
  (40% incomplete rows): fit + estimates only (lavaan's ``fitMeasures()`` on it takes far
  longer than the run's budget: its FIML-corrected indices invert 7,380 x 7,380 matrices);
* ``FIML N=1e6``     the 30-variable version with a million rows: ours only (time and peak
  memory against the size of the data);
* ``HS39 invariance`` pair ``table``: ``invariance.sequence(..., group="school",
  identification="lavaan").table`` (configural, metric, scalar and strict fits, their fit
  measures and difference tests; the parse caches emptied before every run, so that nothing
  is reused between runs) | the four ``cfa()`` fits + ``lavTestLRT()`` + ``fitMeasures()``;
* ``ordinal``         the 16-item, 4-category CFA of ``benchmarks/bench_ordinal.py`` (N = 1,000,
  WLSMV): fit + estimates | ``cfa(ordered=)``, + fit measures | + ``fitMeasures()``;
* ``two-level``       lavaan's Demo.twolevel example model (2,500 rows in 200 clusters, rows
  shuffled; ``benchmarks/bench_twolevel.py``), ML: the same two pairs;
* ``bootstrap``       pair ``per refit``: the ordinary bootstrap of the HS39 CFA, 200 refits
  in this process (``executor="serial"``) | ``bootstrapLavaan(fit, R = 200)``; times per refit.

The single-model cases refit one syntax string, so the parser's cache of recent parses
(:func:`sem_models.model.syntax.parse_model`) serves it after the first run: a cold parse of
the HS39 syntax adds about 0.05 ms (2% of that pair).  The invariance table empties the caches
before every run.

The floors of the last four cases use a generic flop model, since their dense algebra is
not that of one ML / FIML loss: one pass over the data for the sample statistics ``N p^2``
(for the bootstrap: per refit, the resample's covariance matrix) and one solve with the
information, ``q^3 / 3`` (per fit of the table).

The packages are timed in alternating blocks in one persistent R session (timings on a shared
machine drift by 20-40% within minutes): per round a block of our runs, then a block of
lavaan's, each block of more than one run after one untimed run (the other program's block
leaves the caches cold).  One lavaan run times both members of a pair (laps after ``cfa()``/``sem()`` and
after ``fitMeasures()``).  Printed per pair: the medians over rounds of the mean time per run,
the median and the worst (smallest) round's ratio lavaan / ours ("cpu x": the median ratio
of CPU seconds, which a busy machine disturbs much less than wall time), our peak memory
(tracemalloc: Python and numpy allocations) and lavaan's (R ``gc()`` max used above the memory
in use before its blocks), and the arithmetic floor of the task:

    floor = flops / (this machine's single-threaded GEMM rate, measured at start-up)

with a flop model of the dense algebra the task cannot avoid (per missing-data pattern k with
p_k observed variables, q free parameters, ``it`` the optimizer's iterations, dim the number
of h1 moments): one FIML evaluation ``E = sum_k 4/3 p_k^3`` (Cholesky + triangular solve of
the pattern's covariance), one information or Hessian ``I = sum_k 2 q^2 p_k`` (each of its
q^2 entries needs at least one inner product over the observed variables of each pattern),
the fit ``it (E + I)``, the standard
errors ``I + q^3 / 3``, and with fit measures under FIML the h1 information
``sum_k 2 dim p_k^2`` and its Cholesky factor and inverse ``dim^3``.  Also printed for the
FIML cases: our time per FIML evaluation (``loss.value``) against its floor ``E`` (the gap is
call overhead).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import (RLapSession, block_mean, block_wall_cpu, gemm_gflops,  # noqa: E402
                    peak_memory)

import sem_models as sm  # noqa: E402
from sem_models.estimation.threads import blas_single_thread  # noqa: E402

HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
MCAR = ROOT / "tests" / "reference" / "data" / "hs_mcar.csv"


# ------------------------------------------------------------------------------ the cases
def alliance_case():
    """(syntax, data) of the alliance-size FIML trait model (see the module docstring)."""
    from measurement import Design, reverse_score, trait_model
    from sem_models.datasets import ALLIANCE_TRUTH, simulate_alliance
    from sem_models.study.outcomes import outcome_syntax

    truth = copy.deepcopy(ALLIANCE_TRUTH)
    truth["missingness"]["item"]["rate"] = 0.0
    design = Design(informants=["c", "t"], occasions=["mid", "end"],
                    dimensions=["bond", "task"], items=[1, 2, 3, 4],
                    pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2, 4])
    df = reverse_score(simulate_alliance(seed=1, truth=truth), design)
    syntax = outcome_syntax(trait_model(design), {"ext_fu": ["ext_pre"], "int_fu": ["int_pre"]},
                            ["t_bond", "t_task", "c_bond", "c_task"])
    columns = design.columns() + ["ext_pre", "int_pre", "ext_fu", "int_fu", "school"]
    return syntax, df[columns]


def simulate_cfa(rows: int, factors: int = 5, per: int = 6, n_patterns: int = 20,
                 seed: int = 1) -> tuple[str, pd.DataFrame]:
    """``factors`` x ``per`` indicators, factor correlations 0.3, loadings 0.5-0.9;
    ``n_patterns`` missing-data patterns: complete rows (60%) and patterns with 1-6 variables
    missing."""
    rng = np.random.default_rng(seed)
    p = factors * per
    phi = np.full((factors, factors), 0.3) + 0.7 * np.eye(factors)
    lam = np.zeros((p, factors))
    for f in range(factors):
        lam[f * per:(f + 1) * per, f] = rng.uniform(0.5, 0.9, per)
    theta = 1 - (lam ** 2).sum(axis=1) * 0.9
    eta = rng.multivariate_normal(np.zeros(factors), phi, size=rows)
    X = eta @ lam.T + rng.normal(size=(rows, p)) * np.sqrt(theta) + rng.uniform(0, 3, p)
    patterns = [np.zeros(p, bool)]
    while len(patterns) < n_patterns:
        pat = np.zeros(p, bool)
        pat[rng.choice(p, size=rng.integers(1, 7), replace=False)] = True
        if not any((pat == q).all() for q in patterns):
            patterns.append(pat)
    probs = np.r_[0.6, np.full(n_patterns - 1, 0.4 / (n_patterns - 1))]
    X[np.array(patterns)[rng.choice(n_patterns, size=rows, p=probs)]] = np.nan
    names = [f"y{i + 1}" for i in range(p)]
    model = "\n".join(f"f{f + 1} =~ " + " + ".join(names[f * per:(f + 1) * per])
                      for f in range(factors))
    return model, pd.DataFrame(X, columns=names)


ORD_DATA = ROOT / "tests" / "reference" / "data" / "ord_bench.csv"
TL_DATA = ROOT / "tests" / "reference" / "data" / "demo_twolevel.csv"
BOOT_R = 200  # refits per bootstrap run


def more_cases(hs: pd.DataFrame, tmp: Path, args) -> list:
    """The invariance table, ordinal, two-level and bootstrap cases (module docstring); writes
    the files lavaan reads into ``tmp``."""
    import invariance
    from bench_ordinal import ITEMS, MODEL as ORD_MODEL
    from bench_twolevel import MODEL as TL_MODEL
    from sem_models.model.syntax import _clear_parse_caches
    from sem_models.resampling import bootstrap

    ord_data = pd.read_csv(ORD_DATA)
    (tmp / "ord.lav").write_text(ORD_MODEL + "\n")
    tl_data = pd.read_csv(TL_DATA).sample(frac=1.0, random_state=1).reset_index(drop=True)
    tl_data.to_csv(tmp / "twolevel.csv", index=False)
    (tmp / "tl.lav").write_text(TL_MODEL + "\n")
    hs_fit = sm.cfa(HS_MODEL, hs)

    def table():
        _clear_parse_caches()  # nothing reused from the previous run
        return invariance.sequence(HS_MODEL, hs, group="school", identification="lavaan").table

    seeds = iter(range(10 ** 6))

    def refits():
        bootstrap(hs_fit, BOOT_R, seed=next(seeds), executor="serial", progress=False)

    def sequence_fit():  # the strict level, for the floor (its q and data)
        return sm.cfa(HS_MODEL, hs, group="school",
                      group_equal=["loadings", "intercepts", "residuals"])

    return [
        Case("HS39 invariance", "hs_seq", sequence_fit, 2, args.rounds, pairs=("table",),
             runs={"table": table},
             floor=lambda fit: {"table": 4 * generic_floor(fit, ("t",))["t"]}),
        Case("ordinal", "ord", lambda: sm.cfa(ORD_MODEL, ord_data, ordered=ITEMS), 2,
             args.rounds_alliance, floor=lambda fit: generic_floor(fit, ("fit+est", "fit+fm"))),
        Case("two-level", "tl", quiet(lambda: sm.sem(TL_MODEL, tl_data, cluster="cluster")), 2,
             args.rounds_alliance, floor=lambda fit: generic_floor(fit, ("fit+est", "fit+fm"))),
        Case("bootstrap", "boot", lambda: hs_fit, 1, args.rounds_alliance,
             pairs=("per refit",), runs={"per refit": refits}, per=BOOT_R,
             floor=lambda fit: generic_floor(fit, ("per refit",), refits=1)),
    ]


# ---------------------------------------------------------------------------- flop model
def flop_model(fit) -> dict:
    """Flops of the dense algebra a task cannot avoid (module docstring)."""
    q = fit.problem.pmap.n_z
    it = max(int(fit.result.iterations), 1)
    E = I = h1 = 0.0
    dim = 0
    for loss in fit.problem.losses:
        if hasattr(loss, "patterns"):
            pk = loss.patterns.n_observed.astype(float)
            dim = loss.coords.dim
        else:
            pk = np.array([float(loss.p)])
            dim = loss.p * (loss.p + 1) // 2 + (loss.p if loss.meanstructure else 0)
        E += float(np.sum(4.0 / 3.0 * pk ** 3))
        I += float(np.sum(2.0 * q * q * pk))
        h1 += float(np.sum(2.0 * dim * pk ** 2)) + dim ** 3
    fiml = fit.options.get("missing") == "fiml"
    fit_est = it * (E + I) + I + q ** 3 / 3.0
    return {"eval": E, "fit+est": fit_est, "fit+fm": fit_est + (h1 if fiml else 0.0)}


def generic_floor(fit, pairs, refits: int = 0) -> dict:
    """Flops of what any estimator of these data must do (module docstring): one pass over
    the data for its sample statistics, ``N p^2``, and one solve with the information,
    ``q^3 / 3`` (``refits``: per refit, the resample's covariance only)."""
    n, p = fit.data.ntotal, len(fit.data.ov_names)
    q = fit.problem.pmap.n_z
    flops = float(n) * p * p + (0.0 if refits else q ** 3 / 3.0)
    return {pair: flops for pair in pairs}


# ----------------------------------------------------------------------------- R tasks
R_SETUP = r"""
suppressMessages(library(lavaan))
HS <- HolzingerSwineford1939
m_hs <- 'visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9'
mcar <- read.csv("%(mcar)s")
al <- read.csv("%(al_data)s")
m_al <- paste(readLines("%(al_model)s"), collapse = "\n")
ord <- read.csv("%(ord_data)s")
m_ord <- paste(readLines("%(ord_model)s"), collapse = "\n")
tl <- read.csv("%(tl_data)s")
m_tl <- paste(readLines("%(tl_model)s"), collapse = "\n")
big <- if (file.exists("%(big_data)s")) read.csv("%(big_data)s") else NULL
m_big <- if (file.exists("%(big_model)s")) paste(readLines("%(big_model)s"), collapse = "\n")
pair <- function(fit_call) function() {
  f <- fit_call(); t1 <- lap_clock(); fitMeasures(f); t1 }
list(
  "hs_cfa" = pair(function() cfa(m_hs, HS)),
  "hs_fiml" = pair(function() cfa(m_hs, mcar, missing = "ml")),
  "al_ml" = pair(function() sem(m_al, al, missing = "ml", fixed.x = FALSE)),
  "al_mlr" = pair(function() sem(m_al, al, missing = "ml", fixed.x = FALSE,
                                 estimator = "MLR", cluster = "school")),
  "big" = function() cfa(m_big, big, missing = "ml"),
  "hs_seq" = function() {
    f <- lapply(list("", "loadings", c("loadings", "intercepts"),
                     c("loadings", "intercepts", "residuals")),
                function(ge) cfa(m_hs, HS, group = "school", group.equal = ge))
    lavTestLRT(f[[1]], f[[2]], f[[3]], f[[4]]); lapply(f, fitMeasures) },
  "ord" = pair(function() cfa(m_ord, ord, ordered = paste0("y", 1:16))),
  "tl" = pair(function() sem(m_tl, tl, cluster = "cluster")),
  "boot" = local({ f <- cfa(m_hs, HS); function() bootstrapLavaan(f, R = %(boot_r)d) })
)
"""


class Case:
    """One benchmark case: our runs and lavaan's task name."""

    def __init__(self, name, r_task, fit, block, rounds, pairs=("fit+est", "fit+fm"),
                 lavaan=True, runs=None, per=1, floor=None):
        self.name, self.r_task, self.fit, self.block, self.rounds = name, r_task, fit, block, rounds
        self.pairs = pairs
        self.lavaan = lavaan
        self.runs = runs or {}  # pair -> our run, when it is not fit + estimates (+ measures)
        self.per = per  # the printed times are per ``per`` units of a run (refits)
        self.floor = floor  # fit -> {pair: flops}; default flop_model

    def ours(self, pair):
        if pair in self.runs:
            return self.runs[pair]

        def run():
            f = self.fit()
            f.estimates()
            if pair == "fit+fm":
                f.measures()
        return run


def quiet(func):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return func()
    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds for the HS39 cases")
    parser.add_argument("--rounds-alliance", type=int, default=5)
    parser.add_argument("--rounds-large", type=int, default=1,
                        help="rounds for FIML p=120 (one lavaan run takes one to two minutes)")
    parser.add_argument("--skip-large", action="store_true", help="skip p=120 and N=1e6")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    rate = gemm_gflops()
    tmp = Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    from sem_models.datasets import load
    hs = load("HolzingerSwineford1939")
    mcar = pd.read_csv(MCAR)
    al_model, al_data = alliance_case()
    (tmp / "alliance.lav").write_text(al_model + "\n")
    al_data.to_csv(tmp / "alliance.csv", index=False)
    big_model, big_data = simulate_cfa(10_000, factors=5, per=24)
    if not args.skip_large:
        (tmp / "big.lav").write_text(big_model + "\n")
        big_data.to_csv(tmp / "big.csv", index=False)

    cases = [
        Case("HS39 CFA", "hs_cfa", lambda: sm.cfa(HS_MODEL, hs), 10, args.rounds),
        Case("HS39 FIML", "hs_fiml", lambda: sm.cfa(HS_MODEL, mcar, missing="ml"), 3, args.rounds),
        Case("alliance ML", "al_ml", quiet(lambda: sm.sem(al_model, al_data, missing="ml",
                                                  fixed_x=False)), 1, args.rounds_alliance),
        Case("alliance MLR+cl", "al_mlr", quiet(lambda: sm.sem(al_model, al_data, missing="ml",
                                                      fixed_x=False, estimator="MLR",
                                                      cluster="school")),
             1, args.rounds_alliance),
    ]
    if not args.skip_large:
        cases.append(Case("FIML p=120", "big", lambda: sm.cfa(big_model, big_data, missing="ml"), 1,
                          args.rounds_large, pairs=("fit+est",)))
    cases += more_cases(hs, tmp, args)
    if args.only:
        cases = [c for c in cases if c.name in args.only]

    session = None
    if shutil.which("Rscript"):
        session = RLapSession(R_SETUP % {
            "mcar": MCAR.as_posix(), "al_data": (tmp / "alliance.csv").as_posix(),
            "al_model": (tmp / "alliance.lav").as_posix(),
            "big_data": (tmp / "big.csv").as_posix(), "big_model": (tmp / "big.lav").as_posix(),
            "ord_data": ORD_DATA.as_posix(), "ord_model": (tmp / "ord.lav").as_posix(),
            "tl_data": (tmp / "twolevel.csv").as_posix(), "tl_model": (tmp / "tl.lav").as_posix(),
            "boot_r": BOOT_R})
    else:
        print("Rscript not found: lavaan skipped")

    rows = []
    try:
        for case in cases:
            ours = {pair: case.ours(pair) for pair in case.pairs}
            for func in ours.values():
                func()  # warm-up: imports, caches
            times = {pair: [] for pair in case.pairs}
            theirs = {pair: [] for pair in case.pairs}
            cpu_ours = {pair: [] for pair in case.pairs}
            cpu_theirs = {pair: [] for pair in case.pairs}
            lav_mb = np.nan
            use_r = session is not None and case.lavaan
            for _ in range(case.rounds):
                for pair, func in ours.items():
                    wall, cpu = block_wall_cpu(func, case.block)
                    times[pair].append(wall)
                    cpu_ours[pair].append(cpu)
                if use_r:
                    laps = session.block_laps(case.r_task, case.block)
                    cpu = session.last_cpu
                    lav_mb = np.nanmax([lav_mb, session.last_peak_mb])
                    if len(case.pairs) == 1:
                        laps, cpu = laps[-1:], cpu[-1:]
                    for pair, t, c in zip(case.pairs, laps, cpu):
                        theirs[pair].append(t)
                        cpu_theirs[pair].append(c)
            fit = case.fit()
            flops = (case.floor or flop_model)(fit)
            for pair, func in ours.items():
                mem = peak_memory(func)[1]
                times[pair] = [t / case.per for t in times[pair]]
                theirs[pair] = [t / case.per for t in theirs[pair]]
                med = statistics.median(times[pair])
                row = {"case": case.name, "pair": pair, "ours_ms": med * 1e3, "ours_mb": mem,
                       "floor_ms": flops[pair] / rate / 1e6, "rounds": case.rounds}
                if theirs[pair]:
                    ratios = [t / o for t, o in zip(theirs[pair], times[pair])]
                    cpu_ratios = [t / o for t, o in zip(cpu_theirs[pair], cpu_ours[pair])]
                    row.update(lavaan_ms=statistics.median(theirs[pair]) * 1e3,
                               ratio=statistics.median(ratios), worst=min(ratios),
                               cpu_ratio=statistics.median(cpu_ratios), lavaan_mb=lav_mb)
                rows.append(row)
            loss = fit.problem.losses[0]
            if hasattr(loss, "patterns"):
                mom = fit.problem.model.moments(fit.values, 0)

                def evaluation():  # one FIML evaluation (the cache of inverses cleared)
                    loss.patterns.__dict__.pop("_last_inverse", None)
                    return loss.value(mom)
                with blas_single_thread():  # as inside a fit
                    per_eval = min(block_mean(evaluation, 20) for _ in range(3))
                rows.append({"case": case.name, "pair": "1 FIML eval", "ours_ms": per_eval * 1e3,
                             "floor_ms": flops["eval"] / rate / 1e6, "rounds": 3})
    finally:
        if session is not None:
            session.close()

    large = None
    if not args.skip_large and (not args.only or "FIML N=1e6" in args.only):
        model, data = simulate_cfa(1_000_000, factors=5, per=6)
        size_mb = data.memory_usage(index=False).sum() / 2 ** 20
        sm.cfa(model, data.iloc[:2000], missing="ml").estimates()  # warm-up: imports
        runs = []
        for _ in range(3):
            holder = {}

            def run():
                f = sm.cfa(model, data, missing="ml")
                f.estimates()
                holder["fit"] = f
            start = time.perf_counter()
            run()
            runs.append(time.perf_counter() - start)
        fit_only = min(block_mean(lambda: sm.cfa(model, data, missing="ml"), 1) for _ in range(3))
        _, mem = peak_memory(lambda: sm.cfa(model, data, missing="ml").estimates())
        flops = flop_model(holder["fit"])
        large = {"fit": fit_only, "fit_est": statistics.median(runs), "mem": mem,
                 "data_mb": size_mb, "floor": flops["fit+est"] / rate / 1e6,
                 "converged": holder["fit"].converged}

    print(f"single-threaded GEMM: {rate:.1f} GFlop/s (the floors' rate); "
          f"run time {time.perf_counter() - started:.0f} s")
    head = (f"{'case':<17}{'pair':<12}{'ours ms':>10}{'lavaan ms':>11}{'x lavaan':>9}"
            f"{'worst':>7}{'cpu x':>7}{'our MB':>8}{'lav MB':>8}{'floor ms':>10}{'x floor':>9}"
            f"{'rounds':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        lav = r.get("lavaan_ms")
        print(f"{r['case']:<17}{r['pair']:<12}{r['ours_ms']:10.2f}"
              + (f"{lav:11.1f}{r['ratio']:9.1f}{r['worst']:7.1f}{r['cpu_ratio']:7.1f}" if lav
                 else f"{'':>34}")
              + (f"{r['ours_mb']:8.1f}" if 'ours_mb' in r else f"{'':>8}")
              + (f"{r['lavaan_mb']:8.1f}" if lav and np.isfinite(r['lavaan_mb']) else f"{'':>8}")
              + f"{r['floor_ms']:10.3f}{r['ours_ms'] / r['floor_ms']:9.0f}{r['rounds']:7d}")
    if large is not None:
        print(f"\nFIML N=1e6, p=30 (ours only): fit {large['fit']:.2f} s, fit + estimates "
              f"{large['fit_est']:.2f} s (median of 3; goal < 1 s), peak memory "
              f"{large['mem']:.0f} MB = {large['mem'] / large['data_mb']:.2f} x the data "
              f"({large['data_mb']:.0f} MB; goal < 2 x); floor {large['floor']:.1f} ms "
              f"of arithmetic plus one pass over the data; converged: {large['converged']}")


if __name__ == "__main__":
    main()
