"""Study steps in a background worker process (:func:`sem_models.study.run_study`, ``jobs=2``).

The study's steps are independent of each other up to the findings (each reads the data and
writes its own tables), so on a machine with two or more cores the invariance steps, the
longest of the run, go to one forked worker process while this process runs the other steps
and the figures that do not depend on them.  The worker runs its steps in order, each under
the same bookkeeping as a step run here (:class:`~sem_models.study.pipeline._Step`: timing,
warnings, a failure recorded, the run going on), and sends each step's results back as soon
as the step ends: the tables, fitted objects and texts the step added, its notes, its failure
and its time.  The numbers are those of a run in one process: the same functions on the same
data (the worker is a ``fork`` of this process, so it sees the same modules and settings).

Fitted objects are pickled; cached properties whose values cannot be pickled (closures) are
left out and recomputed on first use (:class:`_FitPickler`).

The worker is started with ``fork`` on Linux only (and only when no other thread runs in
this process); elsewhere, or with ``jobs=1``, every step runs in this process.
"""
from __future__ import annotations

import copyreg
import functools
import io
import logging
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import threading
from typing import Any, Callable, Optional

__all__ = ["resolve_jobs", "can_fork", "BackgroundSteps", "PARTS", "added", "canonical_order",
           "merge_step"]

log = logging.getLogger(__name__)

#: what a step may add to the results (dict attributes of :class:`StudyResults`)
PARTS = ("tables", "fits", "text")


