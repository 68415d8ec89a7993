"""Accuracy of an implementation against a high-precision reference built from the registry.

The reference for a form (``forward`` f(x), ``dfdx`` f'(x), ``dfdy`` g(y)) is the registry's
SymPy expression lambdified with mpmath, with the parameter set to the exact value the kernel
receives (the dtype-rounded parameter), evaluated with *adaptive* precision: at 128 and 256
bits, doubling until two precisions agree to 2^-75, and at 1500 bits whenever the result is
zero. That catches the cancellation a fixed precision misses (``log(1 + exp(-700))`` or
``1 - exp(-1e-310)`` are exactly 0 at 40 digits, but representable in float64). Then:

* NaN in gives NaN; x = +-inf gives the limit (SymPy, Piecewise-aware, see ``symbolic.limit``);
  a division by zero at a range end (``1/(2y)`` at y = 0) is the one-sided limit from inside.
* Each reference value R is kept as (Rd, resid): Rd is R correctly rounded to the dtype
  (subnormals and overflow to inf included) and resid = R - Rd in float64, so errors are
  measured against R itself, not against a rounded copy.

Errors: ``ulp = |r - R| / spacing_dtype(|Rd|)`` (smallest subnormal when Rd == 0),
``abs = |r - R|``; NaN vs NaN and inf vs the same inf are exact (0); any other mismatch of
special values is an infinite error. A point passes its :class:`~mathbench.functions.registry.Bound` if
``ulp <= bound.ulp`` or ``abs <= bound.abs_limit(dtype)``; ``bound.ulp = inf`` means "no ULP
promise, only the absolute one" (the rational approximations), and infinite errors never pass.

References are computed once per (expression, parameter, dtype, grid), kept in memory and on
disk under ``codegen.cache_dir()/reference``, and shared by every implementation.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import zipfile
from dataclasses import dataclass
from typing import Callable, Optional, Union

import mpmath
import mpmath.libmp as _libmp
import numpy as np
import sympy as sp

from ..core import codegen
from ..functions import registry
from . import symbolic

REF_VERSION = 5  # bump when the reference algorithm or the grid changes
BASE_PREC = 128
MAX_PREC = 1500  # enough for cancellation down to float64's smallest subnormal (2^-1074)
AGREE = mpmath.mpf(2) ** -75
_HINT_AGREE = 2.0 ** -20

ActLike = Union[str, registry.Activation]


def _act(act: ActLike) -> registry.Activation:
    return registry.get(act) if isinstance(act, str) else act


def param_value(act: registry.Activation, dtype: str, param: Optional[float] = None) -> Optional[float]:
    """The parameter exactly as a kernel of ``dtype`` receives it (None if parameterless)."""
    if not act.param:
        return None
    v = act.param_default if param is None else param
    return float(np.dtype(dtype).type(v))


# --------------------------------------------------------------------------------------------
# rounding an mpf to a dtype


@dataclass(frozen=True)
class _Fmt:
    bits: int  # significand bits including the hidden one
    emin: int  # exponent of the smallest normal
    maxval: float


_FMT = {
    "float32": _Fmt(24, -126, float(np.finfo(np.float32).max)),
    "float64": _Fmt(53, -1022, float(np.finfo(np.float64).max)),
}


def round_to(v, dtype: str) -> float:
    """``v`` (mpf) correctly rounded (to nearest, ties to even) to dtype, as a Python float."""
    f = _FMT[str(np.dtype(dtype))]
    t = v._mpf_
    if t == _libmp.fzero:
        return 0.0
    if t in (_libmp.finf, _libmp.fninf, _libmp.fnan):
        return float(v)
    _, man, exp, bc = t
    if exp + bc - 1 >= f.emin:  # normal range: round the significand to f.bits bits
        r = _libmp.to_float(_libmp.mpf_pos(t, f.bits, _libmp.round_nearest))
    else:  # subnormal range: round to a multiple of the smallest subnormal
        q = f.emin - (f.bits - 1)
        n = mpmath.nint(mpmath.ldexp(v, -q))
        r = float(mpmath.ldexp(n, q))
    if abs(r) > f.maxval:
        return math.copysign(math.inf, r)
    return r


def _resid(v, rd: float) -> float:
    """v - rd (rd a float near v), rounded to float64."""
    return _libmp.to_float(_libmp.mpf_sub(v._mpf_, _libmp.from_float(rd), 64, _libmp.round_nearest))


# --------------------------------------------------------------------------------------------
# the reference evaluator


class Evaluator:
    """The registry expression of one (activation, form) as an adaptive-precision function."""

    def __init__(self, act: registry.Activation, form: str, param: Optional[float]):
        expr, var = symbolic.form_expr(act, form)
        if expr is None:
            raise ValueError(f"{act.name} has no {form} expression")
        self.act, self.form, self.expr, self.var = act, form, expr, var
        self.param = param
        self.params = symbolic.param_symbols(act)
        self._fn = symbolic.mp_function(expr, var, self.params)
        self._np = sp.lambdify((var, *self.params), expr, modules="numpy")
        self._sub = expr.subs(act.symbol, sp.Rational(param)) if self.params else expr
        lo, hi = act.out_range
        self.range = tuple(sp.sympify(v).subs(act.symbol, sp.Rational(param)) if self.params else sp.sympify(v)
                           for v in (lo, hi))
        self._limits = {}

    def _call(self, xv, prec):
        with mpmath.workprec(prec):
            args = (mpmath.mpf(self.param),) if self.params else ()
            return self._fn(mpmath.mpf(xv), *args)

    def _at(self, xv, prec):
        try:
            return self._call(xv, prec)
        except ZeroDivisionError:
            # only a range end of dfdy gets here (1/(2y) at y = 0): approach from inside
            with mpmath.workprec(prec):
                lo, hi = (symbolic.to_mpf(v) for v in self.range)
                x0 = mpmath.mpf(xv)
                step = mpmath.ldexp(max(abs(x0), mpmath.mpf(1)), -(prec + 4000))
                inward = step if abs(x0 - lo) <= abs(x0 - hi) else -step
            return self._call(x0 + inward, prec)
        except (ValueError, TypeError, OverflowError):
            return mpmath.mpf("nan")

    def limit(self, sign: int):
        if sign not in self._limits:
            to = sp.oo if sign > 0 else -sp.oo
            try:
                L = symbolic.limit(self._sub, self.var, to)
                with mpmath.workprec(MAX_PREC):
                    self._limits[sign] = symbolic.to_mpf(L)
            except ValueError:
                # numeric: the value far out, if it has settled (two far points round alike)
                a, b = (self.value(sign * 10.0 ** k) for k in (200, 300))
                if round_to(a, "float64") == round_to(b, "float64"):
                    self._limits[sign] = b
                else:
                    self._limits[sign] = mpmath.inf * mpmath.sign(b) if abs(b) > abs(a) else b
        return self._limits[sign]

    def float64_values(self, xs: np.ndarray) -> np.ndarray:
        """The expression evaluated in plain float64 (NaN where that fails): only a hint."""
        try:
            with np.errstate(all="ignore"):
                args = (np.float64(self.param),) if self.params else ()
                v = np.asarray(self._np(np.asarray(xs, dtype=np.float64), *args), dtype=np.float64)
            return np.broadcast_to(v, np.shape(xs)).copy()
        except Exception:  # a construct NumPy cannot evaluate: no hints
            return np.full(np.shape(xs), np.nan)

    def value(self, xv: float, hint: float = math.nan):
        """R(x) as an mpf (good to well beyond float64 precision).

        ``hint`` is the expression evaluated in float64. Rounding errors grow with the same
        amplification at every precision, so if the 128-bit value agrees with the float64 one
        to 2^-20, the 128-bit value is good to about 2^-95 and is returned at once; otherwise
        the precision doubles until two evaluations agree to 2^-75 (1500 bits for a zero)."""
        if math.isnan(xv):
            return mpmath.mpf("nan")
        if math.isinf(xv):
            return self.limit(1 if xv > 0 else -1)
        prec = BASE_PREC
        prev = self._at(xv, prec)
        if (hint != 0 and math.isfinite(hint) and prev != 0 and mpmath.isfinite(prev)
                and abs(prev - hint) <= _HINT_AGREE * abs(prev)):
            return prev
        while True:
            if prev == 0 or prec >= MAX_PREC:
                return self._at(xv, MAX_PREC) if prec < MAX_PREC else prev
            prec = min(prec * 2, MAX_PREC)
            cur = self._at(xv, prec)
            if mpmath.isnan(cur) and mpmath.isnan(prev):
                return cur
            if mpmath.isinf(cur) or mpmath.isinf(prev):
                if cur == prev:
                    return cur
            elif cur != 0 and abs(cur - prev) <= AGREE * abs(cur):
                return cur
            prev = cur


# --------------------------------------------------------------------------------------------
# grids


def _with_neighbours(vals, dtype, k=2) -> np.ndarray:
    t = np.dtype(dtype).type
    v = np.asarray(vals, dtype=dtype)
    out = [v]
    lo, hi = v.copy(), v.copy()
    with np.errstate(over="ignore"):
        for _ in range(k):
            lo = np.nextafter(lo, t(-np.inf))
            hi = np.nextafter(hi, t(np.inf))
            out += [lo, hi]
    return np.concatenate(out)


def x_grid(act: ActLike, dtype: str, param: Optional[float] = None) -> np.ndarray:
    """Inputs for forward and dfdx: linear [-10, 10] (step 0.01), log-spaced magnitudes from
    the smallest subnormal to 1e30 (both signs), special values, and the neighbourhoods of
    the kinks/clamps and of the exp/log overflow and underflow thresholds of the dtype."""
    act = _act(act)
    dt = np.dtype(dtype)
    fi = np.finfo(dt)
    tiny_sub = float(fi.smallest_subnormal)
    p = param_value(act, dtype, param)
    mags = np.geomspace(tiny_sub, 1e30, 700)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, tiny_sub, 2 * tiny_sub, float(fi.tiny) - tiny_sub,
                float(fi.tiny), float(fi.max), float(fi.eps), 1e30, 1e10, 1e5]
    thresholds = [math.log(float(fi.max)), -math.log(float(fi.tiny)), -math.log(tiny_sub),
                  -math.log(float(fi.eps)), -0.5 * math.log(float(fi.eps)), 2 * math.log(float(fi.max))]
    around = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0, 40.0, 100.0] + thresholds + act.switches(p)
    pos = np.concatenate([
        mags.astype(dt),
        _with_neighbours(np.asarray(around, dtype=np.float64), dtype, k=2),
        _with_neighbours(np.asarray(specials[5:], dtype=np.float64), dtype, k=1),
    ])
    pos = pos[np.isfinite(pos) & (pos > 0)]
    lin = np.linspace(-10.0, 10.0, 2001).astype(dt)
    xs = np.concatenate([lin, pos, -pos, np.asarray(specials[:5], dtype=dt)])
    if act.domain == "positive":
        xs = xs[(xs > 0) | np.isnan(xs)]
    return _unique(xs)


def _unique(xs: np.ndarray) -> np.ndarray:
    """Sorted unique values; one NaN at the end, -0.0 and +0.0 both kept."""
    nan = xs[np.isnan(xs)][:1]
    finite = xs[~np.isnan(xs)]
    zeros = finite[finite == 0]
    rest = np.unique(finite[finite != 0])
    zs = []
    if np.any(zeros == 0) and np.any(np.signbit(zeros)):
        zs.append(np.asarray([-0.0], dtype=xs.dtype))
    if np.any(~np.signbit(zeros)):
        zs.append(np.asarray([0.0], dtype=xs.dtype))
    neg, posv = rest[rest < 0], rest[rest > 0]
    return np.concatenate([neg, *zs, posv, nan]).astype(xs.dtype)


def range_ends(act: ActLike, dtype: str, param: Optional[float] = None) -> list[float]:
    """The ends of f's range (where backprop's y lies), correctly rounded to ``dtype``."""
    ev = _evaluator(_act(act), "forward", str(np.dtype(dtype)), param)
    with mpmath.workprec(MAX_PREC):
        return [round_to(symbolic.to_mpf(v), dtype) for v in ev.range]


def y_grid(act: ActLike, dtype: str, param: Optional[float] = None) -> np.ndarray:
    """Inputs for dfdy: the forward function's correctly rounded outputs over the x grid
    (what backprop actually sees), plus the range ends and their inner neighbours, 999 evenly
    spaced points inside a bounded range, and NaN."""
    act = _act(act)
    fwd = reference(act, "forward", dtype, param=param)
    ys = fwd.value.astype(dtype)
    ends = range_ends(act, dtype, param)
    dt = np.dtype(dtype).type
    extra = [ends[0], ends[1], np.nan]
    if all(math.isfinite(e) for e in ends):  # every y inside a bounded range occurs as some f(x)
        extra += np.linspace(ends[0], ends[1], 1001)[1:-1].tolist()
    with np.errstate(over="ignore"):
        for e, toward in ((ends[0], np.inf), (ends[1], -np.inf)):
            v = dt(e)
            for _ in range(3):
                v = np.nextafter(v, dt(toward))
                extra.append(v)
    return _unique(np.concatenate([ys, np.asarray(extra, dtype=dtype)]))


def grid(act: ActLike, form: str, dtype: str, param: Optional[float] = None) -> np.ndarray:
    """The dense test grid of ``form`` for ``act`` (an array of ``dtype``)."""
    act = _act(act)
    if form == "dfdy":
        return y_grid(act, dtype, param)
    symbolic.form_expr(act, form)  # validates the form name
    return x_grid(act, dtype, param)


# --------------------------------------------------------------------------------------------
# reference values, cached


@dataclass(frozen=True)
class Reference:
    """R at each input: ``value`` is R rounded to the dtype (as float64), ``resid`` = R - value."""

    x: np.ndarray
    value: np.ndarray
    resid: np.ndarray
    dtype: str


_MEMORY: dict = {}
_EVALUATORS: dict = {}


def clear_memory_cache() -> None:
    _MEMORY.clear()
    _EVALUATORS.clear()


def _evaluator(act, form, dtype, param) -> Evaluator:
    p = param_value(act, dtype, param)
    expr, _ = symbolic.form_expr(act, form)
    key = (act.name, form, sp.srepr(expr), sp.srepr(act.out_range), p)
    ev = _EVALUATORS.get(key)
    if ev is None:
        ev = _EVALUATORS[key] = Evaluator(act, form, p)
    return ev


def _key(ev: Evaluator, dtype: str, xs: np.ndarray) -> str:
    h = hashlib.sha256()
    for part in (REF_VERSION, sp.srepr(ev.expr), sp.srepr(ev.var), sp.srepr(ev.range),
                 repr(ev.param), str(np.dtype(dtype)), mpmath.__version__, sp.__version__):
        h.update(repr(part).encode())
        h.update(b"\0")
    h.update(np.ascontiguousarray(xs).tobytes())
    return h.hexdigest()[:24]


def _disk_path(key: str):
    try:
        d = codegen.cache_dir() / "reference"
        d.mkdir(exist_ok=True)
        return d / f"{key}.npz"
    except OSError:
        return None


def compute_reference(ev: Evaluator, xs: np.ndarray, dtype: str) -> Reference:
    """Evaluate R at every point (no caching)."""
    value = np.empty(xs.shape, dtype=np.float64)
    resid = np.zeros(xs.shape, dtype=np.float64)
    hints = ev.float64_values(xs).tolist()
    for i, xv in enumerate(xs.tolist()):
        R = ev.value(xv, hints[i])
        rd = round_to(R, dtype)
        value[i] = rd
        if math.isfinite(rd):
            resid[i] = _resid(R, rd)
    return Reference(np.array(xs, dtype=dtype), value, resid, str(np.dtype(dtype)))


def reference(act: ActLike, form: str, dtype: str, xs: Optional[np.ndarray] = None,
              param: Optional[float] = None, cache: bool = True) -> Reference:
    """Reference values of ``form`` at ``xs`` (default: :func:`grid`), cached in memory and on
    disk, keyed by the expression, the parameter, the dtype and the inputs."""
    act = _act(act)
    dtype = str(np.dtype(dtype))
    if xs is None:
        xs = grid(act, form, dtype, param)
    xs = np.ascontiguousarray(xs, dtype=dtype)
    ev = _evaluator(act, form, dtype, param)
    key = _key(ev, dtype, xs)
    if key in _MEMORY:
        return _MEMORY[key]
    path = _disk_path(key) if cache else None
    ref = None
    if path is not None and path.exists():
        try:
            with np.load(path) as z:
                ref = Reference(z["x"], z["value"], z["resid"], dtype)
            if ref.x.shape != xs.shape:
                ref = None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # truncated or empty
            codegen.discard(path, e)
            ref = None
    if ref is None:
        ref = compute_reference(ev, xs, dtype)
        if path is not None:
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            try:
                np.savez(tmp, x=ref.x, value=ref.value, resid=ref.resid)
                os.replace(tmp, path)
            except OSError:
                pass
    if cache:
        _MEMORY[key] = ref
    return ref


# --------------------------------------------------------------------------------------------
# errors


def ulp_of(value: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at |value| (float64 array); the smallest subnormal at 0; the
    spacing below the largest finite value there (np.spacing would give inf)."""
    dt = np.dtype(dtype)
    v = np.abs(np.asarray(value, dtype=np.float64)).astype(dt)
    with np.errstate(over="ignore", invalid="ignore"):
        sp_ = np.spacing(v).astype(np.float64)
        below = (v - np.nextafter(v, dt.type(0))).astype(np.float64)
    sp_ = np.where(np.isinf(sp_) & np.isfinite(v), below, sp_)
    return np.where(v == 0, float(np.finfo(dt).smallest_subnormal), sp_)


