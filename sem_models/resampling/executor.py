"""The execution layer: many independent replications, batched, seeded, on any backend.

:func:`run_replications` calls ``task(rng, r)`` for ``r = 0 .. n_reps - 1`` and returns one
row per replication.  Replication ``r`` gets its own generator, seeded from the root seed and
its index alone (``numpy.random.SeedSequence(entropy=seed, spawn_key=(r,))``, the ``r``-th
child of ``SeedSequence(seed).spawn``; O'Neill 2015, numpy's independent-stream scheme), so the
results are identical whatever the backend (in-process, local processes, any
``concurrent.futures.Executor``, a ``dask.distributed.Client``), the batch size and the number
of workers, and a checkpointed run can be resumed (simsem's one stream per replication with
L'Ecuyer-CMRG serves the same purpose).

Replications run in batches (one submitted task per batch, so that scheduling costs are paid
per batch, not per replication).  A task that fits many replications at once (a
``chunk_size`` and a ``run_chunk(rngs, reps)`` method, e.g. the bootstrap's vectorised refits,
:mod:`.batched`) receives canonical chunks: the replications ``r`` with the same
``r // chunk_size``, whatever the backend and the batch size (batches are made of whole
chunks), so that batched floating-point work is done on the same stacks everywhere.  An
exception in one replication is recorded in its row (column ``error``) and never ends the
run.  With ``checkpoint=`` every finished batch is
written to a Parquet file (pyarrow) in that folder; a later call with the same seed reads them
and runs only the replications that are missing.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

__all__ = ["run_replications", "replication_rng", "CheckpointError"]

#: A replication: ``task(rng, r)`` -> a mapping of column name to scalar (number, bool, str)
Task = Callable[[np.random.Generator, int], Mapping[str, Any]]

#: in-process runs whose estimated remaining time is below this many seconds are not sent
#: to worker processes (starting them costs about as much)
INPROCESS_SECONDS = 1.0
#: largest default batch
MAX_BATCH = 500


class CheckpointError(ValueError):
    """A checkpoint folder belongs to another run (other seed or task) or cannot be written."""


def replication_rng(seed: int, r: int) -> np.random.Generator:
    """The generator of replication ``r`` under root ``seed`` (independent of the backend)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(int(r),)))


def _root_entropy(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, np.random.SeedSequence):
        if seed.spawn_key:
            raise ValueError("seed: give an integer or a SeedSequence without a spawn key")
        return int(seed.entropy)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (or None), not {seed!r}")
    return int(seed)


def chunk_size(task) -> int:
    """Replications per canonical chunk of a task that fits many at once (``task.chunk_size``
    and ``task.run_chunk``), else 1."""
    if not callable(getattr(task, "run_chunk", None)):
        return 1
    size = getattr(task, "chunk_size", None)
    return int(size) if size else 1


def _units(reps: Sequence[int], chunk: int) -> list[list[int]]:
    """The replications grouped into canonical chunks: consecutive indices with the same
    ``r // chunk`` (single replications when ``chunk`` is 1)."""
    out: list[list[int]] = []
    for r in reps:
        if chunk > 1 and out and out[-1][-1] == r - 1 and out[-1][0] // chunk == r // chunk:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _error_row(exc: BaseException) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"}


def _run_one(task: Task, entropy: int, r: int) -> dict:
    try:
        row = dict(task(replication_rng(entropy, r), r))
        row["error"] = None
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        row = _error_row(exc)
    row["rep"] = int(r)
    return row


def _run_chunk(task, entropy: int, unit: list[int]) -> list[dict]:
    """One canonical chunk through ``task.run_chunk`` (one result or exception per
    replication); should the chunk as a whole fail, its replications run one by one."""
    try:
        results = task.run_chunk([replication_rng(entropy, r) for r in unit], list(unit))
        if len(results) != len(unit):
            raise RuntimeError(f"run_chunk returned {len(results)} results for {len(unit)} "
                               "replications")
    except Exception:  # noqa: BLE001 - deterministic: the same chunk fails everywhere
        return [_run_one(task, entropy, r) for r in unit]
    rows = []
    for r, res in zip(unit, results):
        if isinstance(res, BaseException):
            row = _error_row(res)
        else:
            row = dict(res)
            row["error"] = None
        row["rep"] = int(r)
        rows.append(row)
    return rows


