"""Command line interface ``sem-models`` (installed with the package).

::

    sem-models fit MODEL DATA [--group G] [--estimator E] [--missing M] [--cluster C]
    sem-models invariance MODEL DATA --group G [--levels ...] [--rules R] [--partial LEVEL]
    sem-models rsa DATA --outcome Z --x X --y Y [--group G] [--controls C ...]
    sem-models study [--data CSV] [--out DIR]

MODEL is a file with lavaan syntax or the syntax itself (statements separated by newlines or
``;``); DATA is a CSV file or the name of a bundled data set (``alliance``,
``HolzingerSwineford1939``, ``PoliticalDemocracy``). The work is done by the library; this
module only parses arguments and prints.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]

BUNDLED = ("alliance", "HolzingerSwineford1939", "PoliticalDemocracy")


def _read_model(text: str) -> str:
    p = Path(text)
    try:
        if p.is_file():
            return p.read_text()
    except OSError:  # e.g. a long syntax string is not a valid path
        pass
    return text


def _read_data(text: str):
    import pandas as pd

    if text in BUNDLED and not Path(text).exists():
        from .datasets import load
        return load(text)
    p = Path(text)
    if not p.is_file():
        raise SystemExit(f"sem-models: data file {text!r} not found (or use a bundled data set: "
                         f"{', '.join(BUNDLED)})")
    return pd.read_csv(p)


def _engine_options(ns) -> dict:
    return dict(estimator=ns.estimator, missing=ns.missing, cluster=ns.cluster)


def _add_engine(p: argparse.ArgumentParser, estimator: str = "ML",
                missing: str = "listwise") -> None:
    p.add_argument("--estimator", default=estimator, help=f"ML, MLR or MLM (default {estimator})")
    p.add_argument("--missing", default=missing,
                   help=f"listwise or fiml (default {missing})")
    p.add_argument("--cluster", default=None, help="cluster column for robust standard errors")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sem-models",
        description="Structural equation models with lavaan's numbers, and the alliance study.")
    parser.add_argument("--version", action="version", version=f"sem-models {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fit", help="fit a model and print its summary")
    p.add_argument("model", help="lavaan syntax file, or the syntax itself")
    p.add_argument("data", help="CSV file or bundled data set name")
    p.add_argument("--group", default=None, help="grouping column (multi-group model)")
    p.add_argument("--group-equal", default="", help="e.g. loadings,intercepts")
    p.add_argument("--std-lv", action="store_true", help="identify factors by variance 1")
    p.add_argument("--standardized", action="store_true", help="add standardized estimates")
    _add_engine(p)

    p = sub.add_parser("invariance", help="measurement invariance sequence across groups")
    p.add_argument("model", help="configural CFA: lavaan syntax file or string")
    p.add_argument("data", help="CSV file or bundled data set name")
    p.add_argument("--group", required=True, help="grouping column")
    p.add_argument("--levels", default="configural,metric,scalar,strict",
                   help="comma-separated levels (default configural,metric,scalar,strict)")
    p.add_argument("--rules", default="chen2007",
                   help="chen2007, cheung_rensvold2002 or chisq_difference")
    p.add_argument("--partial", default=None, metavar="LEVEL",
                   help="search for partial invariance at this level")
    _add_engine(p)

    p = sub.add_parser("rsa", help="polynomial regression with response surface analysis")
    p.add_argument("data", help="CSV file or bundled data set name")
    p.add_argument("--outcome", required=True)
    p.add_argument("--x", required=True, help="first predictor (X)")
    p.add_argument("--y", required=True, help="second predictor (Y), same scale as X")
    p.add_argument("--controls", nargs="*", default=[], help="control variables")
    p.add_argument("--group", default=None, help="grouping column")
    p.add_argument("--center", default="pooled",
                   help="pooled (default), midpoint, none, or a number")
    p.add_argument("--midpoint", type=float, default=None, help="scale midpoint for --center "
                   "midpoint (default: middle of the observed range)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=None)
    _add_engine(p, "MLR", "fiml")

    p = sub.add_parser("study", help="run the alliance study (STUDY.md) and write an HTML report")
    p.add_argument("--data", default=None, help="CSV with the alliance columns (default: the "
                   "bundled simulated data)")
    p.add_argument("--out", default="sem_models_study", help="output folder (default "
                   "./sem_models_study)")
    p.add_argument("--bootstrap", type=int, default=300, help="RSA bootstrap replicates")
    p.add_argument("--seed", type=int, default=20240126)
    p.add_argument("--no-item-level", dest="item_level", action="store_false",
                   help="skip the pooled item-level outcome model (48 items; saves ~7 s)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--estimator", default="MLR")
    p.add_argument("--missing", default="fiml")
    p.add_argument("--cluster", default="school")
    return parser


def _cmd_fit(ns) -> int:
    from .api import sem

    model, data = _read_model(ns.model), _read_data(ns.data)
    ge = [s.strip() for s in ns.group_equal.split(",") if s.strip()]
    fit = sem(model, data, group=ns.group, group_equal=ge, std_lv=ns.std_lv,
              **_engine_options(ns))
    print(fit.summary(standardized=ns.standardized))
    return 0 if fit.converged else 1


def _cmd_invariance(ns) -> int:
    import invariance

    model, data = _read_model(ns.model), _read_data(ns.data)
    levels = [s.strip() for s in ns.levels.split(",") if s.strip()]
    seq = invariance.sequence(model, data, group=ns.group, levels=levels, rules=ns.rules,
                              **_engine_options(ns))
    print(seq.summary())
    if ns.partial:
        steps = seq.partial(ns.partial)
        cols = [c for c in ("step", "freed", "score_X2", "score_pvalue", "chisq", "df", "cfi",
                            "rmsea", "decision") if c in steps.columns]
        print(f"\nPartial invariance at {ns.partial}:")
        print(steps[cols].to_string(index=False))
    return 0


def _cmd_rsa(ns) -> int:
    from .discrepancy.rsa import response_surface

    data = _read_data(ns.data)
    center = ns.center
    if center.lower() == "none":
        center = None
    elif center.lower() not in ("pooled", "midpoint"):
        try:
            center = float(center)
        except ValueError:
            raise SystemExit(f"sem-models rsa: --center must be pooled, midpoint, none or a "
                             f"number, not {ns.center!r}") from None
    res = response_surface(data, ns.outcome, ns.x, ns.y, controls=ns.controls, group=ns.group,
                           center=center, midpoint=ns.midpoint, bootstrap=ns.bootstrap,
                           seed=ns.seed, **_engine_options(ns))
    print(res.summary())
    return 0


def _cmd_study(ns) -> int:
    from .study.pipeline import run_study

    def progress(line: str) -> None:
        if not ns.quiet:
            print(line, flush=True)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collected in the report instead
        res = run_study(data=ns.data, out_dir=ns.out, progress=progress,
                        estimator=ns.estimator, missing=ns.missing, cluster=ns.cluster,
                        bootstrap=ns.bootstrap, seed=ns.seed,
                        item_level_outcomes=ns.item_level)
    print(f"\nFindings ({time.perf_counter() - t0:.1f} s):")
    for f in res.findings:
        print(f"  [{'x' if f['shown'] else ' '}] {f['id']}. {f['finding']}\n        "
              f"{f['evidence']}")
    if res.notes:
        print(f"\n{len(res.notes)} warning(s), listed in the report.")
    print(f"\nReport: {res.report}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sem-models`` console script; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    handler = {"fit": _cmd_fit, "invariance": _cmd_invariance, "rsa": _cmd_rsa,
               "study": _cmd_study}[ns.command]
    try:
        return handler(ns)
    except (ValueError, KeyError) as exc:
        print(f"sem-models {ns.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
