"""The activation registry: the single source of truth for every function the suite knows.

Each :class:`Activation` holds, for one mathematical function, its SymPy expressions (f, f'(x),
the backprop form g(y) = f'(f^-1(y)), the antiderivative, the output range), its parameter, and
its implementations. Each :class:`Impl` holds the code for the three *forms* (``forward``,
``dfdx``, ``dfdy``) and the accuracy :class:`Bound` it promises per form.

Kernels, accuracy tables, the symbolic verifier and the LSTM all read this module; adding an
activation is one ``_add(Activation(...))`` call below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import sympy as sp

from ..core.errors import UnknownName  # noqa: F401  (raised here; registry.UnknownName stays)
from . import libmvec as mv
from . import numpy_impls as npi
from . import ref64 as r64
from . import scalars as s
from . import simd as v
from . import torch_impls as ti

FORMS = ("forward", "dfdx", "dfdy")
DTYPES = ("float32", "float64")
BACKENDS = ("numba", "numpy", "torch")

x, y = sp.symbols("x y", real=True)


@dataclass(frozen=True)
class Bound:
    """Accuracy promise: at every point, the error is within ``ulp`` units in the last place
    *or* within an absolute error of ``max(abs, abs_eps * eps(dtype))``. The absolute part covers
    outputs near zero reached by cancellation (1 - y^2 near |y| = 1), where a relative (ULP)
    promise is meaningless. ``ulp=inf`` means the promise is absolute only (approximations of
    another function); special values (NaN, +-inf, signed limits) must always match."""

    ulp: float = 4.0
    abs_eps: float = 0.0
    abs: float = 0.0

    def abs_limit(self, dtype) -> float:
        return max(self.abs, self.abs_eps * float(np.finfo(np.dtype(dtype)).eps))


@dataclass(frozen=True)
class Impl:
    """One implementation of an activation's three forms.

    numba: jitted scalars ``f(x, p) -> float``; numpy/torch: array functions ``f(x, p, out)``.
    ``libm`` marks Numba code that calls scalar libm functions (tanh, exp, log, pow): without
    SVML those loops cannot vectorize. ``bounds[form]`` is a Bound or {dtype: Bound}.
    """

    name: str
    backend: str
    forward: Callable
    dfdx: Callable
    dfdy: Optional[Callable]
    bounds: dict
    libm: bool = False
    note: str = ""

    def fn(self, form: str) -> Optional[Callable]:
        return getattr(self, form)

    def bound(self, form: str, dtype: str) -> Bound:
        b = self.bounds.get(form, self.bounds.get("default", Bound()))
        return b[dtype] if isinstance(b, dict) else b


@dataclass(frozen=True)
class Activation:
    name: str
    description: str
    group: str  # "core" (the four the default run measures), "seed" (the seed's comparison set), "approx"
    f: sp.Expr  # in x (and the parameter symbol)
    dfdx: sp.Expr  # f'(x), as the registry states it (the verifier checks it against diff(f, x))
    dfdy: Optional[sp.Expr]  # g(y) with g(f(x)) == f'(x); None where f is not invertible
    antiderivative: Optional[sp.Expr]
    out_range: tuple  # (lim -inf, lim +inf) as SymPy expressions
    impls: dict = field(default_factory=dict)
    param: Optional[str] = None  # name of the SymPy symbol (positive) for the parameter
    param_default: float = 0.0
    domain: str = "real"  # "real", or "positive" (sqrt, log): inputs are drawn from |normal|
    # form -> a NumPy function (x, param) written stably enough to be evaluated in float64 (or
    # longdouble) as the reference of exhaustive accuracy checks (see mathbench.functions.ref64)
    ref64: dict = field(default_factory=dict)
    # the NumPy implementation `speedup_vs_numpy` is paired against: the fastest NumPy code that
    # keeps the declared bound (for sigmoid the usual 1/(1+np.exp(-x)), not the stable form)
    numpy_baseline: str = "numpy"
    # where f or f' is not smooth (finite differences must keep away), both signs listed
    kinks: tuple = ()
    # where an implementation switches branch or clamps (accuracy grids sample around them, both
    # signs): a function of the parameter value (1.0 for entries without one) -> tuple of floats
    switch_points: Callable[[float], tuple] = lambda a: ()

    @property
    def symbol(self) -> Optional[sp.Symbol]:
        return sp.Symbol(self.param, positive=True) if self.param else None

    def subs_param(self, expr, value=None):
        """``expr`` with the parameter replaced by ``value`` (default: the entry's default)."""
        if expr is None or not self.param:
            return expr
        v = self.param_default if value is None else value
        return expr.subs(self.symbol, sp.nsimplify(v))

    def switches(self, p: Optional[float] = None) -> list[float]:
        """``switch_points`` at parameter ``p`` (the default where None)."""
        a = p if p is not None else (self.param_default if self.param else 1.0)
        return list(self.switch_points(a))

    def impl(self, name: str) -> Impl:
        try:
            return self.impls[name]
        except KeyError:
            raise KeyError(
                f"unknown implementation {name!r} for {self.name}; valid: {', '.join(self.impls)}"
            ) from None

    @property
    def has_backprop_form(self) -> bool:
        return self.dfdy is not None


REGISTRY: dict[str, Activation] = {}
CORE = ("tanh", "isru", "softplus", "sigmoid")
DEFAULT = CORE + ("exp", "isru_sigmoid")  # what `python -m mathbench` measures: exp for the vector-exp rows,
# isru_sigmoid as the ISRU candidate in the sigmoid (gate) slot


def _add(act: Activation) -> None:
    assert act.name not in REGISTRY, act.name
    REGISTRY[act.name] = act


def _numba(f, dx, dy, libm=False, name="numba", note="", **bounds) -> Impl:
    return Impl(name, "numba", f, dx, dy, bounds or {"default": EXACTISH}, libm, note)


def _numpy(f, dx, dy, note="", **bounds) -> Impl:
    return Impl("numpy", "numpy", f, dx, dy, bounds or {"default": EXACTISH}, False, note)


def _torch(f, dx, dy, note="", **bounds) -> Impl:
    return Impl("torch", "torch", f, dx, dy, bounds or {"default": EXACTISH}, False, note)


def _impls(*impls: Impl) -> dict:
    return {i.name: i for i in impls}


# Accuracy promises used below (checked by tests against mpmath).
EXACTISH = Bound(ulp=1)  # one correctly rounded operation (+, -, *, /, sqrt, select)
LIBM = Bound(ulp=2)  # glibc's documented worst case for tanh/exp/log/log1p/expm1
COMPOSED = Bound(ulp=4, abs_eps=2)  # a few rounded operations
# (1 + a x^2)^(-3/2) as r*r*r, r = 1/sqrt(1 + a x^2): r carries <= 3.5u relative error, cubing
# triples it, plus two products: <= 12.5u, i.e. 6.25-12.5 ulp (first order). Measured max 7.0
# ulp over every float32 input, 7.3 ulp over 2.4e7 random float64 inputs.
RCUBE = Bound(ulp=10, abs_eps=2)
CANCEL = Bound(ulp=4, abs_eps=4)  # 1 - t^2 style: small outputs reached by cancellation
# ISRU through the reciprocal square-root estimate (2^-14 relative with AVX-512's vrsqrt14ps,
# 2^-12 with vrsqrtps) refined by one Newton step: about 2^-23 relative, a few ulp.
ISRU_RSQRT = Bound(ulp=3, abs_eps=2)
ISRU_RSQRT_DX = Bound(ulp=12, abs_eps=2)


def _by_dtype(f32: float, f64: float) -> dict:
    """A pure ULP bound per dtype (numba_simd: float32 from every input, float64 from a 1e8-point
    grid plus every range-reduction boundary; ``python -m mathbench accuracy --exhaustive``)."""
    return {"float32": Bound(ulp=f32), "float64": Bound(ulp=f64)}


def _libmvec(f, dx, dy, **bounds) -> tuple:
    """glibc's vector math functions called from Numba (x86_64 Linux with AVX2 only: an empty
    tuple elsewhere, so the implementation is simply absent)."""
    if not mv.available():
        return ()
    return (_numba(f, dx, dy, name="numba_libmvec", note="glibc libmvec AVX2 vector functions "
                   "(_ZGVdN8v_*/_ZGVdN4v_*) called from a Numba loop", **bounds),)


def _simd(f, dx, dy, **bounds) -> Impl:
    return _numba(f, dx, dy, name="numba_simd", note="accurate vectorizable formula (mathbench.functions.simd: "
                  "range reduction, polynomial, exponent bits; no libm call)", **bounds)

# ---------------------------------------------------------------------------------------------
# The four functions the default run measures.

_add(Activation(
    "tanh", "hyperbolic tangent", "core",
    f=sp.tanh(x), dfdx=1 - sp.tanh(x) ** 2, dfdy=1 - y ** 2,
    antiderivative=sp.log(sp.cosh(x)), out_range=(-1, 1),
    ref64=dict(forward=r64.tanh, dfdx=r64.tanh_dx, dfdy=r64.tanh_dy),
    # the clamp (Eigen's 7.9074) and the small-|x| branch of the rational and libm forms; numba_simd:
    # polynomial/exp split (1.0 float32, 0.625 float64), exp argument clamp (20)
    switch_points=lambda a: (_TANH_CLAMP, _TANH_SMALL, 7.90531110763549805, 0.5493061443340549, 19.06154746539849,
                             22.0, 1.0, 0.625, 20.0),
    impls=_impls(
        _numba(s.tanh_libm, s.tanh_libm_dx, s.tanh_dy, libm=True, note="math.tanh (scalar libm call)",
               # glibc: tanhf 2.19 ulp at x = 0.2333 (every float32), tanh 2.17 ulp on the 1e8-point grid
               forward=Bound(ulp=2.5), dfdx=CANCEL, dfdy=CANCEL),
        _simd(v.tanh, v.tanh_dx, s.tanh_dy, forward=_by_dtype(1.5, 2), dfdx=_by_dtype(3, 3), dfdy=CANCEL),
        *_libmvec(mv.TANH, mv.TANH_DFDX_EXP, s.tanh_dy, forward=_by_dtype(1.5, 3), dfdx=_by_dtype(6, 6),
                  dfdy=CANCEL),
        _numba(s.tanh_rational, s.tanh_rational_dx, s.tanh_dy, name="numba_rational",
               note="Eigen's 9/8 rational approximation, float32 coefficients (vectorizable)",
               # float32, every input checked: max abs error 3.05e-7 forward with FMA, 3.66e-7
               # (3.1 eps) without; the clamp alone costs 2*exp(-2*7.9074) = 2.7e-7 (float32 tanh
               # is not +-1 until |x| = 9.01). dfdx = 1 - t^2: at most 2*(4 eps) + eps; measured
               # 6.1e-7. float64: 2.7e-7 forward, 5.4e-7 dfdx (the clamp).
               forward={"float32": Bound(ulp=4, abs_eps=4), "float64": Bound(ulp=math.inf, abs=1e-6)},
               dfdx={"float32": Bound(ulp=4, abs_eps=9), "float64": Bound(ulp=math.inf, abs=2e-6)}, dfdy=CANCEL),
        _numpy(npi.tanh, npi.tanh_dx, npi.tanh_dy, note="np.tanh", forward=LIBM, dfdx=CANCEL, dfdy=CANCEL),
        _torch(ti.tanh, ti.tanh_dx, ti.tanh_dy, note="torch.tanh",
               forward=COMPOSED, dfdx=CANCEL, dfdy=CANCEL),
    ),
))

_a = sp.Symbol("alpha", positive=True)
_TANH_CLAMP, _TANH_SMALL = 7.90738964080810547, 0.0004


def _isru_clamp(a):  # the scalars clamp |x| at 2^30/sqrt(a), where ISRU equals its limit in double
    return 2.0 ** 30 / math.sqrt(a) if a > 0 else 2.0 ** 30


_add(Activation(
    "isru", "inverse square root unit x/sqrt(1+alpha*x^2)", "core",
    f=x / sp.sqrt(1 + _a * x ** 2), dfdx=(1 + _a * x ** 2) ** sp.Rational(-3, 2),
    dfdy=(1 - _a * y ** 2) ** sp.Rational(3, 2),
    antiderivative=sp.sqrt(1 + _a * x ** 2) / _a, out_range=(-1 / sp.sqrt(_a), 1 / sp.sqrt(_a)),
    param="alpha", param_default=1.0,
    ref64=dict(forward=r64.isru, dfdx=r64.isru_dx, dfdy=r64.isru_dy),
    switch_points=lambda a: (_isru_clamp(a), 1.0 / math.sqrt(a)),
    impls=_impls(
        _numba(s.isru, s.isru_dx, s.isru_dy, note="x/sqrt(1+a*x*x), r*r*r, t*sqrt(t) (vectorizable)",
               forward=COMPOSED, dfdx=RCUBE, dfdy=CANCEL),
        _numba(s.isru_rsqrt, s.isru_rsqrt_dx, s.isru_dy, name="numba_rsqrt",
               note="x * rsqrt(1+a*x*x): the hardware reciprocal square-root estimate plus one "
                    "Newton step (fastmath arcp/afn on that one operation)",
               forward=ISRU_RSQRT, dfdx=ISRU_RSQRT_DX, dfdy=CANCEL),
        _numba(s.isru, s.isru_pow_dx, s.isru_pow_dy, libm=True, name="numba_pow",
               note="derivatives as written: (1+a*x^2)**-1.5 and (1-a*y^2)**1.5 (libm pow)",
               forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
        _numpy(npi.isru, npi.isru_dx, npi.isru_dy, note="x / np.sqrt(1 + a*x*x), in place",
               forward=COMPOSED, dfdx=RCUBE, dfdy=CANCEL),
        _torch(ti.isru, ti.isru_dx, ti.isru_dy, note="x * torch.rsqrt(1 + a*x*x)",
               forward=COMPOSED, dfdx=RCUBE, dfdy=CANCEL),
    ),
))

_add(Activation(
    "softplus", "log(1 + exp(x))", "core",
    f=sp.log(1 + sp.exp(x)), dfdx=1 / (1 + sp.exp(-x)), dfdy=1 - sp.exp(-y),
    antiderivative=-sp.polylog(2, -sp.exp(x)), out_range=(0, sp.oo),
    ref64=dict(forward=r64.softplus, dfdx=r64.sigmoid, dfdy=r64.softplus_dy),
    switch_points=lambda a: (33.27106466687737, 36.7368005696771, 15.942385152878742),
    impls=_impls(
        _numba(s.softplus, s.sigmoid_exp, s.softplus_dy, libm=True,
               note="max(x,0) + log1p(exp(-|x|))", forward=COMPOSED, dfdx=COMPOSED, dfdy=COMPOSED),
        _simd(v.softplus, v.sigmoid, v.softplus_dy, forward=_by_dtype(2.5, 2), dfdx=_by_dtype(2.5, 2),
              dfdy=_by_dtype(2, 2)),
        # float64 forward: 4.36 ulp on the 1e8-point grid (4 was declared from a sample)
        *_libmvec(mv.SOFTPLUS, mv.SIGMOID, v.softplus_dy, forward=_by_dtype(4, 5), dfdx=_by_dtype(4, 4.5),
                  dfdy=_by_dtype(2, 2)),
        _numpy(npi.softplus, npi.softplus_dx, npi.softplus_dy, note="np.logaddexp(0, x)",
               forward=COMPOSED, dfdx=COMPOSED, dfdy=COMPOSED),
        _torch(ti.softplus, ti.sigmoid, ti.softplus_dy, note="torch.nn.functional.softplus",
               forward=COMPOSED, dfdx=COMPOSED, dfdy=COMPOSED),
    ),
))

_RATIONAL_SIGMOID = Bound(ulp=math.inf, abs=4e-7)  # abs error of the rational tanh, halved, plus rounding
_add(Activation(
    "sigmoid", "logistic 1/(1+exp(-x))", "core",
    f=1 / (1 + sp.exp(-x)), dfdx=sp.exp(-x) / (1 + sp.exp(-x)) ** 2, dfdy=y * (1 - y),
    antiderivative=sp.log(1 + sp.exp(x)), out_range=(0, 1),
    ref64=dict(forward=r64.sigmoid, dfdx=r64.sigmoid_dx, dfdy=r64.sigmoid_dy), numpy_baseline="numpy_expr",
    switch_points=lambda a: (2 * _TANH_CLAMP, 2 * _TANH_SMALL, 36.7368005696771, 16.635532333438686),
    impls=_impls(
        _numba(s.sigmoid_exp, s.sigmoid_exp_dx, s.sigmoid_dy, libm=True,
               note="stable exp(-|x|) form", forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
        _simd(v.sigmoid, v.sigmoid_dx, s.sigmoid_dy, forward=_by_dtype(2.5, 2), dfdx=_by_dtype(3, 3),
              dfdy=CANCEL),
        *_libmvec(mv.SIGMOID, mv.SIGMOID_DFDX, s.sigmoid_dy, forward=_by_dtype(4, 4.5), dfdx=_by_dtype(6, 6),
                  dfdy=CANCEL),
        _numba(s.sigmoid_rational, s.sigmoid_rational_dx, s.sigmoid_dy, name="numba_rational",
               note="0.5 + 0.5*tanh_rational(x/2) (vectorizable)",
               forward={"float32": _RATIONAL_SIGMOID, "float64": Bound(ulp=math.inf, abs=6e-7)},
               dfdx={"float32": _RATIONAL_SIGMOID, "float64": Bound(ulp=math.inf, abs=6e-7)},
               dfdy=CANCEL),
        _numpy(npi.sigmoid, npi.sigmoid_dx, npi.sigmoid_dy, note="stable exp(-|x|) form",
               forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
        Impl("numpy_expr", "numpy", npi.sigmoid_expr, npi.sigmoid_dx, npi.sigmoid_dy,
             {"forward": COMPOSED, "dfdx": COMPOSED, "dfdy": CANCEL},
             note="1/(1+np.exp(-x)) as written (0 instead of tiny values below -88.7 in float32); "
                  "f'(x), g(y) as numpy"),
        _torch(ti.sigmoid, ti.sigmoid_dx, ti.sigmoid_dy, note="torch.sigmoid",
               forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
    ),
))

# ---------------------------------------------------------------------------------------------
# The seed project's relative-cost set. plus/minus/mult/div take a runtime constant c (so the
# compiler cannot fold it); their "derivatives" write a constant and measure a store loop.

_c = sp.Symbol("c", positive=True)


def _seed(name, desc, f, dfdx, dfdy, F, rng, nb, np_, libm=False, param=None, default=0.0,
          domain="real", bounds=None, extra=(), ref64=None, np_bounds=None, kinks=(), switch_points=lambda a: ()):
    bounds = bounds or {"default": EXACTISH}
    _add(Activation(
        name, desc, "seed", f=f, dfdx=dfdx, dfdy=dfdy, antiderivative=F, out_range=rng,
        param=param, param_default=default, domain=domain, ref64=ref64 or {}, kinks=kinks, switch_points=switch_points,
        impls=_impls(_numba(*nb, libm=libm, **bounds), *extra, _numpy(*np_, **(np_bounds or bounds))),
    ))


_seed("plus", "x + c (the baseline of the relative-cost table)", x + _c, sp.Integer(1), sp.Integer(1),
      x ** 2 / 2 + _c * x, (-sp.oo, sp.oo), (s.plus, s.one, s.one), (npi.plus, npi.one, npi.one),
      param="c", default=1.0)
_seed("minus", "x - c", x - _c, sp.Integer(1), sp.Integer(1), x ** 2 / 2 - _c * x, (-sp.oo, sp.oo),
      (s.minus, s.one, s.one), (npi.minus, npi.one, npi.one), param="c", default=1.0)
_seed("mult", "x * c", _c * x, _c, _c, _c * x ** 2 / 2, (-sp.oo, sp.oo),
      (s.mult, s.const_p, s.const_p), (npi.mult, npi.const_p, npi.const_p), param="c", default=1.5)
_seed("div", "x / c", x / _c, 1 / _c, 1 / _c, x ** 2 / (2 * _c), (-sp.oo, sp.oo),
      (s.div, s.inv_p, s.inv_p), (npi.div, npi.inv_p, npi.inv_p), param="c", default=3.0)
_seed("sqrt", "square root (x > 0)", sp.sqrt(x), 1 / (2 * sp.sqrt(x)), 1 / (2 * y),
      2 * x ** sp.Rational(3, 2) / 3, (0, sp.oo), (s.sqrt, s.sqrt_dx, s.sqrt_dy),
      (npi.sqrt, npi.sqrt_dx, npi.sqrt_dy), domain="positive",
      bounds={"forward": EXACTISH, "dfdx": COMPOSED, "dfdy": EXACTISH})
_seed("log", "natural logarithm (x > 0)", sp.log(x), 1 / x, sp.exp(-y), x * sp.log(x) - x,
      (-sp.oo, sp.oo), (s.log, s.inverse, s.exp_neg), (npi.log, npi.inverse, npi.exp_neg), libm=True,
      domain="positive", bounds={"forward": LIBM, "dfdx": EXACTISH, "dfdy": LIBM})
_seed("exp", "exponential", sp.exp(x), sp.exp(x), y, sp.exp(x), (0, sp.oo),
      (s.exp, s.exp, s.identity), (npi.exp, npi.exp, npi.identity), libm=True,
      bounds={"forward": LIBM, "dfdx": LIBM, "dfdy": EXACTISH},
      # NumPy's float32 SIMD exp: 2.54 ulp at x = -62.03 when every float32 is checked
      np_bounds={"forward": _by_dtype(3, 2), "dfdx": _by_dtype(3, 2), "dfdy": EXACTISH},
      extra=[_simd(v.exp, v.exp, s.identity, forward=_by_dtype(1.5, 2), dfdx=_by_dtype(1.5, 2), dfdy=EXACTISH),
             *_libmvec(mv.EXP, mv.EXP, s.identity, forward=_by_dtype(3, 3.5), dfdx=_by_dtype(3, 3.5),
                       dfdy=EXACTISH)],
      ref64=dict(forward=r64.exp, dfdx=r64.exp, dfdy=r64.identity),
      # overflow to inf and underflow to 0 in float32/float64; numba_simd's argument clamps
      switch_points=lambda a: (88.72283905206835, 89.0, 103.97207708399179, 104.0, 709.782712893384, 710.0,
                               745.1332191019412, 746.0))
_seed("relu", "max(x, 0)", sp.Piecewise((x, x > 0), (0, True)),
      sp.Piecewise((1, x > 0), (0, True)), sp.Piecewise((1, y > 0), (0, True)),
      sp.Piecewise((x ** 2 / 2, x > 0), (0, True)), (0, sp.oo),
      (s.relu, s.relu_dx, s.relu_dx), (npi.relu, npi.relu_dx, npi.relu_dx), kinks=(0.0,))
_sl = sp.Symbol("slope", positive=True)
_add(Activation(
    "leaky_relu", "x for x >= 0, slope*x below", "seed",
    f=sp.Piecewise((x, x >= 0), (_sl * x, True)), dfdx=sp.Piecewise((1, x > 0), (_sl, True)),
    dfdy=sp.Piecewise((1, y > 0), (_sl, True)),
    antiderivative=sp.Piecewise((x ** 2 / 2, x >= 0), (_sl * x ** 2 / 2, True)),
    out_range=(-sp.oo, sp.oo), param="slope", param_default=0.01, kinks=(0.0,),
    impls=_impls(_numba(s.leaky_relu, s.leaky_relu_dx, s.leaky_relu_dx),
                 _numpy(npi.leaky_relu, npi.leaky_relu_dx, npi.leaky_relu_dx)),
))
_add(Activation(
    "elu", "x for x > 0, alpha*(exp(x)-1) below", "seed",
    f=sp.Piecewise((x, x > 0), (_a * (sp.exp(x) - 1), True)),
    dfdx=sp.Piecewise((1, x > 0), (_a * sp.exp(x), True)), dfdy=sp.Piecewise((1, y > 0), (y + _a, True)),
    antiderivative=sp.Piecewise((x ** 2 / 2, x > 0), (_a * (sp.exp(x) - x) - _a, True)),
    out_range=(-_a, sp.oo), param="alpha", param_default=1.0, kinks=(0.0,),
    switch_points=lambda a: (36.7368005696771, 16.635532333438686),
    impls=_impls(_numba(s.elu, s.elu_dx, s.elu_dy, libm=True, forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
                 _numpy(npi.elu, npi.elu_dx, npi.elu_dy, forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL)),
))
_add(Activation(
    "softsign", "x / (1 + |x|)", "seed",
    f=x / (1 + sp.Abs(x)), dfdx=1 / (1 + sp.Abs(x)) ** 2, dfdy=(1 - sp.Abs(y)) ** 2,
    antiderivative=sp.Abs(x) - sp.log(1 + sp.Abs(x)), out_range=(-1, 1),
    kinks=(0.0,), switch_points=lambda a: (2.0 ** 60,),
    impls=_impls(_numba(s.softsign, s.softsign_dx, s.softsign_dy, forward=COMPOSED, dfdx=COMPOSED, dfdy=CANCEL),
                 _numpy(npi.softsign, npi.softsign_dx, npi.softsign_dy, forward=COMPOSED, dfdx=COMPOSED,
                        dfdy=CANCEL)),
))

# ---------------------------------------------------------------------------------------------
# Cheap approximations a user might pick instead of tanh/sigmoid.

_add(Activation(
    "hard_tanh", "clip(x, -1, 1)", "approx",
    f=sp.Piecewise((-1, x < -1), (1, x > 1), (x, True)),
    dfdx=sp.Piecewise((1, sp.Abs(x) < 1), (0, True)), dfdy=sp.Piecewise((1, sp.Abs(y) < 1), (0, True)),
    antiderivative=sp.Piecewise((-x - sp.Rational(1, 2), x < -1), (x - sp.Rational(1, 2), x > 1),
                                (x ** 2 / 2, True)),
    out_range=(-1, 1), kinks=(-1.0, 1.0), switch_points=lambda a: (1.0,),
    impls=_impls(_numba(s.hard_tanh, s.hard_tanh_dx, s.hard_tanh_dx),
                 _numpy(npi.hard_tanh, npi.hard_tanh_dx, npi.hard_tanh_dx)),
))
_add(Activation(
    "hard_sigmoid", "clip(x/6 + 1/2, 0, 1) (torch.nn.Hardsigmoid)", "approx",
    f=sp.Piecewise((0, x < -3), (1, x > 3), (x / 6 + sp.Rational(1, 2), True)),
    dfdx=sp.Piecewise((sp.Rational(1, 6), sp.Abs(x) < 3), (0, True)),
    dfdy=sp.Piecewise((sp.Rational(1, 6), (y > 0) & (y < 1)), (0, True)),
    antiderivative=sp.Piecewise((0, x < -3), (x, x > 3),
                                (x ** 2 / 12 + x / 2 + sp.Rational(3, 4), True)),
    out_range=(0, 1), kinks=(-3.0, 3.0), switch_points=lambda a: (3.0,),
    impls=_impls(_numba(s.hard_sigmoid, s.hard_sigmoid_dx, s.hard_sigmoid_dy, forward=COMPOSED),
                 _numpy(npi.hard_sigmoid, npi.hard_sigmoid_dx, npi.hard_sigmoid_dy, forward=COMPOSED)),
))
_add(Activation(
    "isru_sigmoid", "1/2 + isru(x/2)/2: a sigmoid from ISRU, slope 1/4 at 0 like the logistic", "approx",
    f=sp.Rational(1, 2) + x / (2 * sp.sqrt(4 + _a * x ** 2)), dfdx=2 / (4 + _a * x ** 2) ** sp.Rational(3, 2),
    dfdy=(1 - _a * (2 * y - 1) ** 2) ** sp.Rational(3, 2) / 4,
    antiderivative=x / 2 + sp.sqrt(4 + _a * x ** 2) / (2 * _a),
    out_range=(sp.Rational(1, 2) - 1 / (2 * sp.sqrt(_a)), sp.Rational(1, 2) + 1 / (2 * sp.sqrt(_a))),
    param="alpha", param_default=1.0,
    ref64=dict(forward=r64.isru_sigmoid, dfdx=r64.isru_sigmoid_dx, dfdy=r64.isru_sigmoid_dy),
    switch_points=lambda a: (2 * _isru_clamp(a),),
    impls=_impls(
        _numba(s.isru_sigmoid, s.isru_sigmoid_dx, s.isru_sigmoid_dy, forward=COMPOSED, dfdx=RCUBE,
               dfdy=CANCEL),
        _numpy(npi.isru_sigmoid, npi.isru_sigmoid_dx, npi.isru_sigmoid_dy, forward=COMPOSED, dfdx=RCUBE,
               dfdy=CANCEL)),
))
_add(Activation(
    "isrlu", "x for x >= 0, isru(x) below (inverse square root linear unit)", "approx",
    f=sp.Piecewise((x, x >= 0), (x / sp.sqrt(1 + _a * x ** 2), True)),
    dfdx=sp.Piecewise((1, x >= 0), ((1 + _a * x ** 2) ** sp.Rational(-3, 2), True)),
    dfdy=sp.Piecewise((1, y >= 0), ((1 - _a * y ** 2) ** sp.Rational(3, 2), True)),
    antiderivative=sp.Piecewise((x ** 2 / 2, x >= 0), ((sp.sqrt(1 + _a * x ** 2) - 1) / _a, True)),
    out_range=(-1 / sp.sqrt(_a), sp.oo), param="alpha", param_default=1.0, kinks=(0.0,),
    switch_points=lambda a: (_isru_clamp(a),),
    impls=_impls(
        _numba(s.isrlu, s.isrlu_dx, s.isrlu_dy, forward=COMPOSED, dfdx=RCUBE, dfdy=CANCEL),
        _numpy(npi.isrlu, npi.isrlu_dx, npi.isrlu_dy, forward=COMPOSED, dfdx=RCUBE, dfdy=CANCEL)),
))


# ---------------------------------------------------------------------------------------------
# look-ups


def get(name: str) -> Activation:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownName(f"unknown function {name!r}; valid: {', '.join(REGISTRY)}") from None


def all_impl_names() -> list[str]:
    return sorted({i for a in REGISTRY.values() for i in a.impls})


def resolve(spec: str, backend: str = "numba") -> tuple[Activation, Impl]:
    """``"tanh"`` or ``"tanh:numba_rational"`` -> (activation, implementation). Without an
    implementation name, the first one of ``backend`` (the entry's default)."""
    name, _, impl = spec.partition(":")
    act = get(name)
    if impl:
        try:
            return act, act.impl(impl)
        except KeyError as e:
            raise UnknownName(e.args[0]) from None
    for i in act.impls.values():
        if i.backend == backend:
            return act, i
    raise UnknownName(f"{name} has no {backend} implementation")
