"""Single-threaded BLAS while fitting.

SEM works with many small matrices (tens to a few hundred rows).  A multi-threaded BLAS spends
more time waking and synchronising threads than computing on such matrices, and on a busy
machine a 124 x 124 solve can take 100 times longer than single-threaded.  The fitting code
runs under :func:`single_threaded_blas`, which limits BLAS to one thread through threadpoolctl
(when installed) and restores the previous setting afterwards.
"""
from __future__ import annotations

import contextlib
import functools

__all__ = ["single_threaded_blas", "blas_single_thread"]

_controller = None


def blas_single_thread():
    """A context manager limiting BLAS to one thread (a no-op without threadpoolctl)."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
            _controller = ThreadpoolController()
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _controller = False
    if _controller is False:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def single_threaded_blas(func):
    """Decorator: run ``func`` with BLAS limited to one thread."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with blas_single_thread():
            return func(*args, **kwargs)
    return wrapper
