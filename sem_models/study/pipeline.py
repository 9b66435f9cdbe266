"""The analysis sequence of the alliance study (STUDY.md) in one call: :func:`run_study`.

Steps (STUDY.md, "The analysis sequence"):

1. reverse-score the items; reliability (alpha, omega, AVE) per informant x occasion x
   subscale from the measurement model of each informant x occasion (correlated bond and task
   factors; a wording factor for the child items as an alternative);
2. longitudinal invariance (mid vs end) per informant;
3. invariance across format of the trait models (configural, metric, scalar, strict): a level
   that fails starts a partial-invariance search and the next level is fitted on top of the
   partial model that passed (or is not tested); the latent trait means by format as effect
   sizes;
4. outcome models: follow-up externalizing / internalizing on the four trait factors plus the
   baseline, FIML, MLR, cluster-robust, pooled and by format with Wald and likelihood-ratio
   tests of equal paths;
5. discrepancy moderated by format: response surface analysis of therapist and child
   trait-level bond scores (centred at the pooled mean, bootstrap intervals resampling whole
   schools within format) and the latent congruence model for bond (optionally with school
   bootstrap intervals of its discrepancy paths, ``lcm_bootstrap``; and, ``power=True``, the
   power of the format x discrepancy effect by number of schools:
   :mod:`.resampling_step`);
6. sensitivity: a two-level model of the group format, children within therapy groups
   (ICCs, within and between structure; :mod:`.twolevel_step`).

The trait factors of the outcome models are measured by the four state scale means of each
informant x dimension (two per trait, loadings 1, same-occasion residuals correlated): a
latent state-trait parcel model that fits in well under a second with FIML; the pooled
item-level version (48 items, wording factors for the child items) is fitted as a check
(``item_level_outcomes=True``, the default).

A run never loses work: the output folder is checked before any analysis
(:func:`prepare_out_dir`), the data too (:func:`check_study_data`); every step's tables are
written to ``tables/`` as soon as the step ends, with ``findings.json`` updated; a step that
raises is recorded (``StudyResults.failed``: "step X failed: message") and the other steps
still run; on ``KeyboardInterrupt`` the report of what was finished is written before the
interrupt propagates.

Sign conventions: format differences are individual minus group (the format labels are
``formats``); rater differences are therapist minus child.

Library code: nothing is printed; progress goes to the ``progress`` callback and warnings are
collected in ``StudyResults.notes`` (and logged).

Two cores: with ``jobs=2`` (the default on Linux with two free cores) the longitudinal and
format invariance steps, about half of the computing, run in a forked worker process
(:mod:`.parallel`) while the other steps and the figures that do not need them run here; the
results (tables, findings, notes, files, fitted objects) are those of ``jobs=1``.
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from .findings import study_findings

__all__ = ["StudyResults", "StudyError", "run_study", "alliance_design", "prepare_out_dir",
           "check_study_data", "TRAITS", "GENERATOR"]

log = logging.getLogger(__name__)

TRAITS = ["c_bond", "c_task", "t_bond", "t_task"]
OUTCOMES = {"ext_fu": ["ext_pre"], "int_fu": ["int_pre"]}
INFORMANT_NAMES = {"c": "child", "t": "therapist"}
#: ``findings.json`` of a report written by :func:`run_study` carries this ``generator``.
GENERATOR = "sem-models study"
#: Files of reports written before the ``files`` manifest existed (cleaned on a rerun).
_LEGACY_FILES = ("index.html", "findings.json", "path_diagram.png", "response_surface.png",
                 "response_contour.png", "invariance_changes.png", "trait_means.png")


class StudyError(ValueError):
    """The study cannot run as asked: a bad output folder or data (the message says why)."""


def alliance_design():
    """The :class:`measurement.Design` of the bundled alliance data (items 2, 4, 6 reversed)."""
    from measurement import Design
    return Design(informants=["c", "t"], occasions=["mid", "end"], dimensions=["bond", "task"],
                  items=6, pattern="{informant}_{occasion}_{dimension}{item}", reverse=[2, 4, 6])


@dataclass
class StudyResults:
    """Everything :func:`run_study` computed.

    ``tables``: named DataFrames (in report order); ``findings``: one dict per study finding
    (``finding``, ``tests``, ``verdict``, ``evidence``); ``figures``: name -> file name in
    ``out_dir``; ``timings``: seconds per step; ``notes``: warnings raised on the way;
    ``failed``: step -> error message of the steps that failed; ``interrupted``: the step
    running when the run was interrupted; ``fits``: the main fitted objects; ``report``: path
    of ``index.html`` (``None`` if not written); ``files``: the files written (relative to
    ``out_dir``).
    """

    out_dir: Optional[Path]
    options: dict
    tables: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    interrupted: Optional[str] = None
    fits: dict = field(default_factory=dict, repr=False)
    text: dict = field(default_factory=dict)
    report: Optional[Path] = None
    files: list = field(default_factory=list)
    steps: dict = field(default_factory=dict)

    @property
    def runtime(self) -> float:
        return float(self.timings.get("total", sum(self.timings.values())))

    @property
    def complete(self) -> bool:
        return self.interrupted is None and self.report is not None


# ----------------------------------------------------------------------------- out folder
def _our_report(folder: Path) -> Optional[dict]:
    """The findings.json of an earlier :func:`run_study` report in ``folder``, else None."""
    f = folder / "findings.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("generator") == GENERATOR:
        return data
    # reports written before the marker existed: findings + timings + options
    if {"findings", "timings", "options"} <= set(data) and (folder / "index.html").is_file():
        return data
    return None


def _remove_earlier_report(folder: Path, earlier: dict) -> None:
    """Delete the files an earlier report wrote (its manifest, or the known names)."""
    root = folder.resolve()
    names = list(earlier.get("files") or [])
    if not names:
        names = list(_LEGACY_FILES) + [f"tables/{p.name}" for p in (folder / "tables").glob(
            "*.csv")]
    for name in names + ["findings.json"]:
        p = (folder / str(name)).resolve()
        if root not in p.parents or not p.is_file():
            continue  # never outside the folder
        p.unlink()
    for sub in ("tables", "figures"):
        d = folder / sub
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _check_writable(folder: Path) -> None:
    probe = folder / f".sem-models-write-test-{os.getpid()}"
    try:
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise StudyError(f"cannot write into the output folder {str(folder)!r}: "
                         f"{exc.strerror or exc}") from None


def prepare_out_dir(out_dir: Union[str, Path]) -> Path:
    """Check (and create) the report folder before any analysis; returns it.

    * an existing file: :class:`StudyError`;
    * a place that cannot be written (no permission, a file in the path): :class:`StudyError`;
    * an empty or new folder: used;
    * a folder holding an earlier report of this function (``findings.json`` written by
      :func:`run_study`): the earlier report's files are deleted (other files are kept), so the
      new report has no stale files;
    * any other non-empty folder: :class:`StudyError` (nothing is deleted).
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise StudyError(f"the output folder {str(out)!r} is an existing file; give a folder "
                         "name (it is created)")
    if out.is_dir():
        if any(out.iterdir()):
            earlier = _our_report(out)
            if earlier is None:
                raise StudyError(
                    f"the output folder {str(out)!r} is not empty and holds no earlier "
                    "sem-models study report; choose a new or empty folder")
            _check_writable(out)
            try:
                _remove_earlier_report(out, earlier)
            except OSError as exc:
                raise StudyError(f"cannot replace the earlier report in {str(out)!r}: "
                                 f"{exc.strerror or exc}") from None
        else:
            _check_writable(out)
        return out
    # a new folder: the nearest existing parent must be a writable folder
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise StudyError(f"cannot create the output folder {str(out)!r}: {str(parent)!r} is "
                         "a file")
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise StudyError(f"cannot create the output folder {str(out)!r}: "
                         f"{exc.strerror or exc}") from None
    _check_writable(out)
    return out


