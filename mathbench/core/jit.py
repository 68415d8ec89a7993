"""Numba helpers shared by every kernel: JIT options and dtype-preserving constants.

Numba types a Python float literal as float64, so ``1.0 + x`` with a float32 ``x`` silently
computes in double. Scalar functions therefore write constants as ``c(x, 1.0)``: a constant of
x's own float type, folded at compile time.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

#: error_model="numpy": float division by zero gives inf/nan instead of raising, which is what
#: lets LLVM vectorize loops containing a division.
JIT_OPTIONS = dict(cache=True, error_model="numpy", nogil=True)


def jit(fn):
    """The decorator for every scalar function in the registry."""
    return njit(**JIT_OPTIONS)(fn)


def c(x, value):  # pragma: no cover - replaced by the overload inside jitted code
    """Python fallback: ``value`` as a constant of x's float type."""
    return np.asarray(x).dtype.type(value)


@overload(c, inline="always")
def _c_overload(x, value):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)