def can_fork() -> bool:
    """Whether steps may run in a forked worker (Linux, where ``fork`` is safe)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs: Optional[int]) -> int:
    """``None``: 2 where steps can run in a worker and two cores are available, else 1; an
    integer: at least 1 (more than 2 is the same as 2: one worker process).  Always 1 where
    forking is unsafe: not Linux, or other threads running in this process.

    Also on a busy machine two processes finish sooner than one (measured with the cores
    fully loaded by other processes: 25 s instead of 33-69 s): the scheduler shares the cores
    among runnable processes, so a second process gets the study a larger share."""
    if jobs is not None:
        jobs = int(jobs)
        if jobs < 1:
            raise ValueError(f"jobs must be 1 or more, not {jobs}")
    if not can_fork() or threading.active_count() > 1:
        return 1
    if jobs is None:
        return 2 if available_cores() >= 2 else 1
    return min(jobs, 2)


def added(res: Any, before: dict) -> dict:
    """Names of the tables / fits / texts of ``res`` that are new or replaced since ``before``
    (``{part: dict copy}``)."""
    out = {}
    for p in PARTS:
        was = before[p]
        out[p] = [k for k, v in getattr(res, p).items() if k not in was or was[k] is not v]
    return out


def canonical_order(res: Any, order: list, owned: dict) -> None:
    """Put the results of the steps in ``order`` (step keys) into the order a run in one
    process gives: tables / fits / texts, notes, failures and times by step, the files written
    so far with the first step's tables, then ``findings.json``, then the other tables."""
    titles = [res.steps.get(k, k) for k in order]
    rank = {t: i for i, t in enumerate(titles)}
    for p in PARTS:
        d = getattr(res, p)
        names = [n for k in order for n in owned.get(k, {}).get(p, []) if n in d]
        names = list(dict.fromkeys(names + list(d)))
        setattr(res, p, {n: d[n] for n in names})
    res.notes.sort(key=lambda n: rank.get(n.get("step"), len(rank)))
    res.failed = dict(sorted(res.failed.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    res.timings = dict(sorted(res.timings.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    first = [f"tables/{n}.csv" for n in (owned.get(order[0], {}).get("tables", []) if order
                                         else [])]
    tabs = first + [f"tables/{n}.csv" for n in res.tables]
    files = list(res.files)
    head = [f for f in dict.fromkeys(first) if f in files]
    rest = [f for f in dict.fromkeys(tabs) if f in files and f not in head]
    other = [f for f in files if f not in head and f not in rest and f != "findings.json"]
    res.files[:] = head + (["findings.json"] if "findings.json" in files else []) + rest + other


def merge_step(res: Any, msg: dict, step: Any, k: int, owned: dict) -> None:
    """Take a step run by the worker process into ``res`` as if it had run here (step number
    ``k``): progress lines, time, tables / fits / texts (a name already here is kept), notes,
    failure; then ``step.on_done`` (writes the tables)."""
    title = msg["title"]
    step.progress(f"[{k}/{step.n}] {title} ...")
    if msg["timing"] is not None:
        res.timings[title] = msg["timing"]
    for p in PARTS:
        have = getattr(res, p)
        for name, value in msg[p].items():
            have.setdefault(name, value)
    owned[msg["key"]] = {p: list(msg[p]) for p in PARTS}
    res.notes.extend(msg["notes"])
    if msg["failed"] is not None:
        res.failed[title] = msg["failed"]
        step.progress(f"      step failed: {msg['failed'][:300]}")
    elif not msg["interrupted"]:
        step.progress(f"      done in {msg['timing']:.1f} s (worker process)")
    step.on_done()


# ----------------------------------------------------------------------------- pickling
@functools.lru_cache(maxsize=None)
def _cached_names(cls: type) -> tuple:
    """Names of the ``functools.cached_property`` attributes of ``cls`` (and its bases)."""
    names = []
    for k in cls.__mro__:
        for name, value in vars(k).items():
            if isinstance(value, functools.cached_property):
                names.append(getattr(value, "attrname", None) or name)
    return tuple(dict.fromkeys(names))


def _picklable(value: Any) -> bool:
    try:
        _FitPickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except Exception:  # noqa: BLE001 - any failure means: leave it out
        return False
    return True


class _FitPickler(pickle.Pickler):
    """Pickles fitted objects whose cached properties hold closures: such a value is left out
    of the object's state (a cached property is recomputed on first access)."""

    def reducer_override(self, obj):
        cls = type(obj)
        state = getattr(obj, "__dict__", None)
        if not isinstance(state, dict) or not _plain_pickling(cls):
            return NotImplemented
        bad = [n for n in _cached_names(cls) if n in state and not _picklable(state[n])]
        if not bad:
            return NotImplemented
        state = {k: v for k, v in state.items() if k not in bad}
        return copyreg.__newobj__, (cls,), state


@functools.lru_cache(maxsize=None)
def _plain_pickling(cls: type) -> bool:
    """Whether ``cls`` is pickled the default way (``__dict__`` as the state), so that a
    reduced state can stand in for it."""
    default_state = getattr(object, "__getstate__", None)
    return (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__getstate__", None) is default_state
            and getattr(cls, "__setstate__", None) is None
            and not getattr(cls, "__slots__", ()))


def dumps(obj: Any) -> bytes:
    """``pickle.dumps``, falling back to :class:`_FitPickler` for objects holding closures in
    cached properties."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        buf = io.BytesIO()
        _FitPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buf.getvalue()


# ----------------------------------------------------------------------------- worker
def _write(path: str, payload: dict) -> None:
    """Pickle ``payload`` into the file ``path`` (:func:`dumps`' fallback for closures)."""
    with open(path, "wb") as f:
        try:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            f.seek(0)
            f.truncate()
            _FitPickler(f, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)


def _worker(conn, folder: str, ctx, steps: list, make_step: Callable) -> None:
    """Run ``steps`` ([(key, title, fn)]) on ``ctx`` (this process's copy); as each step ends,
    write its results into a file in ``folder`` and send the file's name through ``conn``
    (the results, often hundreds of MB of fitted objects, never wait in a pipe for the other
    process to read them)."""
    res = ctx.res
    step = make_step(res)
    try:
        for key, title, fn in steps:
            before = {p: dict(getattr(res, p)) for p in PARTS}
            n_notes = len(res.notes)
            interrupted = False
            try:
                with step(title):
                    fn(ctx)
            except KeyboardInterrupt:
                interrupted = True
            payload = {"key": key, "title": title, "timing": res.timings.get(title),
                       "notes": res.notes[n_notes:], "failed": res.failed.get(title),
                       "interrupted": interrupted}
            for p in PARTS:
                now, was = getattr(res, p), before[p]
                payload[p] = {k: v for k, v in now.items() if k not in was or was[k] is not v}
            path = os.path.join(folder, f"{key}.pickle")
            try:
                _write(path, payload)
            except Exception as exc:  # noqa: BLE001 - report it as the step's failure
                log.warning("results of step %s could not be sent back", title, exc_info=True)
                _write(path, {"key": key, "title": title, "timing": payload["timing"],
                              "notes": payload["notes"], "interrupted": interrupted,
                              "failed": f"results could not be sent from the worker process: "
                                        f"{type(exc).__name__}: {exc}",
                              **{p: {} for p in PARTS}})
            conn.send((key, path))
            if interrupted:
                break
    except (KeyboardInterrupt, BrokenPipeError, EOFError):
        pass
    finally:
        conn.close()


#: modules both processes need: imported once, before the fork (not twice, in parallel)
SHARED_MODULES = ("invariance", "measurement", "networkx", "threadpoolctl", "sem_models.api",
                  "sem_models.model.graph", "sem_models.estimation.fiml",
                  "sem_models.estimation.ordinal", "sem_models.inference.sandwich",
                  "sem_models.inference.scaled", "sem_models.inference.difference",
                  "sem_models.inference.lrt", "sem_models.study.measurement_steps")


def preimport(names=SHARED_MODULES) -> None:
    """Import ``names`` (a module that does not exist is skipped)."""
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a module renamed: imported where used
            log.debug("could not pre-import %s", name)


class BackgroundSteps:
    """Steps running in a forked worker process; :meth:`collect` returns the results of the
    steps that ended (as dicts: ``key, title, timing, notes, failed, interrupted`` and the
    ``tables`` / ``fits`` / ``text`` the step added).  The results come through files in a
    temporary folder (removed by :meth:`close`)."""

    def __init__(self, ctx: Any, steps: list, make_step: Callable):
        preimport()
        for stream in (sys.stdout, sys.stderr):  # else the worker may repeat buffered text
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):  # pragma: no cover
                pass
        self.folder = tempfile.mkdtemp(prefix="sem-models-study-")
        mp = multiprocessing.get_context("fork")
        self.conn, child = mp.Pipe(duplex=False)
        self.pending = [(key, title) for key, title, _ in steps]
        self.proc = mp.Process(target=_worker, args=(child, self.folder, ctx, steps, make_step),
                               name="sem-models-study-steps", daemon=True)
        try:
            self.proc.start()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        child.close()

    @property
    def running(self) -> Optional[str]:
        """Title of the step the worker is running (None: all done)."""
        return self.pending[0][1] if self.pending else None

    def collect(self, block: bool = False) -> list:
        """Results of the steps ended so far; ``block=True`` waits for all of them.  If the
        worker ends without sending a step's results, the step is reported as failed."""
        out = []
        while self.pending:
            try:
                if not block and not self.conn.poll(0):
                    break
                key, path = self.conn.recv()
            except (EOFError, OSError):
                self.proc.join(5)
                code = self.proc.exitcode
                for key, title in self.pending:
                    out.append({"key": key, "title": title, "timing": None, "notes": [],
                                "interrupted": False,
                                "failed": f"RuntimeError: the worker process running the step "
                                          f"ended unexpectedly (exit code {code})",
                                **{p: {} for p in PARTS}})
                self.pending = []
                break
            try:
                with open(path, "rb") as f:
                    msg = pickle.load(f)
            except Exception as exc:  # noqa: BLE001 - the step fails, the run goes on
                title = dict(self.pending).get(key, key)
                msg = {"key": key, "title": title, "timing": None, "notes": [],
                       "interrupted": False, **{p: {} for p in PARTS},
                       "failed": f"the results of the worker process could not be read: "
                                 f"{type(exc).__name__}: {exc}"}
            finally:
                try:
                    os.remove(path)
                except OSError:
                    pass
            self.pending = [(k, t) for k, t in self.pending if k != key]
            out.append(msg)
            if msg["interrupted"]:
                self.pending = []
        if not self.pending:
            self.close()
        return out

    def close(self) -> None:
        """Stop the worker (if still running), release the pipe, remove the folder."""
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
        try:
            self.conn.close()
        except OSError:  # pragma: no cover
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
