"""Command line interface ``sem-models`` (installed with the package).

::

    sem-models fit MODEL DATA [--group G] [--estimator E] [--missing M] [--cluster C]
                              [--ordered [COLUMNS]] [--parameterization delta|theta]
                              [--output FILE.csv|FILE.json]
    sem-models invariance MODEL DATA --group G [--levels ...] [--rules R] [--partial [LEVELS]]
                              [--output FILE.csv|FILE.json]
    sem-models rsa DATA --outcome Z --x X --y Y [--group G] [--controls C ...]
    sem-models study [--data CSV] [--out DIR] [--group-column COL] [--formats IND,GRP]
                     [--cluster COL|none]

MODEL is a file with lavaan syntax or the syntax itself (statements separated by newlines or
``;``); an argument without any lavaan operator is taken as a file name ("no such file" if it
does not exist).  DATA is a CSV file or the name of a bundled data set (``alliance``,
``HolzingerSwineford1939``, ``PoliticalDemocracy``).

Errors print one line ``error: ...`` on stderr and exit with status 2 (``--debug`` shows the
traceback instead); Ctrl-C prints ``interrupted`` and exits with 130 (the study keeps what it
finished).  Warnings print as ``warning: ...`` lines.  The work is done by the library; this
module only parses arguments, prints and writes the ``--output`` files.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["main", "build_parser", "CLIError"]

BUNDLED = ("alliance", "HolzingerSwineford1939", "PoliticalDemocracy")
#: Exit status for errors (as argparse uses for usage errors) and for Ctrl-C (128 + SIGINT).
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
_OPERATORS = re.compile(r"=~|~|:=|==|<|>|\*")


class CLIError(ValueError):
    """A command-line argument that cannot be used (the message says why)."""


def _looks_like_path(text: str) -> bool:
    """Not lavaan syntax: one line without any lavaan operator (``=~ ~ ~~ := == < > *``)."""
    t = text.strip()
    if not t or "\n" in t or ";" in t:
        return False
    if t.startswith("~/") or t.startswith("~\\"):
        t = t[2:]
    return _OPERATORS.search(t) is None


def _read_model(text: str) -> str:
    p = Path(text).expanduser()
    try:
        if p.is_file():
            return p.read_text(encoding="utf-8")
        if p.is_dir():
            raise CLIError(f"the model argument {text!r} is a folder, not a model file")
    except OSError:  # e.g. a long syntax string is not a valid path
        pass
    if _looks_like_path(text):
        raise CLIError(f"no such file: {text!r} (the model argument is a file with lavaan "
                       "syntax or the syntax itself)")
    return text


def _read_data(text: str):
    import pandas as pd

    p = Path(text).expanduser()
    if text in BUNDLED and not p.exists():
        from .datasets import load
        return load(text)
    if not p.is_file():
        raise CLIError(f"no such data file: {text!r} (or use a bundled data set: "
                       f"{', '.join(BUNDLED)})")
    try:
        return pd.read_csv(p)
    except UnicodeDecodeError as exc:
        raise CLIError(f"cannot read {text!r} as a CSV file: {exc.reason}") from None
    except pd.errors.EmptyDataError:
        raise CLIError(f"the data file {text!r} is empty") from None


def _output_path(text: Optional[str]) -> Optional[Path]:
    """``--output``: checked before any fitting (suffix, folder)."""
    if text is None:
        return None
    p = Path(text).expanduser()
    if p.suffix.lower() not in (".csv", ".json"):
        raise CLIError(f"--output {text!r}: the file name must end in .csv or .json")
    if p.is_dir():
        raise CLIError(f"--output {text!r} is a folder; give a file name")
    if not p.parent.is_dir():
        raise CLIError(f"--output {text!r}: the folder {str(p.parent)!r} does not exist")
    return p


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf -> None, numpy -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(df) -> list:
    return [_clean(r) for r in df.to_dict(orient="records")]


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False), encoding="utf-8")


def _engine_options(ns) -> dict:
    cluster = ns.cluster
    if cluster is not None and cluster.lower() == "none":
        cluster = None
    return dict(estimator=ns.estimator, missing=ns.missing, cluster=cluster)


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
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("fit", help="fit a model and print its summary")
    p.add_argument("model", help="lavaan syntax file, or the syntax itself")
    p.add_argument("data", help="CSV file or bundled data set name")
    p.add_argument("--group", default=None, help="grouping column (multi-group model)")
    p.add_argument("--group-equal", default="", help="e.g. loadings,intercepts")
    p.add_argument("--std-lv", action="store_true", help="identify factors by variance 1")
    p.add_argument("--standardized", action="store_true", help="add standardized estimates")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the estimates and fit measures to FILE (.csv: one table with a "
                        "'section' column, estimate or fit; .json)")
    p.add_argument("--ordered", nargs="?", const="all", default=None, metavar="COLUMNS",
                   help="ordinal indicators (comma-separated; no value: every observed "
                        "endogenous variable), fitted by WLSMV unless --estimator says "
                        "otherwise (WLSM, WLS, ULSMV, ULS)")
    p.add_argument("--parameterization", default="delta",
                   help="delta (default) or theta, with --ordered")
    _add_engine(p)
    p.set_defaults(estimator=None)  # ML, or WLSMV with --ordered

    p = sub.add_parser("invariance", help="measurement invariance sequence across groups")
    p.add_argument("model", help="configural CFA: lavaan syntax file or string")
    p.add_argument("data", help="CSV file or bundled data set name")
    p.add_argument("--group", required=True, help="grouping column")
    p.add_argument("--levels", default="configural,metric,scalar,strict",
                   help="comma-separated levels (default configural,metric,scalar,strict)")
    p.add_argument("--rules", default="chen2007",
                   help="chen2007, cheung_rensvold2002 or chisq_difference")
    p.add_argument("--partial", nargs="?", const="all", default=None, metavar="LEVELS",
                   help="when a level fails, search for partial invariance there (at LEVELS, "
                        "comma-separated; default every level) and fit the next level on top "
                        "of the partial model that passes")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="write the invariance table to FILE (.csv or .json)")
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
                   "./sem_models_study); must be new, empty, or hold an earlier report of this "
                   "command (whose files are replaced)")
    p.add_argument("--group-column", default="format",
                   help="column with the treatment format (default format)")
    p.add_argument("--formats", default="individual,group", metavar="IND,GRP",
                   help="labels of the individual and the group format in that column "
                        "(default individual,group)")
    p.add_argument("--bootstrap", type=int, default=300, help="RSA bootstrap replicates "
                   "(whole schools resampled within format)")
    p.add_argument("--lcm-bootstrap", type=int, default=0, metavar="N",
                   help="school bootstrap replicates of the latent congruence model's "
                        "discrepancy paths (default 0: none; about half a second each)")
    p.add_argument("--power", action="store_true",
                   help="add the power of the format x discrepancy effect by number of "
                        "schools (Monte Carlo; off by default)")
    p.add_argument("--power-reps", type=int, default=200, metavar="N",
                   help="replications per number of schools for --power (default 200)")
    p.add_argument("--seed", type=int, default=20240126)
    p.add_argument("--no-item-level", dest="item_level", action="store_false",
                   help="skip the pooled item-level outcome model (48 items; saves a few s)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="1: every step in this process; 2: the invariance steps in a second "
                        "process while the others run (same results; default: 2 on Linux "
                        "with two or more cores)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--estimator", default="MLR")
    p.add_argument("--missing", default="fiml")
    p.add_argument("--cluster", default="school",
                   help="cluster column for robust SEs in the outcome models (default school; "
                        "none: no clustering)")
    return parser


def _fit_tables(fit):
    """Estimates (with std_lv / std_all when they can be computed) and fit measures."""
    import pandas as pd

    est = fit.estimates().copy()
    try:
        std = fit.standardized(se=False)
        keys = [c for c in ("lhs", "op", "rhs", "group") if c in est.columns and c in std.columns]
        cols = [c for c in ("std_lv", "std_all") if c in std.columns]
        if keys and cols:
            est = est.merge(std[keys + cols].drop_duplicates(keys), on=keys, how="left")
    except (ValueError, ArithmeticError, KeyError, NotImplementedError) as exc:
        warnings.warn(f"standardized estimates not written: {exc}", RuntimeWarning)
    measures = fit.measures()
    return est, pd.Series(measures, dtype=float)


def _write_fit_output(path: Path, fit, model: str, ns) -> None:
    import pandas as pd

    est, measures = _fit_tables(fit)
    if path.suffix.lower() == ".csv":
        e = est.copy()
        e.insert(0, "section", "estimate")
        f = pd.DataFrame({"section": "fit", "lhs": measures.index, "est": measures.to_numpy()})
        pd.concat([e, f], ignore_index=True).to_csv(path, index=False)
        return
    _write_json(path, {"model": model, "data": ns.data,
                       "options": {"group": ns.group, "group_equal": ns.group_equal,
                                   **_engine_options(ns)},
                       "converged": bool(fit.converged), "ntotal": int(fit.ntotal),
                       "estimates": _records(est),
                       "fit_measures": {k: v for k, v in measures.items()}})


def _cmd_fit(ns) -> int:
    from .api import sem

    out = _output_path(ns.output)
    model, data = _read_model(ns.model), _read_data(ns.data)
    ge = [s.strip() for s in ns.group_equal.split(",") if s.strip()]
    options = _engine_options(ns)
    options["estimator"] = options["estimator"] or "default"  # ML; WLSMV with --ordered
    if ns.ordered is not None:
        options["ordered"] = True if ns.ordered == "all" else \
            [s.strip() for s in ns.ordered.split(",") if s.strip()]
        options["parameterization"] = ns.parameterization
    elif ns.parameterization != "delta":
        raise CLIError("--parameterization applies to ordinal indicators: give --ordered")
    fit = sem(model, data, group=ns.group, group_equal=ge, std_lv=ns.std_lv, **options)
    print(fit.summary(standardized=ns.standardized))
    if out is not None:
        _write_fit_output(out, fit, model, ns)
        print(f"\nEstimates and fit measures written to {out}")
    return 0 if fit.converged else 1


def _cmd_invariance(ns) -> int:
    import invariance

    out = _output_path(ns.output)
    model, data = _read_model(ns.model), _read_data(ns.data)
    levels = [s.strip() for s in ns.levels.split(",") if s.strip()]
    partial: Any = False
    if ns.partial is not None:
        partial = True if ns.partial == "all" else \
            [s.strip() for s in ns.partial.split(",") if s.strip()]
    seq = invariance.sequence(model, data, group=ns.group, levels=levels, rules=ns.rules,
                              partial=partial, **_engine_options(ns))
    print(seq.summary())
    if out is not None:
        table = seq.table.reset_index()
        if out.suffix.lower() == ".csv":
            table.to_csv(out, index=False)
        else:
            _write_json(out, {"model": model, "data": ns.data, "group": ns.group,
                              "group_labels": [str(g) for g in seq.group_labels],
                              "rules": seq.rules.name, "rule_description": seq.rules.describe(),
                              "levels": list(seq.levels), "table": _records(table),
                              "partial_steps": {lv: _records(st)
                                                for lv, st in seq.partial_steps.items()}})
        print(f"\nInvariance table written to {out}")
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
            raise CLIError(f"--center must be pooled, midpoint, none or a number, not "
                           f"{ns.center!r}") from None
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

    formats = [s.strip() for s in ns.formats.split(",")]
    if len(formats) != 2 or not all(formats):
        raise CLIError(f"--formats needs two labels, individual first: e.g. "
                       f"--formats individual,group (got {ns.formats!r})")
    cluster = None if ns.cluster is None or ns.cluster.lower() == "none" else ns.cluster
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collected in the report instead
        res = run_study(data=ns.data, out_dir=ns.out, progress=progress,
                        estimator=ns.estimator, missing=ns.missing, cluster=cluster,
                        group_column=ns.group_column, formats=formats,
                        bootstrap=ns.bootstrap, seed=ns.seed,
                        item_level_outcomes=ns.item_level, lcm_bootstrap=ns.lcm_bootstrap,
                        power=ns.power, power_reps=ns.power_reps, jobs=ns.jobs)
    print(f"\nFindings ({time.perf_counter() - t0:.1f} s):")
    for f in res.findings:
        print(f"  [{f['verdict']}] {f['id']}. {f['finding']}\n        {f['evidence']}")
    if res.notes:
        print(f"\n{len(res.notes)} warning(s), listed in the report.")
    for step, message in res.failed.items():
        print(f"step {step} failed: {message}", file=sys.stderr)
    print(f"\nReport: {res.report}")
    return 1 if res.failed else 0


def _message(exc: BaseException) -> str:
    """One line: the message of ValueError / OSError-like errors, else ``Type: message``."""
    if isinstance(exc, KeyError) and exc.args:
        text = f"KeyError: {exc.args[0]!r} not found"
    elif isinstance(exc, (ValueError,)) and str(exc):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or exc}: {exc.filename!r}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sem-models`` console script; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    handler = {"fit": _cmd_fit, "invariance": _cmd_invariance, "rsa": _cmd_rsa,
               "study": _cmd_study}[ns.command]
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return handler(ns)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if ns.command == "study":
            print(f"the finished steps are kept in {ns.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error of the package: one line
        if ns.debug:
            raise
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