# ----------------------------------------------------------------------------- data
def _load(data) -> tuple[pd.DataFrame, str]:
    from ..datasets import load
    if data is None:
        return load("alliance"), "the bundled simulated alliance data (data/alliance.csv)"
    if isinstance(data, (str, Path)):
        p = Path(data).expanduser()
        if not p.is_file():
            raise StudyError(f"no such data file: {str(data)!r}")
        try:
            return pd.read_csv(p), str(p)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise StudyError(f"cannot read the data file {str(data)!r} as CSV: {exc}") from None
    if isinstance(data, pd.DataFrame):
        return data.copy(), "a DataFrame"
    raise StudyError(f"data must be None, a CSV path or a DataFrame, not {type(data).__name__}")


def check_study_data(data: pd.DataFrame, group_column: str = "format",
                     cluster: Optional[str] = "school",
                     formats: Sequence = ("individual", "group")) -> dict:
    """Check the study's columns before any analysis; returns ``{"individual": label,
    "group": label}`` (the labels of the two formats in ``group_column``)."""
    design = alliance_design()
    need = list(design.columns()) + ["ext_pre", "int_pre", "ext_fu", "int_fu"]
    absent = [c for c in need if c not in data.columns]
    if absent:
        more = f" (and {len(absent) - 6} more)" if len(absent) > 6 else ""
        raise StudyError(f"the data lack the study column(s) {absent[:6]}{more}; see "
                         "data/README.md for the columns")
    for name, col in (("--group-column", group_column), ("--cluster", cluster)):
        if col is not None and col not in data.columns:
            raise StudyError(f"{name} {col!r} is not a column of the data")
    labels = list(pd.unique(data[group_column].dropna()))
    if len(labels) != 2:
        raise StudyError(f"the format column {group_column!r} must have exactly two values "
                         f"(the individual and the group format), it has {labels[:8]}")
    formats = list(formats)
    if len(formats) != 2:
        raise StudyError(f"formats must name two labels (individual, group), got {formats}")
    text = {str(v): v for v in labels}
    roles = {}
    for role, want in zip(("individual", "group"), formats):
        if want in labels:
            roles[role] = want
        elif str(want) in text:
            roles[role] = text[str(want)]
        else:
            raise StudyError(
                f"the format column {group_column!r} has the values {[str(v) for v in labels]},"
                f" not {[str(f) for f in formats]}: say which is the individual and which the "
                f"group format, e.g. --formats {labels[0]},{labels[1]}")
    if roles["individual"] == roles["group"]:
        raise StudyError("the individual and the group format must be different labels")
    bad = [c for c in need if not pd.api.types.is_numeric_dtype(data[c])]
    if bad:
        raise StudyError(f"column(s) {bad[:6]} are not numeric")
    return roles


