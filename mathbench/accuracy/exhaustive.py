"""Exhaustive accuracy: a float32 kernel at every one of the 2^32 inputs, a float64 kernel at a
dense grid, each against a wide-precision reference from the registry (``Activation.ref64``).

float32: the inputs are all 2^32 bit patterns (every NaN payload, both zeros, every subnormal),
in chunks of 2^24, against the reference evaluated in float64. For the backprop form g(y) the
inputs are every float32 inside the range of f (the only y backprop hands it) plus NaNs.
float64: 1e8 points by default (log-spaced magnitudes from the smallest subnormal to 1e3, evenly
spaced points in [-40, 40], both signs) plus special values and both sides (+-3 ulp) of every
range-reduction boundary (x = (k + 1/2) ln 2 and half of it) and of the registry's kinks,
against the reference evaluated in ``np.longdouble``.

Errors are measured as in :mod:`mathbench.accuracy.measure`: ``|r - R| / ulp(R rounded to the dtype)``
(the smallest subnormal at 0), NaN against NaN and inf against the same inf are exact, any other
special-value mismatch is an infinite error, and a point passes the implementation's Bound by its
ULP or its absolute part. Per kernel: the worst ULP error and its input, the worst ULP error among
points the absolute part does not cover, a histogram, and ``within_bound``.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numba
import numpy as np

from . import measure as accuracy
from ..functions import registry

CHUNK = 1 << 24
#: histogram bin edges in ulp; the last bin also counts infinite errors (special-value mismatches)
EDGES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0, 16.0, 256.0, 65536.0, math.inf])


@dataclass
class Result:
    n: int = 0
    max_ulp: float = 0.0
    worst_x: float = math.nan
    worst_out: float = math.nan
    worst_ref: float = math.nan
    max_ulp_beyond_abs: float = 0.0
    worst_x_beyond_abs: float = math.nan
    max_abs: float = 0.0
    n_fail: int = 0
    n_special_mismatch: int = 0
    hist: Optional[np.ndarray] = None

    def merge(self, o: "Result") -> None:
        if self.hist is None:
            self.hist = np.zeros(len(EDGES) - 1, dtype=np.int64)
        self.n += o.n
        self.hist += o.hist
        self.n_fail += o.n_fail
        self.n_special_mismatch += o.n_special_mismatch
        self.max_abs = max(self.max_abs, o.max_abs)
        if o.max_ulp > self.max_ulp or (o.max_ulp == self.max_ulp and math.isnan(self.worst_x)):
            self.max_ulp, self.worst_x, self.worst_out, self.worst_ref = o.max_ulp, o.worst_x, o.worst_out, o.worst_ref
        if o.max_ulp_beyond_abs > self.max_ulp_beyond_abs:
            self.max_ulp_beyond_abs, self.worst_x_beyond_abs = o.max_ulp_beyond_abs, o.worst_x_beyond_abs


# --------------------------------------------------------------------------------------------
# the error kernel (compiled once per dtype pair; float64 arithmetic on float32 data is exact)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _spacing(v, bits):
    """ulp of |v| rounded to the float type of ``bits`` mantissa bits (smallest subnormal at 0)."""
    a = abs(v)
    if bits == 24:
        tiny, sub = 1.1754943508222875e-38, 2.0 ** -149
    else:
        tiny, sub = 2.2250738585072014e-308, 5e-324
    if a < tiny:
        return sub
    m, e = math.frexp(a)
    return math.ldexp(1.0, e - bits)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _errors(x, out, ref_hi, ref_lo, bits, bound_ulp, abs_lim, edges, hist):
    """Accumulate the errors of ``out`` against R = ref_hi + ref_lo (ref_lo carries what float64
    cannot hold of a longdouble reference; zeros for float32). Returns (max_ulp, i_max,
    max_beyond, i_beyond, max_abs, n_fail, n_special)."""
    max_ulp, i_max, max_b, i_b, max_abs = -1.0, 0, 0.0, -1, 0.0
    n_fail, n_special = 0, 0
    nb = edges.shape[0] - 1
    for i in range(x.shape[0]):
        R = ref_hi[i]
        r = float(out[i])
        # R rounded to the kernel's type decides inf (overflow) and the ulp
        Rd = float(np.float32(R)) if bits == 24 else R
        if math.isnan(R) or math.isnan(r) or math.isinf(Rd) or math.isinf(r):
            same = (math.isnan(R) and math.isnan(r)) or (Rd == r)
            ulp = 0.0 if same else math.inf
            absd = 0.0 if same else math.inf
            if not same:
                n_special += 1
        else:
            absd = abs((r - R) - ref_lo[i])
            ulp = absd / _spacing(Rd, bits)
        ok = math.isfinite(absd) and (ulp <= bound_ulp or absd <= abs_lim)
        if not ok:
            n_fail += 1
        if ulp > max_ulp:
            max_ulp, i_max = ulp, i
        if absd > abs_lim and ulp > max_b:
            max_b, i_b = ulp, i
        if math.isfinite(absd) and absd > max_abs:
            max_abs = absd
        b = 0
        while b < nb - 1 and ulp > edges[b + 1]:
            b += 1
        hist[b] += 1
    return max_ulp, i_max, max_b, i_b, max_abs, n_fail, n_special


# --------------------------------------------------------------------------------------------
# input sets


def f32_chunk(index: int, lo: float = -math.inf, hi: float = math.inf, nan: bool = True) -> np.ndarray:
    """Bit patterns [index*CHUNK, (index+1)*CHUNK) as float32, keeping values in [lo, hi] (and
    NaNs when ``nan``)."""
    bits = np.arange(index * CHUNK, (index + 1) * CHUNK, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    if lo == -math.inf and hi == math.inf and nan:
        return x
    keep = (x >= lo) & (x <= hi)
    if nan:
        keep |= np.isnan(x)
    return x[keep]


def f64_grid(act: registry.Activation, points: int) -> np.ndarray:
    """The float64 check grid (about ``points`` values; see the module docstring)."""
    half = points // 4
    mags = np.geomspace(5e-324, 1e3, half)
    lin = np.linspace(0.0, 40.0, half)
    ln2 = math.log(2)
    bounds = [(k + 0.5) * ln2 * s for k in range(-1080, 1080) for s in (1.0, 0.5)]
    bounds += act.switches()
    bounds += [0.625, 1.0, 88.0, 89.0, 104.0, 709.78, 710.0, 745.13, 746.0]
    b = np.asarray([v for v in bounds if math.isfinite(v) and v > 0], dtype=np.float64)
    pos = np.concatenate([mags, lin, accuracy._with_neighbours(b, "float64", k=3)])
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308,
                         np.finfo(np.float64).max])
    return np.concatenate([pos, -pos, specials])


# --------------------------------------------------------------------------------------------


def _kernel_call(act, impl, form, dtype) -> Callable:
    return accuracy.impl_call(act, impl, form, dtype, parallel=False)


def _evaluate(call, x: np.ndarray, p) -> np.ndarray:
    out = np.empty_like(x)
    call(x, p, out)
    return out


def check(function: str, impl_name: str, form: str, dtype: str, *, f64_points: int = 100_000_000,
          chunks: Optional[range] = None, workers: int = 0, progress: Optional[Callable[[int], None]] = None) -> dict:
    """Exhaustive (float32) or dense-grid (float64) accuracy of one kernel; a row for results.csv.
    ``chunks`` limits the float32 bit-pattern chunks checked (tests); ``progress(n)`` is called
    as chunks finish."""
    act = registry.get(function)
    impl = act.impl(impl_name)
    ref_fn = act.ref64.get(form)
    if ref_fn is None:
        raise registry.UnknownName(f"{function} has no wide-precision reference for {form}; "
                                   "exhaustive checks cover: " + ", ".join(
                                       a.name for a in registry.REGISTRY.values() if a.ref64))
    bound = impl.bound(form, dtype)
    abs_lim = bound.abs_limit(dtype)
    call = _kernel_call(act, impl, form, dtype)
    pv = float(np.dtype(dtype).type(act.param_default)) if act.param else 0.0
    p = np.dtype(dtype).type(pv)
    lo, hi = accuracy.range_ends(act, dtype) if form == "dfdy" else (-math.inf, math.inf)
    workers = workers or (os.cpu_count() or 1)
    t0 = time.perf_counter()
    total = Result(hist=np.zeros(len(EDGES) - 1, dtype=np.int64))

    def one(x: np.ndarray, wide) -> Result:
        out = _evaluate(call, x, p)
        with np.errstate(all="ignore"):  # overflow to inf is part of the reference
            R = ref_fn(x.astype(wide), wide(pv))
            hi_ = np.asarray(R, dtype=np.float64)
            lo_ = np.asarray(R - hi_.astype(wide), dtype=np.float64) if wide is not np.float64 else np.zeros_like(hi_)
        lo_ = np.where(np.isfinite(lo_), lo_, 0.0)
        hist = np.zeros(len(EDGES) - 1, dtype=np.int64)
        bits = 24 if dtype == "float32" else 53
        mu, im, mb, ib, ma, nf, ns = _errors(x, out, hi_, lo_, bits, bound.ulp, abs_lim, EDGES, hist)
        return Result(n=len(x), max_ulp=max(mu, 0.0), worst_x=float(x[im]) if len(x) else math.nan,
                      worst_out=float(out[im]) if len(x) else math.nan,
                      worst_ref=float(hi_[im]) if len(x) else math.nan,
                      max_ulp_beyond_abs=mb, worst_x_beyond_abs=float(x[ib]) if ib >= 0 else math.nan,
                      max_abs=ma, n_fail=nf, n_special_mismatch=ns, hist=hist)

    if dtype == "float32":
        chunks = chunks if chunks is not None else range(1 << (32 - 24))
        jobs = [(lambda c=c: one(f32_chunk(c, lo, hi), np.float64)) for c in chunks]
        input_set = "every float32" + (" in the range of f, and NaN" if form == "dfdy" else "")
        if len(chunks) < 1 << 8:
            input_set += f" (chunks {chunks.start}-{chunks.stop - 1} of 256)"
    else:
        grid = f64_grid(act, f64_points)
        if form == "dfdy":
            grid = grid[((grid >= lo) & (grid <= hi)) | np.isnan(grid)]
        step = 1 << 22
        jobs = [(lambda s=s: one(np.ascontiguousarray(grid[s:s + step]), np.longdouble))
                for s in range(0, len(grid), step)]
        input_set = f"float64 grid of {len(grid):,} points (module docstring)"
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for r in pool.map(lambda j: j(), jobs):  # kernels and ufuncs release the GIL
            total.merge(r)
            if progress:
                progress(1)
    return dict(
        function=function, impl=impl_name, form=form, dtype=dtype, input_set=input_set, n_inputs=total.n,
        max_ulp=total.max_ulp, worst_x=total.worst_x, worst_x_hex=_hex(total.worst_x, dtype),
        worst_out=total.worst_out, worst_ref=total.worst_ref,
        ulp_beyond_abs=total.max_ulp_beyond_abs, worst_x_beyond_abs=total.worst_x_beyond_abs,
        max_abs=total.max_abs, n_fail=total.n_fail, n_special_mismatch=total.n_special_mismatch,
        bound_ulp=bound.ulp, bound_abs=abs_lim, within_bound=total.n_fail == 0,
        seconds=time.perf_counter() - t0, hist=total.hist,
    )


def n_jobs(dtype: str, chunks: Optional[range] = None, f64_points: int = 100_000_000) -> int:
    if dtype == "float32":
        return len(chunks) if chunks is not None else 256
    return math.ceil((f64_points + 8800 * 14) / (1 << 22))


def _hex(v: float, dtype: str) -> str:
    if math.isnan(v):
        return ""
    return np.dtype(dtype).type(v).tobytes()[::-1].hex()
