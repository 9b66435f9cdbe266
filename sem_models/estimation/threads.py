"""Single-threaded BLAS while fitting, without ever leaking the limit into the caller.

SEM works with many small matrices (tens to a few hundred rows).  A multi-threaded BLAS spends
more time waking and synchronising threads than computing on such matrices, and on a busy
machine a 124 x 124 solve can take 100 times longer than single-threaded.  The fitting code
runs under :func:`single_threaded_blas`, which limits BLAS to one thread through threadpoolctl
(when installed) and restores the caller's setting afterwards.

The BLAS thread count is a setting of the whole process, and saving / restoring it around each
fit is not thread-safe: with fits overlapping in two threads, the second one records the
first one's limit of 1 and, leaving last, "restores" it, so the caller's BLAS stays at one
thread for good.  OpenBLAS moreover ignores or loses changes made from threads other than the
main thread once the main thread has set a value.  Therefore the limit is applied only by
fits running in the main thread (reference counted, so nested fitting calls restore once, at
the outermost exit); fits in other threads run with the caller's BLAS setting unchanged and
never touch it.  (Running many fits in parallel threads, give BLAS one thread yourself with
``threadpoolctl.threadpool_limits(1, "blas")`` around the pool if the matrices are small.)
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Iterator

__all__ = ["single_threaded_blas", "blas_single_thread", "blas_limit_depth"]

_blas = None  # threadpoolctl's controllers of the loaded BLAS libraries (False: none)
_depth = 0  # nesting depth of main-thread fits holding the limit
_saved: list = []  # (library, its thread count) changed by the outermost fit, to restore


def _blas_libraries():
    """The BLAS libraries' threadpoolctl controllers (``get_num_threads`` /
    ``set_num_threads``), found once; False without threadpoolctl.  Setting the count on them
    directly costs a few microseconds, a third of a ``threadpool_limits`` context."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            # load scipy's own BLAS first: the controller only sees the libraries loaded when
            # it is created, and scipy.optimize's L-BFGS-B is 10x slower on a multi-threaded
            # BLAS than on one thread (thread wake-ups on every small product)
            import scipy.linalg  # noqa: F401
            _blas = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _blas = False
    return _blas


def blas_limit_depth() -> int:
    """How many nested main-thread fits hold the one-thread limit (0: none)."""
    return _depth


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Limit BLAS to one thread for the body when called from the main thread (a no-op in
    other threads and without threadpoolctl); see the module docstring."""
    global _depth, _saved
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    libraries = _blas_libraries()
    if libraries is False:
        yield
        return
    if _depth == 0:
        _saved = [(lib, n) for lib in libraries if (n := lib.get_num_threads()) != 1]
        for lib, _ in _saved:
            lib.set_num_threads(1)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            saved, _saved = _saved, []
            for lib, n in saved:
                lib.set_num_threads(n)


def single_threaded_blas(func):
    """Decorator: run ``func`` with BLAS limited to one thread (main thread only)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with blas_single_thread():
            return func(*args, **kwargs)
    return wrapper