# ----------------------------------------------------------------------------- steps
class _Step:
    """Times a step, reports progress, records its warnings and, if it raises, the failure
    (the run goes on); a ``KeyboardInterrupt`` is recorded and propagated."""

    def __init__(self, res: StudyResults, progress: Callable[[str], None], n: int,
                 on_done: Callable[[], None]):
        self.res, self.progress, self.n, self.k, self.on_done = res, progress, n, 0, on_done

    def __call__(self, title: str, k: Optional[int] = None):
        self.k = self.k + 1 if k is None else k
        self.title = title
        self.progress(f"[{self.k}/{self.n}] {title} ...")
        return self

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self._caught = self._cm.__enter__()
        warnings.simplefilter("always")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        dt = time.perf_counter() - self.t0
        self._cm.__exit__(None, None, None)
        self.res.timings[self.title] = dt
        seen = set()
        for w in self._caught:
            msg = f"{w.category.__name__}: {w.message}"
            if "rows were not used" in msg:
                continue
            key = msg[:160]
            if key in seen:
                continue
            seen.add(key)
            self.res.notes.append({"step": self.title, "warning": msg})
            log.info("%s: %s", self.title, msg)
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.res.interrupted = self.title
            return False
        if exc_type is not None and issubclass(exc_type, Exception):
            message = " ".join(f"{exc_type.__name__}: {exc}".split())
            self.res.failed[self.title] = message
            log.warning("step %s failed: %s", self.title, message, exc_info=(exc_type, exc, tb))
            self.progress(f"      step failed: {message[:300]}")
            self.on_done()
            return True
        self.progress(f"      done in {dt:.1f} s")
        self.on_done()
        return False


