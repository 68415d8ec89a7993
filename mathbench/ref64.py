"""Wide-precision references for exhaustive accuracy checks: each form written stably in NumPy.

``python -m mathbench accuracy --exhaustive`` compares a float32 kernel with one of these at all
2^32 inputs, evaluated in float64 (2^29 times finer than a float32 ulp), and a float64 kernel at
1e8 grid points, evaluated in ``np.longdouble`` (x87 extended: 11 more bits than float64). mpmath
is far too slow for that many points, so these formulas avoid every cancellation and overflow a
naive one would hit (``1 - tanh^2`` at large |x|, ``log(1 + exp(x))`` below -37); the tests check
each against mpmath, including the tails. Only NumPy ufuncs are used, so the same code runs in
float64 and longdouble.
"""
from __future__ import annotations

import numpy as np


def _e(x):
    return np.exp(-np.abs(x))  # in [0, 1]: never overflows


def tanh(x, a):
    return np.tanh(x)


def tanh_dx(x, a):
    return 1 / np.cosh(x) ** 2  # 1 - tanh^2 would cancel to 0 where the true value is 1e-30


def tanh_dy(y, a):
    return (1 - y) * (1 + y)


def sigmoid(x, a):
    e = _e(x)
    return np.where(x < 0, e, 1) / (1 + e)


def sigmoid_dx(x, a):
    e = _e(x)
    return e / (1 + e) ** 2


def sigmoid_dy(y, a):
    return y * (1 - y)


def softplus(x, a):
    return np.maximum(x, 0) + np.log1p(_e(x))


def softplus_dy(y, a):
    return -np.expm1(-y)


def exp(x, a):
    return np.exp(x)


def identity(y, a):
    return y


def isru(x, a):
    # beyond 1e150 a*x*x overflows float64; the value there is the limit to every precision
    lim = 1 / np.sqrt(a)
    big = np.abs(x) > 1e150
    xs = np.where(big, 0, x)
    return np.where(big, np.copysign(lim, x), xs / np.sqrt(1 + a * xs * xs))


def isru_dx(x, a):
    xs = np.where(np.abs(x) > 1e150, 1e150, x)
    return (1 + a * xs * xs) ** -1.5


def isru_dy(y, a):
    return (1 - a * y * y) ** 1.5


def isru_sigmoid(x, a):
    return 0.5 + 0.5 * isru(0.5 * x, a)


def isru_sigmoid_dx(x, a):
    return 0.25 * isru_dx(0.5 * x, a)


def isru_sigmoid_dy(y, a):
    return 0.25 * isru_dy(2 * y - 1, a)