def errors(r: np.ndarray, ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """(ulp error, absolute error) of results ``r`` against ``ref``, elementwise (float64)."""
    r = np.asarray(r, dtype=np.float64)
    R = ref.value
    with np.errstate(invalid="ignore", over="ignore"):
        absd = np.abs((r - R) - ref.resid)
        ulp = absd / ulp_of(R, ref.dtype)
    special = ~np.isfinite(R) | ~np.isfinite(r)
    same = (np.isnan(R) & np.isnan(r)) | (np.isinf(R) & (r == R))
    absd = np.where(special, np.where(same, 0.0, np.inf), absd)
    ulp = np.where(special, np.where(same, 0.0, np.inf), ulp)
    return ulp, absd


def passes(bound: registry.Bound, dtype: str, ulp: np.ndarray, absd: np.ndarray) -> np.ndarray:
    """Elementwise: within ``bound`` (ULP or absolute). ``bound.ulp == inf`` is "no ULP
    promise": only the absolute limit counts. Infinite errors never pass."""
    ok_ulp = ulp <= bound.ulp if math.isfinite(bound.ulp) else np.zeros(ulp.shape, bool)
    # abs is inf exactly for special-value mismatches (and differences beyond float64)
    return np.isfinite(absd) & (ok_ulp | (absd <= bound.abs_limit(dtype)))


# --------------------------------------------------------------------------------------------
# measuring implementations


def summarize(x: np.ndarray, r: np.ndarray, ref: Reference, bound: registry.Bound) -> dict:
    ulp, absd = errors(r, ref)
    ok = passes(bound, ref.dtype, ulp, absd)
    lim = bound.abs_limit(ref.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        # how far past the bound each point is (the looser of the two promises)
        ratio_ulp = ulp / bound.ulp if math.isfinite(bound.ulp) else np.full(ulp.shape, np.inf)
        ratio_abs = absd / lim if lim > 0 else np.where(absd > 0, np.inf, 0.0)
        badness = np.minimum(ratio_ulp, ratio_abs)
    fin = np.isfinite(absd)
    badness = np.where(fin & ~np.isnan(badness), badness, np.inf)
    i = int(np.argmax(badness)) if len(badness) else 0
    # the ULP error where the absolute promise does not cover the point (the meaningful one
    # for outputs reached by cancellation, whose ULP error is huge but irrelevant)
    beyond = ulp[fin & (absd > lim)]
    return dict(
        max_ulp=float(np.max(ulp)) if len(ulp) else 0.0,
        ulp_beyond_abs=float(np.max(beyond)) if len(beyond) else 0.0,
        max_abs=float(np.max(absd)) if len(absd) else 0.0,
        worst_x=float(x[i]) if len(x) else math.nan,
        worst_out=float(r[i]) if len(x) else math.nan,
        worst_ref=float(ref.value[i] + ref.resid[i]) if len(x) else math.nan,
        n_points=int(len(x)),
        n_fail=int(np.count_nonzero(~ok)),
        n_special_mismatch=int(np.count_nonzero(~fin)),
        bound_ulp=float(bound.ulp),
        bound_abs=float(lim),
        within_bound=bool(np.all(ok)),
    )


def run_call(call: Callable, x: np.ndarray, p) -> np.ndarray:
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        call(x, p, out)
    return out


def measure_call(act: ActLike, form: str, dtype: str, call: Callable, bound: registry.Bound,
                 param: Optional[float] = None, xs: Optional[np.ndarray] = None) -> dict:
    """Accuracy of an array function ``call(x, p, out)`` for ``form`` of ``act``."""
    act = _act(act)
    ref = reference(act, form, dtype, xs=xs, param=param)
    pv = param_value(act, dtype, param)
    p = np.dtype(dtype).type(0.0 if pv is None else pv)
    r = run_call(call, ref.x, p)
    return summarize(ref.x, r, ref, bound)


def measure(kernel, form: Optional[str] = None, xs: Optional[np.ndarray] = None) -> dict:
    """Accuracy of a :class:`mathbench.functions.kernels.Kernel` on its grid, against its declared Bound.

    Returns max_ulp, max_abs, worst_x (the point furthest past the bound, or closest to it),
    n_points, bound_ulp, bound_abs, within_bound (plus worst_out, worst_ref, n_fail)."""
    form = form or kernel.form
    act = registry.get(kernel.function)
    bound = act.impl(kernel.impl).bound(form, kernel.dtype)
    param = float(kernel.param) if act.param else None
    return measure_call(act, form, kernel.dtype, kernel.call, bound, param=param, xs=xs)


_GENERIC = {}


def _generic_numba_loop(parallel: bool):
    """An uncached array loop taking the scalar function as an argument (for fakes and
    mutated copies whose scalars are not in the generated kernel module)."""
    if parallel not in _GENERIC:
        import numba

        def loop(fn, x, p, out):
            for i in numba.prange(x.shape[0]):
                out[i] = fn(x[i], p)

        _GENERIC[parallel] = numba.njit(parallel=parallel, error_model="numpy")(loop)
    return _GENERIC[parallel]


def impl_call(act: registry.Activation, impl: registry.Impl, form: str, dtype: str,
              parallel: bool = False) -> Callable:
    """``call(x, p, out)`` for one form of an implementation; the cached generated kernel when
    the implementation is the registry's own, a generic loop otherwise."""
    fn = impl.fn(form)
    if fn is None:
        raise ValueError(f"{act.name}:{impl.name} has no {form} form")
    if impl.backend == "numba":
        from ..functions import kernels

        real = registry.REGISTRY.get(act.name)
        if real is not None and real.impls.get(impl.name) is impl:
            return kernels.get(act.name, impl.name, form, dtype, parallel).call
        loop = _generic_numba_loop(parallel)
        return lambda x, p, out: loop(fn, x, p, out)
    if impl.backend == "torch":
        from ..functions import kernels

        return kernels._torch_call(fn)
    return fn


def measure_impl(act: ActLike, impl, form: str, dtype: str, param: Optional[float] = None,
                 parallel: bool = False, xs: Optional[np.ndarray] = None) -> dict:
    """Accuracy of ``impl`` (an Impl or its name) of ``act`` (an Activation, possibly a
    mutated copy) for one form and dtype, against the Impl's declared Bound."""
    act = _act(act)
    impl = act.impl(impl) if isinstance(impl, str) else impl
    call = impl_call(act, impl, form, dtype, parallel)
    return measure_call(act, form, dtype, call, impl.bound(form, dtype), param=param, xs=xs)


def reference_values(act: ActLike, form: str, dtype: str, xs, param: Optional[float] = None) -> Reference:
    """Uncached reference at arbitrary points (property-based tests)."""
    act = _act(act)
    xs = np.ascontiguousarray(np.asarray(xs, dtype=dtype))
    return compute_reference(_evaluator(act, form, str(np.dtype(dtype)), param), xs, dtype)


def table(functions=registry.CORE, dtypes=registry.DTYPES, backends=("numba", "numpy")) -> list[dict]:
    """One row per (function, implementation, form, dtype): the measured accuracy."""
    rows = []
    for name in functions:
        act = registry.get(name)
        for impl in act.impls.values():
            if impl.backend not in backends:
                continue
            for form in registry.FORMS:
                if impl.fn(form) is None or symbolic.form_expr(act, form)[0] is None:
                    continue
                for dtype in dtypes:
                    m = measure_impl(act, impl, form, dtype)
                    rows.append(dict(function=name, impl=impl.name, form=form, dtype=dtype, **m))
    return rows


if __name__ == "__main__":  # pragma: no cover - a quick look: python -m mathbench.accuracy.measure
    names = sys.argv[1:] or list(registry.CORE)
    for row in table(names):
        print(f"{row['function']:10s} {row['impl']:15s} {row['form']:8s} {row['dtype']:8s} "
              f"ulp {row['max_ulp']:10.3g} abs {row['max_abs']:10.3g}  bound ({row['bound_ulp']:g} ulp,"
              f" {row['bound_abs']:.3g})  {'ok' if row['within_bound'] else 'FAIL'} worst x={row['worst_x']:.9g}")