#: figures drawn from the outcome and response surface steps only (not the invariance steps)
MODEL_FIGURES = ("path_diagram", "response_surfaces")
#: steps run by the worker process with ``jobs=2`` (about half of the run's computing)
BACKGROUND_STEPS = ("longitudinal", "format")


def _fitm(fit) -> dict:
    """Fit measures under lavaan's names: the standard ones and, for robust estimators, the
    scaled chi-square and the robust CFI, TLI and RMSEA next to them."""
    m = fit.measures()

    def get(k):
        return float(m[k]) if k in m.index and np.isfinite(m[k]) else np.nan

    out = {"chisq": get("chisq"), "df": get("df"), "pvalue": get("pvalue")}
    if "chisq_scaled" in m.index and np.isfinite(m["chisq_scaled"]):
        out.update(chisq_scaled=get("chisq_scaled"), pvalue_scaled=get("pvalue_scaled"))
    for k in ("cfi", "tli", "rmsea"):
        out[k] = get(k)
        if f"{k}_robust" in m.index and np.isfinite(m[f"{k}_robust"]):
            out[f"{k}_robust"] = get(f"{k}_robust")
    out["srmr"] = get("srmr")
    return out


def run_study(data: Union[None, str, Path, pd.DataFrame] = None,
              out_dir: Union[None, str, Path] = "sem_models_study",
              progress: Optional[Callable[[str], None]] = None, *,
              estimator: str = "MLR", missing: str = "fiml", cluster: Optional[str] = "school",
              group_column: str = "format", formats: Sequence = ("individual", "group"),
              bootstrap: int = 300, seed: int = 20240126, item_level_outcomes: bool = True,
              report: bool = True, lcm_bootstrap: int = 0, power: bool = False,
              power_schools: Sequence[int] = (5, 10, 15, 20, 30), power_reps: int = 200,
              executor=None, jobs: Optional[int] = None) -> StudyResults:
    """Run the STUDY.md analysis sequence and (with ``report=True``) write the HTML report.

    Parameters
    ----------
    data
        ``None`` (the bundled simulated alliance data), a CSV path or a DataFrame with the
        alliance columns (see ``data/README.md``).
    out_dir
        Folder for ``index.html``, the figures, ``tables/*.csv`` and ``findings.json``
        (checked and created before any analysis, :func:`prepare_out_dir`); ``None`` writes
        nothing.
    progress
        Called with one line of text per step (e.g. ``print``).
    estimator, missing, cluster
        Engine options for the latent-variable models (default MLR, FIML, cluster-robust SEs
        by ``cluster`` in the outcome models; ``None``: no clustering).
    group_column, formats
        The column with the treatment format and its labels for the individual and the group
        format (in that order).
    bootstrap, seed
        Bootstrap replicates of the response surface (0: none); whole clusters (schools) are
        resampled within format when ``cluster`` is given.
    lcm_bootstrap
        School bootstrap replicates of the latent congruence model's discrepancy paths (0:
        none; each is a FIML refit, about half a second; needs ``cluster``).
    power, power_schools, power_reps
        Add the power of the format x discrepancy effect for these numbers of schools per
        format, ``power_reps`` replications each
        (:func:`sem_models.study.resampling_step.school_power`; needs ``cluster``).
    executor
        Where bootstrap and power replications run (as
        :func:`sem_models.resampling.run_replications`; default: local processes when
        worthwhile).
    item_level_outcomes
        Also fit the pooled item-level outcome model (48 items, child wording factors; a few
        seconds) as a check of the parcel model.
    jobs
        ``2``: the longitudinal and format invariance steps run in a worker process (a fork
        of this one; :mod:`.parallel`) while the other steps and the figures that do not
        need them run here; same results as ``1`` (every step in this process).  Default
        (``None``): 2 on Linux with two or more cores available, else 1.

    Raises :class:`StudyError` (before any analysis) for a bad output folder or data.
    """
    progress = progress or (lambda s: None)
    t_start = time.perf_counter()
    out = prepare_out_dir(out_dir) if out_dir is not None else None
    raw, source = _load(data)
    roles = check_study_data(raw, group_column, cluster, formats)
    from .resampling_step import check_options
    from . import parallel
    try:
        check_options(lcm_bootstrap, power, power_schools, power_reps, cluster)
        n_jobs = parallel.resolve_jobs(jobs)
    except (TypeError, ValueError) as exc:
        raise StudyError(str(exc)) from None
    opts = dict(estimator=estimator, missing=missing, cluster=cluster, bootstrap=bootstrap,
                lcm_bootstrap=int(lcm_bootstrap), power=bool(power),
                power_schools=[int(j) for j in power_schools], power_reps=int(power_reps),
                seed=seed, group_column=group_column,
                formats={k: str(v) for k, v in roles.items()}, data=source)
    res = StudyResults(out_dir=out, options=opts)
    n_steps = 8 + (1 if item_level_outcomes else 0) + (2 if report and out else 0)

    def flush():
        if out is not None:
            from . import report as rep
            rep.write_tables(res, out)

    step = _Step(res, progress, n_steps, flush)
    ctx = _Context(res=res, raw=raw, design=alliance_design(), roles=roles,
                   group_column=group_column, cluster=cluster,
                   fit_opts=dict(estimator=estimator, missing=missing), bootstrap=bootstrap,
                   seed=seed, lcm_bootstrap=int(lcm_bootstrap),
                   power_schools=[int(j) for j in power_schools], power_reps=int(power_reps),
                   executor=executor)
    steps = [("reliability", "Scoring, reliability and measurement models per informant x "
              "occasion (items ordinal, WLSMV; and continuous)", _step_reliability),
             ("longitudinal", "Longitudinal invariance (mid vs end) per informant, ordinal "
              "and continuous", _step_longitudinal),
             ("format", "Invariance across format (trait models) with partial invariance, "
              "ordinal and continuous", _step_format_invariance),
             ("outcomes", f"Outcome models (FIML, {estimator}"
              + (f", cluster-robust by {cluster}" if cluster else "")
              + ") pooled and by format", _step_outcomes)]
    if item_level_outcomes:
        steps.append(("items", "Item-level outcome model (48 items)", _step_item_outcomes))
    steps += [("rsa", "Response surface analysis: therapist vs child bond -> int_fu by format",
               _step_rsa),
              ("lcm", "Latent congruence model for bond by format", _step_lcm),
              ("twolevel", "Two-level sensitivity: children within therapy groups "
               "(group format)", _step_twolevel),
              ] + ([("power", "Power of the format x discrepancy effect by number of "
                     "schools", _step_power)] if power else []) + [
              ("findings", "Checking the study's findings", _step_findings)]
    res.steps = {key: title for key, title, _ in steps}
    step.n = len(steps) + (2 if report and out else 0)
    if report and out is not None:
        res.steps.update(figures="Figures", report="HTML report")
    number = {key: k + 1 for k, (key, _, _) in enumerate(steps)}
    bg_keys = set(BACKGROUND_STEPS) if n_jobs > 1 else set()
    owned: dict = {}  # step key -> the tables / fits / texts it added (for the final order)
    figures_pre: Optional[float] = None  # time of the figures drawn while the worker ran
    bg = None

    def merge(block: bool = False, interrupting: bool = True) -> None:
        """Take in the worker's finished steps (``block``: wait for all of them)."""
        for msg in (bg.collect(block) if bg is not None else []):
            parallel.merge_step(res, msg, step, number[msg["key"]], owned)
            if msg["interrupted"] and interrupting:
                res.interrupted = res.interrupted or msg["title"]
                raise KeyboardInterrupt

    try:
        if bg_keys:
            bg = parallel.BackgroundSteps(
                ctx, [s for s in steps if s[0] in bg_keys],
                lambda r: _Step(r, lambda line: None, 0, lambda: None))
        for key, title, fn in steps:
            if key in bg_keys:
                continue
            if key == "findings" and bg is not None and bg.pending:
                if report and out is not None:  # the figures that need no worker results
                    t0 = time.perf_counter()
                    try:
                        from . import report as rep
                        res.figures.update(rep.make_figures(res, out, only=MODEL_FIGURES))
                    except KeyboardInterrupt:
                        res.interrupted = "Figures"
                        raise
                    figures_pre = time.perf_counter() - t0
                try:
                    merge(block=True)
                except KeyboardInterrupt:
                    res.interrupted = res.interrupted or bg.running
                    raise
            before = {p: dict(getattr(res, p)) for p in parallel.PARTS}
            try:
                with step(title, number[key]):
                    fn(ctx)
            finally:
                owned[key] = parallel.added(res, before)
            merge()
        parallel.canonical_order(res, [key for key, _, _ in steps], owned)
        if report and out is not None:
            with step("Figures"):
                from . import report as rep
                if figures_pre is None:
                    res.figures = rep.make_figures(res, out)
                else:
                    res.figures.update(rep.make_figures(res, out, skip=MODEL_FIGURES))
                    step.t0 -= figures_pre  # the step's time includes the early figures
        res.timings["total"] = time.perf_counter() - t_start
        if report and out is not None:
            with step("HTML report"):
                from . import report as rep
                res.report = rep.write_report(res, out)
    except KeyboardInterrupt:
        if bg is not None:
            try:
                merge(interrupting=False)  # keep the worker's finished steps
            finally:
                bg.close()
        res.timings["total"] = time.perf_counter() - t_start
        if out is not None:
            try:  # keep what was finished: tables, findings and a report saying so
                from . import report as rep
                res.report = rep.write_report(res, out)
            except Exception:  # noqa: BLE001 - never mask the interrupt
                log.exception("could not write the report of the interrupted run")
        raise
    finally:
        if bg is not None:
            bg.close()
    res.timings["total"] = time.perf_counter() - t_start
    if res.report is not None:
        from . import report as rep
        rep.write_tables(res, out)  # findings.json with the final timings
    return res