def _run_batch(task: Task, entropy: int, reps: Sequence[int],
               on_done: Optional[Callable[[int], None]] = None) -> list[dict]:
    """Run the replications ``reps`` (one row each; an exception becomes the row's error),
    canonical chunk by canonical chunk for tasks that fit many at once."""
    rows = []
    chunk = chunk_size(task)
    for unit in _units(reps, chunk):
        if chunk == 1:
            rows.append(_run_one(task, entropy, unit[0]))
        else:
            rows.extend(_run_chunk(task, entropy, unit))
        if on_done is not None:
            on_done(len(unit))
    return rows


# -------------------------------------------------------------------------------- backends
def _is_dask_client(obj) -> bool:
    """A ``dask.distributed.Client`` (recognised without importing dask)."""
    return type(obj).__module__.split(".")[0] == "distributed" and hasattr(obj, "get_executor")


def _n_workers(executor) -> int:
    if _is_dask_client(executor):
        try:
            return max(1, int(sum(executor.nthreads().values())))
        except Exception:  # noqa: BLE001 - only used to size batches
            return 1
    return max(1, int(getattr(executor, "_max_workers", 0) or os.cpu_count() or 1))


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _picklable(task) -> bool:
    """Whether worker processes can receive the task (else it runs here)."""
    import pickle
    try:
        pickle.dumps(task)
    except Exception:  # noqa: BLE001 - lambdas, local functions, open handles, ...
        return False
    return True


def _batches(reps: Sequence[int], size: int, chunk: int = 1) -> list[list[int]]:
    """Consecutive runs of at most ``size`` replications (runs never jump over gaps), made of
    whole canonical chunks (``size`` is rounded up to a multiple of ``chunk``)."""
    size = chunk * max(1, math.ceil(size / chunk))
    out: list[list[int]] = []
    for unit in _units(reps, chunk):
        if out and len(out[-1]) + len(unit) <= size and out[-1][-1] == unit[0] - 1:
            out[-1].extend(unit)
        else:
            out.append(list(unit))
    return out


def _default_batch_size(n: int, workers: int) -> int:
    # about four batches per worker (load balance, progress), at most MAX_BATCH each
    return int(min(MAX_BATCH, max(1, math.ceil(n / (4 * workers)))))


