"""Explicit thread counts for Numba, BLAS and torch.

On a 2-core machine the default pools oversubscribe (OpenBLAS + Numba + torch each start one
thread per core) and slowed a small LSTM 10-100x here, so every measurement sets all three and
records them. Serial rows run one thread.
"""
from __future__ import annotations

import contextlib
import os
import sys

import numba


def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def _blas_limits():
    from threadpoolctl import threadpool_limits

    return threadpool_limits


@contextlib.contextmanager
def limit(n: int, blas: int | None = None):
    """Run the body with Numba and (if imported) torch at ``n`` threads and BLAS at ``blas``
    (default ``n``; the LSTM's parallel kernels call BLAS from Numba workers and want 1)."""
    n = int(n)
    if not 1 <= n <= max_threads():
        from .errors import UsageError

        raise UsageError(f"thread count {n} out of range 1..{max_threads()}")
    prev_numba = numba.get_num_threads()
    torch = sys.modules.get("torch")
    prev_torch = torch.get_num_threads() if torch else None
    numba.set_num_threads(n)
    if torch:
        torch.set_num_threads(n)
    try:
        with _blas_limits()(limits=n if blas is None else blas, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(prev_numba)
        if torch:
            torch.set_num_threads(prev_torch)


def thread_info() -> dict:
    """Current thread settings, for the metadata sidecar and per-row columns."""
    from threadpoolctl import threadpool_info

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        layer = None
    blas = [{"api": p.get("internal_api"), "threads": p.get("num_threads")} for p in threadpool_info()
            if p.get("user_api") == "blas"]
    torch = sys.modules.get("torch")
    return {
        "numba_threads": numba.get_num_threads(),
        "numba_max_threads": max_threads(),
        "numba_threading_layer": layer or numba.config.THREADING_LAYER,
        "blas": blas,
        "torch_threads": torch.get_num_threads() if torch else None,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                             "NUMBA_NUM_THREADS") if k in os.environ},
    }