@dataclass
class _Context:
    res: StudyResults
    raw: pd.DataFrame
    design: object
    roles: dict
    group_column: str
    cluster: Optional[str]
    fit_opts: dict
    bootstrap: int
    seed: int
    lcm_bootstrap: int = 0
    power_schools: list = field(default_factory=lambda: [5, 10, 15, 20, 30])
    power_reps: int = 200
    executor: object = None
    _df: Optional[pd.DataFrame] = None

    @property
    def df(self) -> pd.DataFrame:
        """The data with the reversed items reverse-scored (computed once)."""
        if self._df is None:
            from measurement import reverse_score
            self._df = reverse_score(self.raw, self.design)
        return self._df

    @property
    def labels(self) -> list:
        """Format labels in analysis order: the group format first (the reference), so that
        every format difference is individual minus group."""
        return [self.roles["group"], self.roles["individual"]]


def _step_reliability(ctx: _Context) -> None:
    from .measurement_steps import step_measurement
    step_measurement(ctx)


def _step_longitudinal(ctx: _Context) -> None:
    from .measurement_steps import step_longitudinal
    step_longitudinal(ctx)


def _step_format_invariance(ctx: _Context) -> None:
    from .measurement_steps import step_format_invariance
    step_format_invariance(ctx)


def _outcome_data(ctx: _Context) -> pd.DataFrame:
    from measurement import scale_means
    keep = [c for c in dict.fromkeys([ctx.cluster, ctx.group_column, "ext_pre", "int_pre",
                                      "ext_fu", "int_fu"]) if c is not None]
    means = scale_means(ctx.df, ctx.design, min_items=0.5, level="state")
    return pd.concat([ctx.df[keep], means], axis=1)