# -------------------------------------------------------------------------------- checkpoints
class _Checkpoint:
    """One Parquet file per finished batch plus ``meta.json`` (seed and task fingerprint)."""

    def __init__(self, folder: Union[str, os.PathLike], entropy: int, fingerprint: Optional[str]):
        try:
            import pyarrow  # noqa: F401
        except ImportError:  # pragma: no cover - pyarrow is installed where tests run
            raise ImportError("checkpoint= writes Parquet files and needs pyarrow: "
                              'pip install pyarrow (or "sem-models[checkpoint]")') from None
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta_path = self.folder / "meta.json"
        meta = {"seed": str(entropy), "fingerprint": fingerprint}
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("seed") != meta["seed"]:
                raise CheckpointError(
                    f"checkpoint folder {str(self.folder)!r} holds a run with seed "
                    f"{old.get('seed')}, not {entropy}: use another folder or the same seed")
            if fingerprint is not None and old.get("fingerprint") not in (None, fingerprint):
                raise CheckpointError(
                    f"checkpoint folder {str(self.folder)!r} holds replications of another task "
                    f"({old.get('fingerprint')!r}, not {fingerprint!r}): use another folder")
        else:
            _atomic_write(meta_path, json.dumps(meta).encode())

    def load(self) -> list[dict]:
        rows: list[dict] = []
        for path in sorted(self.folder.glob("reps_*.parquet")):
            frame = pd.read_parquet(path)
            rows.extend(frame.to_dict("records"))
        return rows

    def save(self, rows: list[dict]) -> None:
        first, last = rows[0]["rep"], rows[-1]["rep"]
        path = self.folder / f"reps_{first:09d}-{last:09d}.parquet"
        frame = _normalise(pd.DataFrame.from_records(rows))
        tmp = path.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """One representation of missing values whatever the path (memory or Parquet): float
    columns NaN; text / boolean columns with gaps object with None."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            values = frame[col].to_numpy()
            missing = pd.isna(values)
            if missing.any():
                values = values.copy()
                values[missing] = None
                frame[col] = pd.Series(values, index=frame.index, dtype=object)
            elif len(values) and all(isinstance(v, (bool, np.bool_)) for v in values):
                frame[col] = frame[col].astype(bool)
    return frame


def _assemble(rows: list[dict], n_reps: int) -> pd.DataFrame:
    rows = sorted((row for row in rows if row["rep"] < n_reps), key=lambda row: row["rep"])
    columns: list[str] = []
    for row in rows:  # first appearance order, error last
        for key in row:
            if key not in ("rep", "error") and key not in columns:
                columns.append(key)
    frame = pd.DataFrame.from_records(rows, columns=["rep", *columns, "error"])
    frame = _normalise(frame).set_index("rep")
    return frame


# -------------------------------------------------------------------------------- progress
class _Progress:
    """A tqdm bar on stderr (no bar without tqdm, with ``progress=False`` or off a TTY)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str):
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        # disable=None: no bar when stderr is not a terminal; delay: no bar for short runs
        self.bar = tqdm(total=total, initial=initial, desc=desc, file=sys.stderr,
                        disable=None, delay=0.5, unit="rep", dynamic_ncols=True)

    def update(self, k: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -------------------------------------------------------------------------------- the runner
def run_replications(task: Task, n_reps: int, *, seed, executor=None,
                     batch_size: Optional[int] = None, progress: bool = True,
                     checkpoint: Union[str, os.PathLike, None] = None,
                     fingerprint: Optional[str] = None, desc: str = "replications") -> pd.DataFrame:
    """Run ``task(rng, r)`` for ``r = 0 .. n_reps - 1``; one row per replication.

    Parameters
    ----------
    task
        A picklable callable (a module-level function or an object with ``__call__``) taking
        the replication's ``numpy.random.Generator`` and its index and returning a mapping of
        column names to scalars.  A task with a ``chunk_size`` and a ``run_chunk(rngs, reps)``
        method (one mapping or exception per replication) receives canonical chunks instead
        (see the module docstring).
    seed
        Root seed (non-negative integer).  Replication ``r`` draws from
        ``SeedSequence(entropy=seed, spawn_key=(r,))`` only, so results do not depend on the
        backend, ``batch_size`` or the number of workers.  ``None`` draws a fresh root seed
        (stored in ``result.attrs["seed"]``).
    executor
        ``None``: replications run in this process while that is cheaper than starting worker
        processes (the first ones are timed), else in a ``ProcessPoolExecutor`` with one
        process per available core.  ``"serial"``: always in this process.  An integer: that
        many local processes.  Or any ``concurrent.futures.Executor`` or
        ``dask.distributed.Client`` (not shut down here).
    batch_size
        Replications per submitted task (default: about four batches per worker, at most 500).
    progress
        A tqdm bar on stderr for runs longer than half a second (never off a terminal).
    checkpoint
        Folder for one Parquet file per finished batch; a rerun with the same seed (and
        ``fingerprint``, when given) skips the replications found there.  Needs pyarrow.
    fingerprint
        Identifies the task in the checkpoint folder (a different one is refused).

    Returns
    -------
    DataFrame indexed by ``rep`` with the task's columns and ``error`` (None, or the
    exception's type and message).  ``attrs``: ``seed``, ``n_failed``.
    """
    n_reps = int(n_reps)
    if n_reps < 0:
        raise ValueError(f"n_reps must be non-negative, not {n_reps}")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if checkpoint is not None and seed is None:
        raise ValueError("checkpoint= needs a seed: a resumed run must reproduce the same "
                         "replications")
    entropy = _root_entropy(seed)
    store = _Checkpoint(checkpoint, entropy, fingerprint) if checkpoint is not None else None
    rows = store.load() if store is not None else []
    done = {row["rep"] for row in rows}
    todo = [r for r in range(n_reps) if r not in done]
    bar = _Progress(progress, n_reps, n_reps - len(todo), desc)
    try:
        if todo:
            rows.extend(_dispatch(task, entropy, todo, executor, batch_size, store, bar))
    finally:
        bar.close()
    frame = _assemble(rows, n_reps)
    frame.attrs["seed"] = entropy
    frame.attrs["n_failed"] = int(frame["error"].notna().sum())
    return frame


def _dispatch(task, entropy, todo, executor, batch_size, store, bar) -> list[dict]:
    own = None
    chunk = chunk_size(task)
    if executor is None or executor in ("serial", "inprocess"):
        workers = 1 if executor is not None else _cpu_count()
        rows: list[dict] = []
        if workers > 1:  # time the first replications here, go parallel only if worth it
            start = time.perf_counter()
            units = _units(todo, chunk)
            k = n_done = 0
            while k < len(units) and time.perf_counter() - start < 0.1 * INPROCESS_SECONDS:
                rows.extend(_run_batch(task, entropy, units[k], bar.update))
                n_done += len(units[k])
                k += 1
            if store is not None and rows:
                by_rep = {row["rep"]: row for row in rows}
                for batch in _batches(list(by_rep), int(batch_size or MAX_BATCH), chunk):
                    store.save([by_rep[r] for r in batch])
            remaining = todo[n_done:]
            per_rep = (time.perf_counter() - start) / max(n_done, 1)
            if not remaining:
                return rows
            if per_rep * len(remaining) > INPROCESS_SECONDS and _picklable(task):
                own = cf.ProcessPoolExecutor(max_workers=workers)
                try:
                    rows.extend(_parallel(task, entropy, remaining, own, workers, batch_size,
                                          store, bar))
                finally:
                    own.shutdown(wait=True, cancel_futures=True)
                return rows
            todo = remaining
        size = int(batch_size) if batch_size else min(MAX_BATCH, max(1, len(todo)))
        for batch in _batches(todo, size, chunk):
            out = _run_batch(task, entropy, batch, bar.update)
            if store is not None:
                store.save(out)
            rows.extend(out)
        return rows
    if isinstance(executor, (int, np.integer)) and not isinstance(executor, bool):
        if executor < 1:
            raise ValueError(f"executor: the number of processes must be positive, not {executor}")
        own = cf.ProcessPoolExecutor(max_workers=int(executor))
        try:
            return _parallel(task, entropy, todo, own, int(executor), batch_size, store, bar)
        finally:
            own.shutdown(wait=True, cancel_futures=True)
    if _is_dask_client(executor):
        return _parallel(task, entropy, todo, executor.get_executor(), _n_workers(executor),
                         batch_size, store, bar)
    if isinstance(executor, cf.Executor):
        return _parallel(task, entropy, todo, executor, _n_workers(executor), batch_size,
                         store, bar)
    raise TypeError("executor must be None, 'serial', a number of processes, a "
                    "concurrent.futures.Executor or a dask.distributed.Client, not "
                    f"{type(executor).__name__}")


def _parallel(task, entropy, todo, executor: cf.Executor, workers: int, batch_size, store,
              bar) -> list[dict]:
    if isinstance(executor, cf.ProcessPoolExecutor) and not _picklable(task):
        # checked here: a task that fails to pickle in the pool's feeder thread can leave
        # ProcessPoolExecutor.shutdown waiting for ever (CPython 3.11)
        raise TypeError(f"the task {task!r} cannot be pickled for worker processes: define it "
                        "at module level (not a lambda or local function), or run it with "
                        "executor='serial' or a thread pool")
    size = int(batch_size) if batch_size else _default_batch_size(len(todo), workers)
    futures = {executor.submit(_run_batch, task, entropy, batch): batch
               for batch in _batches(todo, size, chunk_size(task))}
    rows: list[dict] = []
    try:
        for future in cf.as_completed(futures):
            out = future.result()
            if store is not None:
                store.save(out)
            rows.extend(out)
            bar.update(len(out))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return rows