def _step_outcomes(ctx: _Context) -> None:
    from ..inference.lrt import compare
    from .outcomes import fit_outcomes
    res, design = ctx.res, ctx.design
    od = _outcome_data(ctx)
    meas = ["# trait factors measured by the state scale means (latent state-trait parcels)"]
    for i in design.informants:
        for d in design.dimensions:
            meas.append(f"{design.factor(i, d)} =~ "
                        + " + ".join(f"1*{design.factor(i, d, o)}" for o in design.occasions))
    meas.append("# occasion-specific residuals of bond and task correlated")
    for i in design.informants:
        for o in design.occasions:
            meas.append(f"{design.factor(i, 'bond', o)} ~~ {design.factor(i, 'task', o)}")
    meas_syntax = "\n".join(meas) + "\n"
    pooled = fit_outcomes(meas_syntax, od, OUTCOMES, TRAITS, cluster=ctx.cluster,
                          **ctx.fit_opts)
    res.fits["outcomes_pooled"] = pooled
    res.text["outcome_syntax"] = pooled.syntax
    pp = pooled.paths()
    res.tables["outcome_paths"] = pp[pp["rhs"].isin(TRAITS + ["ext_pre", "int_pre"])]
    # formats are randomized: the parcels' residual variances and the trait (co)variances
    # are held equal across formats, which stabilises the group-specific paths (the child
    # bond and task traits are highly correlated)
    by_format = fit_outcomes(meas_syntax, od, OUTCOMES, TRAITS, group=ctx.group_column,
                             group_labels=ctx.labels, cluster=ctx.cluster,
                             group_equal=["residuals", "lv.variances", "lv.covariances"],
                             **ctx.fit_opts)
    res.fits["outcomes_format"] = by_format
    bp = by_format.paths()
    res.tables["outcome_paths_format"] = bp[bp["rhs"].isin(TRAITS)]
    mod = by_format.moderation(lr=False)
    # likelihood-ratio (scaled) test of all paths equal across format
    allp = [(y, p) for y in OUTCOMES for p in TRAITS]
    con = by_format.refit(equal=allp)
    lr = compare(free=by_format.fit, constrained=con.fit).iloc[-1]
    from invariance.sequence import _DIFFERENCE_TESTS
    mod["lr_chisq"] = np.nan
    mod["lr_df"] = np.nan
    mod["lr_pvalue"] = np.nan
    mod["lr_test"] = ""
    last = mod.index[mod["outcome"] == "all"]
    mod.loc[last, ["lr_chisq", "lr_df", "lr_pvalue"]] = [float(lr["chisq_diff"]),
                                                         float(lr["df_diff"]),
                                                         float(lr["pvalue"])]
    mod.loc[last, "lr_test"] = _DIFFERENCE_TESTS.get(str(lr.get("method")), str(lr.get("method")))
    res.tables["outcome_moderation"] = mod
    res.tables["outcome_fit"] = pd.DataFrame([
        {"model": "pooled", "n": int(pooled.fit.ntotal), **_fitm(pooled.fit)},
        {"model": "by format", "n": int(by_format.fit.ntotal), **_fitm(by_format.fit)},
        {"model": "by format, paths equal", "n": int(con.fit.ntotal), **_fitm(con.fit)}])


def _step_item_outcomes(ctx: _Context) -> None:
    from measurement import trait_model

    from .outcomes import fit_outcomes
    items = fit_outcomes(trait_model(ctx.design, wording_factor="c"), ctx.df, OUTCOMES, TRAITS,
                         cluster=ctx.cluster, **ctx.fit_opts)
    ip = items.paths()
    ctx.res.tables["outcome_paths_items"] = ip[ip["rhs"].isin(TRAITS)]
    ctx.res.fits["outcomes_items"] = items


def _step_rsa(ctx: _Context) -> None:
    from measurement import scale_means

    from ..discrepancy.rsa import response_surface
    res = ctx.res
    tm = scale_means(ctx.df, ctx.design, min_items=0.5, level="trait")
    keep = [ctx.group_column, "int_pre", "int_fu"] + ([ctx.cluster] if ctx.cluster else [])
    rd = pd.concat([ctx.df[keep], tm], axis=1)
    rsa = response_surface(rd, "int_fu", "t_bond", "c_bond", controls=["int_pre"],
                           group=ctx.group_column, group_labels=ctx.labels, center="pooled",
                           bootstrap=ctx.bootstrap, seed=ctx.seed, cluster=None,
                           bootstrap_cluster=ctx.cluster, **ctx.fit_opts)
    res.fits["rsa"] = rsa
    res.tables["rsa_surface"] = rsa.surface
    res.tables["rsa_stationary"] = rsa.stationary
    res.tables["rsa_models"] = rsa.models.reset_index()
    gt = rsa.group_tests.reset_index()
    # surface_group_tests' diff is second minus first group: individual - group here
    gt.insert(1, "difference", np.where(gt["parameter"] == "all", "", "individual - group"))
    res.tables["rsa_group_tests"] = gt
    # shares of disagreement, named by who rates the bond higher (X = therapist, Y = child;
    # zY - zX < -.5 means the therapist's z score is more than .5 above the child's)
    disc = rsa.discrepancy.rename(columns={"below": "therapist_higher", "within": "in_agreement",
                                           "above": "child_higher"})
    res.tables["rsa_discrepancy"] = disc
    if rsa.bootstrap is not None:
        res.tables["rsa_bootstrap"] = rsa.bootstrap
    cc = []
    for g in rsa.group_labels:
        c = rsa.congruence(g, optimum="minimum")
        c.insert(0, "format", g)
        cc.append(c)
    res.tables["rsa_congruence"] = pd.concat(cc, ignore_index=True)


def _step_lcm(ctx: _Context) -> None:
    from ..discrepancy.congruence import congruence_items, fit_congruence
    res, missing, estimator = ctx.res, ctx.fit_opts["missing"], ctx.fit_opts["estimator"]
    t_items, c_items, pairs = congruence_items(ctx.design, "bond", raters=("t", "c"))
    # trait-level: both occasions' items, same-item residuals correlated over time
    lcm_missing = missing
    lcm = fit_congruence(ctx.df, t_items, c_items, "int_fu", ["int_pre"], dimension="bond",
                         group=ctx.group_column, group_labels=ctx.labels,
                         residual_pairs=pairs, **ctx.fit_opts)
    if not lcm.fit.converged and missing != "listwise":
        lcm_missing = "listwise"
        warnings.warn(f"the latent congruence model did not converge with missing="
                      f"{missing!r}; refitted with listwise deletion", RuntimeWarning)
        lcm = fit_congruence(ctx.df, t_items, c_items, "int_fu", ["int_pre"],
                             dimension="bond", group=ctx.group_column, group_labels=ctx.labels,
                             residual_pairs=pairs, estimator=estimator, missing="listwise")
    res.text["lcm_missing"] = lcm_missing
    res.fits["lcm"] = lcm
    res.tables["lcm_paths"] = lcm.paths()
    res.tables["lcm_latent"] = lcm.latent()
    res.tables["lcm_moderation"] = lcm.moderation()
    res.tables["lcm_fit"] = pd.DataFrame([{"model": "LCM bond (mid + end items), by format",
                                           "n": int(lcm.fit.ntotal), **_fitm(lcm.fit)}])
    if ctx.lcm_bootstrap > 0 and ctx.cluster:
        from .resampling_step import lcm_bootstrap_table
        res.tables["lcm_bootstrap"] = lcm_bootstrap_table(
            lcm, ctx.df, ctx.cluster, ctx.lcm_bootstrap, seed=ctx.seed, executor=ctx.executor)


def _step_power(ctx: _Context) -> None:
    from .resampling_step import step_power
    step_power(ctx)


def _step_twolevel(ctx: _Context) -> None:
    from .twolevel_step import step_twolevel
    step_twolevel(ctx)


def _step_findings(ctx: _Context) -> None:
    ctx.res.findings = study_findings(ctx.res)
