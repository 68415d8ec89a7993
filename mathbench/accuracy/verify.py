"""``python -m mathbench verify``: prove every formula the suite uses, then check the kernels.

For every registry entry (issue 3):

1. ``derivative``: the registry's f'(x) equals diff(f, x) (SymPy; a kinked function may differ
   at its kinks only; numeric at many points where SymPy is inconclusive, and said so).
2. ``antiderivative``: d/dx F == f, and a piecewise F is continuous at its breakpoints.
3. ``backprop``: g(f(x)) == f'(x) on the domain.
4. ``limits`` (f at +-inf, or at 0+ for x > 0, against the declared output range),
   ``at zero`` (value, and the slope from each side against f'), ``series`` (Taylor series to
   order 7, whose derivative must be the series of f').
5. Derived facts, computed from the registry expressions: max |isru - tanh| and where; the
   alpha matching tanh at 0 (slope, then the x^3 term) and in least squares on [-3, 3]; the
   same for the ISRU sigmoid against the logistic (on [-6, 6]), with consistency checks.
6. ``kernel``: every Numba (serial) and NumPy implementation, every form, float32 and
   float64, within its declared Bound against the mpmath reference (``mathbench.accuracy.measure``).

Check functions take an :class:`~mathbench.functions.registry.Activation`, so a mutated copy
(``dataclasses.replace``) or a fake Impl can be handed in; each returns :class:`Check` rows.
Exit code 1 if any check fails, 0 otherwise, 2 for bad usage.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import mpmath
import sympy as sp

from . import measure as accuracy, symbolic
from ..functions import registry
from ..core.errors import UsageError, run_cli

x, y = registry.x, registry.y
PASS, FAIL, NA = "pass", "fail", "n/a"
SERIES_ORDER = 7
LS_HALF_WIDTH = 3  # least squares of isru vs tanh on [-3, 3]; of the sigmoids on [-6, 6]
FACT_DPS = 30


@dataclass
class Check:
    function: str
    check: str
    status: str  # pass / fail / n/a
    method: str = ""  # symbolic / numeric / measured / computed
    detail: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _timed(fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        dt = time.perf_counter() - t0
        for c in out if isinstance(out, list) else [out]:
            c.seconds = c.seconds or dt
        return out

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _params(act):
    return symbolic.param_symbols(act)


def _zero_check(act, name, d, what) -> Check:
    r = symbolic.is_zero(d, x, _params(act), act.domain)
    if r.zero:
        return Check(act.name, name, PASS, r.method, r.detail)
    return Check(act.name, name, FAIL, r.method, f"{what} differ: {r.detail}")


# --------------------------------------------------------------------------------------------
# 1-3: derivative, antiderivative, backprop form


@_timed
def check_derivative(act: registry.Activation) -> Check:
    """The registry's f'(x) equals diff(f, x)."""
    return _zero_check(act, "derivative", act.dfdx - sp.diff(act.f, x), "f' and diff(f, x)")


def _breakpoints(expr, var) -> list:
    """Real points where a Piecewise in expr switches branch (from its conditions)."""
    pts = set()
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in sp.sympify(cond).atoms(sp.Rel):
                if not rel.has(var):
                    continue
                try:
                    sol = sp.solveset(sp.Eq(rel.lhs, rel.rhs), var, sp.S.Reals)
                except (NotImplementedError, ValueError):
                    continue
                if isinstance(sol, sp.FiniteSet):
                    pts.update(sol)
    return sorted(pts, key=lambda v: float(v))


@_timed
def check_antiderivative(act: registry.Activation) -> Check:
    """d/dx F == f, and a piecewise F has no jumps (else it is not an antiderivative on R)."""
    F = act.antiderivative
    if F is None:
        return Check(act.name, "antiderivative", NA, "", "no antiderivative in the registry")
    c = _zero_check(act, "antiderivative", sp.diff(F, x) - act.f, "d/dx F and f")
    if c.failed:
        return c
    jumps = []
    bps = _breakpoints(F, x)
    for b in bps:
        try:
            left = symbolic.limit(F, x, b, "-")
            right = symbolic.limit(F, x, b, "+")
            ok = sp.simplify(left - right) == 0
        except ValueError:
            ok = _numeric_continuous(act, F, b)
        if not ok:
            jumps.append(f"jump at x = {b}")
    if jumps:
        return Check(act.name, "antiderivative", FAIL, c.method, "; ".join(jumps))
    if bps:
        c.detail = (c.detail + "; " if c.detail else "") + f"continuous at x = {', '.join(map(str, bps))}"
    return c


def _numeric_continuous(act, expr, b) -> bool:
    fn = symbolic.mp_function(expr, x, _params(act))
    with mpmath.workdps(40):
        for pv in symbolic.NUMERIC_PARAMS if _params(act) else (None,):
            args = (mpmath.mpf(pv),) if pv is not None else ()
            h = mpmath.mpf(10) ** -25
            bb = mpmath.mpf(sp.N(b, 50))
            if abs(fn(bb + h, *args) - fn(bb - h, *args)) > mpmath.mpf(10) ** -20:
                return False
    return True


@_timed
def check_backprop(act: registry.Activation) -> Check:
    """g(f(x)) == f'(x) on the domain."""
    if act.dfdy is None:
        return Check(act.name, "backprop", NA, "", "no backprop form (f not invertible)")
    return _zero_check(act, "backprop", act.dfdy.subs(y, act.f) - act.dfdx, "g(f(x)) and f'(x)")


# --------------------------------------------------------------------------------------------
# 4: limits, value and slope at 0, series


def _same(a, b) -> bool:
    a, b = sp.sympify(a), sp.sympify(b)
    if a.is_infinite or b.is_infinite:
        return a == b
    return sp.simplify(a - b) == 0


def _numeric_limit_ok(act, to, expected) -> bool:
    """f at |x| = 1e30 and 1e60 (sign of ``to``) moves toward ``expected``, for several
    parameter values."""
    fn = symbolic.mp_function(act.f, x, _params(act))
    ok = True
    with mpmath.workdps(40):
        for pv in symbolic.NUMERIC_PARAMS if _params(act) else (None,):
            args = (mpmath.mpf(pv),) if pv is not None else ()
            e = sp.sympify(expected).subs(act.symbol, sp.nsimplify(pv)) if pv is not None else sp.sympify(expected)
            e = symbolic.to_mpf(e)
            s = 1 if to == sp.oo else -1
            a, b = fn(mpmath.mpf(s * 1e30), *args), fn(mpmath.mpf(s * 1e60), *args)
            if mpmath.isinf(e):
                ok &= bool(abs(b) > abs(a) > 1e20 and mpmath.sign(b) == mpmath.sign(e))
            else:
                ok &= bool(abs(b - e) <= abs(a - e) and abs(b - e) < 1e-20)
    return ok


@_timed
def check_limits(act: registry.Activation) -> Check:
    """lim f at -inf (0+ for x > 0) and +inf equal the declared output range."""
    lo, hi = (sp.sympify(v) for v in act.out_range)
    ends = [("+oo", sp.oo, "-", hi)]
    ends.insert(0, ("0+", sp.Integer(0), "+", lo) if act.domain == "positive" else ("-oo", -sp.oo, "+", lo))
    parts, method, ok = [], "symbolic", True
    found = {}
    for label, to, d, expected in ends:
        try:
            L = symbolic.limit(act.f, x, to, d)
            good = _same(L, expected)
            found[label] = sp.sstr(L)
        except ValueError:
            method = "numeric"
            good = _numeric_limit_ok(act, to, expected)
            L = expected if good else "?"
            found[label] = sp.sstr(L)
        ok &= good
        parts.append(f"lim {label} = {sp.sstr(L)}" + ("" if good else f" (range says {sp.sstr(expected)})"))
    return Check(act.name, "limits", PASS if ok else FAIL, method,
                 ", ".join(parts) + f"; range ({sp.sstr(lo)}, {sp.sstr(hi)})", data={"limits": found})


def _branch_near_zero(expr, side: str):
    """expr near 0 from one side, with Abs/sign rewritten and Piecewise resolved."""
    e = sp.sympify(expr)
    if e.has(sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min):
        e = sp.piecewise_fold(e.rewrite(sp.Piecewise))
    point = sp.Rational(1, 10 ** 60) * (1 if side == "+" else -1)
    return e.replace(lambda t: isinstance(t, sp.Piecewise), lambda t: symbolic._branch_at(t, x, point))


@_timed
def check_at_zero(act: registry.Activation) -> Check:
    """f(0), and the slope at 0 from each side (difference quotient) against the registry's f'."""
    if act.domain == "positive":
        return Check(act.name, "at zero", NA, "", "0 is outside the domain (x > 0)")
    try:
        v_left = symbolic.limit(act.f, x, 0, "-")
        v_right = symbolic.limit(act.f, x, 0, "+")
        f0 = act.f.subs(x, 0) if not act.f.has(sp.Piecewise) else sp.piecewise_fold(act.f).subs(x, 0)
        q = (act.f - f0) / x
        slopes = {s: symbolic.limit(q, x, 0, s) for s in "-+"}
        registry_slopes = {s: symbolic.limit(act.dfdx, x, 0, s) for s in "-+"}
    except ValueError as e:
        return Check(act.name, "at zero", FAIL, "symbolic", f"cannot evaluate at 0: {e}")
    problems = []
    if not (_same(v_left, f0) and _same(v_right, f0)):
        problems.append(f"f is not continuous at 0 ({v_left}, {f0}, {v_right})")
    for s in "-+":
        if not _same(slopes[s], registry_slopes[s]):
            problems.append(f"slope from {s}: difference quotient {slopes[s]}, registry f' {registry_slopes[s]}")
    if _same(slopes["-"], slopes["+"]):
        slope_text = f"f'(0) = {sp.sstr(slopes['+'])}"
    else:
        slope_text = f"slope {sp.sstr(slopes['-'])} from the left, {sp.sstr(slopes['+'])} from the right (kink)"
    detail = f"f(0) = {sp.sstr(f0)}, {slope_text}"
    if problems:
        detail += "; " + "; ".join(problems)
    data = {"value": sp.sstr(f0), "slope_left": sp.sstr(slopes["-"]), "slope_right": sp.sstr(slopes["+"]),
            "value_latex": sp.latex(f0), "slope_latex": sp.latex(slopes["+"])}
    return Check(act.name, "at zero", FAIL if problems else PASS, "symbolic", detail, data=data)


def taylor(expr, order: int = SERIES_ORDER):
    """Taylor polynomial of expr at x = 0 up to x**order, or None if expr is not analytic at
    0 (different expressions on each side)."""
    right, left = _branch_near_zero(expr, "+"), _branch_near_zero(expr, "-")
    if not _same(right, left):
        return None
    return sp.expand(sp.series(right, x, 0, order + 1).removeO())


@_timed
def check_series(act: registry.Activation, order: int = SERIES_ORDER) -> Check:
    """Taylor series of f at 0 to ``order``; its derivative must be the series of f'."""
    if act.domain == "positive":
        return Check(act.name, "series", NA, "", "0 is outside the domain (x > 0)")
    s = taylor(act.f, order)
    if s is None:
        return Check(act.name, "series", NA, "", "not analytic at 0 (a different expression on each side)")
    sd = taylor(act.dfdx, order - 1)
    if sd is None:
        return Check(act.name, "series", FAIL, "symbolic", "f is analytic at 0 but the registry's f' is not")
    diff = sp.expand(sp.diff(s, x) - sd)
    text = sp.sstr(s + sp.O(x ** (order + 1)))
    data = {"series": text, "series_latex": sp.latex(s + sp.O(x ** (order + 1))),
            "coefficients": [sp.sstr(s.coeff(x, k)) for k in range(order + 1)]}
    if diff != 0:
        return Check(act.name, "series", FAIL, "symbolic",
                     f"series of f' is not d/dx of the series of f: difference {sp.sstr(diff)}", data=data)
    return Check(act.name, "series", PASS, "symbolic", text, data=data)


# --------------------------------------------------------------------------------------------
# 6: the kernels against the mpmath reference


def check_kernels(act: registry.Activation, backends: Iterable[str] = ("numba", "numpy"),
                  dtypes: Iterable[str] = registry.DTYPES, forms: Iterable[str] = registry.FORMS,
                  parallel: bool = False) -> list[Check]:
    """Each implementation of ``act`` (one row per implementation and form, both dtypes) within
    its declared bound against the mpmath reference on the dense grid + special values."""
    rows = []
    for impl in act.impls.values():
        if impl.backend not in backends:
            continue
        if impl.backend == "torch":
            from ..functions import kernels

            if not kernels.torch_available():
                continue
        for form in forms:
            if impl.fn(form) is None or symbolic.form_expr(act, form)[0] is None:
                continue
            t0 = time.perf_counter()
            parts, ok, data = [], True, {}
            for dtype in dtypes:
                try:
                    m = accuracy.measure_impl(act, impl, form, dtype, parallel=parallel)
                except Exception as e:  # a kernel that crashes is a failed check, not a crash
                    ok = False
                    parts.append(f"{dtype}: raised {type(e).__name__}: {e}")
                    continue
                data[dtype] = m
                ok &= m["within_bound"]
                b = f"{m['bound_ulp']:g}" if math.isfinite(m["bound_ulp"]) else "-"
                txt = f"f{dtype[-2:]} {_fmt_err(m)}, bound {b} ulp | {m['bound_abs']:.2g}"
                if not m["within_bound"]:
                    txt += (f" FAILS at {m['n_fail']} of {m['n_points']} points, worst x = {m['worst_x']:.9g}:"
                            f" got {m['worst_out']:.9g}, want {m['worst_ref']:.9g}")
                parts.append(txt)
            rows.append(Check(act.name, f"kernel {impl.name} {form}", PASS if ok else FAIL, "measured",
                              "; ".join(parts), seconds=time.perf_counter() - t0, data=data))
    return rows


def _fmt_err(m) -> str:
    ulp = m.get("ulp_beyond_abs", m["max_ulp"])
    return f"{ulp:.3g} ulp | {m['max_abs']:.2g}"


# --------------------------------------------------------------------------------------------
# 5: derived facts


def _mp(expr, *symbols):
    return sp.lambdify(symbols, expr, modules="mpmath")


def _argmax_gap(gap, lo, hi, n=400):
    """(x, value, scan max) maximising gap on [lo, hi]: a scan, golden-section search around
    the best scan point, then gap'(x) = 0 by the secant method where gap is smooth there."""
    xs = [mpmath.mpf(lo) + (mpmath.mpf(hi) - lo) * i / n for i in range(n + 1)]
    vals = [gap(t) for t in xs]
    i = max(range(len(vals)), key=lambda k: vals[k])
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, n)]
    g = (mpmath.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = gap(c), gap(d)
    tol = mpmath.mpf(10) ** (-(mpmath.mp.dps // 2))
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = gap(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = gap(d)
    xm = (a + b) / 2
    try:
        xr = mpmath.findroot(lambda t: mpmath.diff(gap, t), xm)
        if abs(xr - xm) < 1e-6 and gap(xr) >= gap(xm):
            xm = xr
    except (ValueError, ZeroDivisionError):
        pass
    return xm, gap(xm), max(vals)


def _ls_alpha(model, target, half_width, a0):
    """alpha minimising the integral of (model(x, alpha) - target(x))^2 over [-w, w] (both
    functions odd about their centre, so twice [0, w]): dE/dalpha = 0 by the secant method."""
    dmodel = lambda t, a: mpmath.diff(lambda aa: model(t, aa), a)  # noqa: E731

    def dE(a):
        return 2 * mpmath.quad(lambda t: 2 * (model(t, a) - target(t)) * dmodel(t, a), [0, half_width])

    a = mpmath.findroot(dE, (mpmath.mpf(a0), mpmath.mpf(a0) * 1.1))
    E = 2 * mpmath.quad(lambda t: (model(t, a) - target(t)) ** 2, [0, half_width])
    return a, mpmath.sqrt(E / (2 * half_width))


def derived_facts(acts: dict) -> tuple[list[dict], list[Check]]:
    """Facts the analysis relies on, computed from the registry's expressions (alpha = 1 unless
    stated). Needs tanh, isru, sigmoid, isru_sigmoid in ``acts``; returns (facts, checks)."""
    need = ("tanh", "isru", "sigmoid", "isru_sigmoid")
    if not all(n in acts for n in need):
        return [], []
    t0 = time.perf_counter()
    tanh, isru, sig, isig = (acts[n] for n in need)
    a = isru.symbol
    facts, checks = [], []

    def fact(name, title, value, text, latex="", **data):
        facts.append({"name": name, "title": title, "value": value, "text": text, "latex": latex, "data": data})

    # Taylor series at 0: where ISRU and tanh part
    s_isru1 = taylor(isru.f.subs(a, 1))
    s_tanh = taylor(tanh.f)
    s_isru = taylor(isru.f)
    diff_poly = sp.expand(s_isru1 - s_tanh)
    k = min((kk for kk in range(SERIES_ORDER + 1) if diff_poly.coeff(x, kk) != 0), default=None)
    fact("taylor_isru_tanh", "Taylor series at 0 (order 7): ISRU (alpha = 1) vs tanh",
         None if k is None else k,
         f"isru = {sp.sstr(s_isru1 + sp.O(x ** 8))}; tanh = {sp.sstr(s_tanh + sp.O(x ** 8))}; they first differ at x^{k}: "
         f"{sp.sstr(s_isru1.coeff(x, k))} vs {sp.sstr(s_tanh.coeff(x, k))}",
         rf"\operatorname{{isru}}(x) = {sp.latex(s_isru1)} + O(x^8),\quad \tanh x = {sp.latex(s_tanh)} + O(x^8)",
         isru_alpha=sp.sstr(s_isru), isru=sp.sstr(s_isru1), tanh=sp.sstr(s_tanh), first_difference_order=k)

    # slope at 0 and the x^3 term: which alpha matches tanh (and the sigmoid pair)
    for pair, model, target in (("isru_tanh", isru, tanh), ("isru_sigmoid_sigmoid", isig, sig)):
        slope_m = sp.simplify(sp.diff(model.f, x).subs(x, 0))
        slope_t = sp.simplify(sp.diff(target.f, x).subs(x, 0))
        sm, st = taylor(model.f), taylor(target.f)
        c3m, c3t = sm.coeff(x, 3), st.coeff(x, 3)
        sol = sp.solve(sp.Eq(c3m, c3t), a)
        free = not slope_m.has(a)
        slope_txt = (f"slope at 0 is {slope_m} for every alpha (target {slope_t})" if free
                     else f"slope at 0: alpha = {sp.solve(sp.Eq(slope_m, slope_t), a)}")
        alpha3 = sol[0] if len(sol) == 1 else None
        fact(f"alpha_at_zero_{pair}", f"alpha matching {target.name} at 0 ({model.name})",
             float(alpha3) if alpha3 is not None else None,
             f"{slope_txt}; matching the x^3 term {sp.sstr(c3m)} = {sp.sstr(c3t)} gives alpha = {sp.sstr(alpha3)}",
             rf"{sp.latex(c3m)} = {sp.latex(c3t)} \Rightarrow \alpha = {sp.latex(alpha3)}",
             slope_model=sp.sstr(slope_m), slope_target=sp.sstr(slope_t), slope_free_of_alpha=free,
             alpha_cubic=sp.sstr(alpha3))
        ok = slope_m == slope_t and alpha3 is not None
        checks.append(Check(model.name, f"fact: slope at 0 vs {target.name}", PASS if ok else FAIL, "symbolic",
                            f"{slope_txt}; x^3 term -> alpha = {sp.sstr(alpha3)}"))

    with mpmath.workdps(FACT_DPS):
        f_isru = _mp(isru.f, x, a)
        f_tanh = _mp(tanh.f, x)
        f_isig = _mp(isig.f, x, a)
        f_sig = _mp(sig.f, x)
        one = mpmath.mpf(1)

        # max |isru - tanh| at alpha = 1 (both odd: x >= 0 suffices) and the sigmoid pair
        odd = all(_same(e.subs(x, -x), -e) for e in (isru.f, tanh.f))
        xt, gt, scan_t = _argmax_gap(lambda t: f_tanh(t) - f_isru(t, one), 0, 10)
        above = all(f_tanh(t) > f_isru(t, one) for t in (mpmath.mpf(k) / 8 for k in range(1, 81)))
        xs_, gs, scan_s = _argmax_gap(lambda t: f_sig(t) - f_isig(t, one), 0, 20)
        fact("max_gap_isru_tanh", "max |isru - tanh| (alpha = 1)", float(gt),
             f"max |isru - tanh| = {mpmath.nstr(gt, 10)} at x = +-{mpmath.nstr(xt, 10)}"
             + (" (tanh > isru on (0, 10])" if above else ""),
             rf"\max_x |\operatorname{{isru}}(x) - \tanh x| = {mpmath.nstr(gt, 10)}"
             rf"\ \text{{at}}\ x = \pm {mpmath.nstr(xt, 10)}",
             x=float(xt))
        fact("max_gap_isru_sigmoid", "max |isru_sigmoid - sigmoid| (alpha = 1)", float(gs),
             f"max |isru_sigmoid - sigmoid| = {mpmath.nstr(gs, 10)} at x = {mpmath.nstr(xs_, 10)}",
             rf"\max_x |\sigma_{{\mathrm{{isru}}}}(x) - \sigma(x)| = {mpmath.nstr(gs, 10)}"
             rf"\ \text{{at}}\ x = {mpmath.nstr(xs_, 10)}",
             x=float(xs_))
        ok_t = odd and scan_t <= gt * (1 + mpmath.mpf(10) ** -12) and mpmath.diff(lambda t: f_tanh(t) - f_isru(t, one), xt, 2) < 0
        checks.append(Check("isru", "fact: max |isru - tanh|", PASS if ok_t else FAIL, "computed",
                            f"{mpmath.nstr(gt, 10)} at x = {mpmath.nstr(xt, 10)}; a maximum (f'' < 0), not exceeded on a "
                            f"400-point scan of [0, 10]; isru and tanh odd: {odd}"))
        # the ISRU sigmoid is 1/2 + isru(x/2)/2 against 1/2 + tanh(x/2)/2: half the gap at twice the x
        ok_s = abs(gs - gt / 2) < mpmath.mpf(10) ** -20 and abs(xs_ - 2 * xt) < mpmath.mpf(10) ** -10
        checks.append(Check("isru_sigmoid", "fact: max |isru_sigmoid - sigmoid|", PASS if ok_s else FAIL, "computed",
                            f"{mpmath.nstr(gs, 10)} at x = {mpmath.nstr(xs_, 10)}; "
                            f"{'equals' if ok_s else 'differs from'} half the tanh gap at twice its x"))

        # least-squares alpha on a stated interval
        w = LS_HALF_WIDTH
        a_t, rms_t = _ls_alpha(f_isru, f_tanh, w, 0.6)
        a_s, rms_s = _ls_alpha(lambda t, al: f_isig(t, al) - mpmath.mpf(1) / 2, lambda t: f_sig(t) - mpmath.mpf(1) / 2,
                               2 * w, 0.6)
        gap_ls = _argmax_gap(lambda t: abs(f_tanh(t) - f_isru(t, a_t)), 0, w)[1]
        fact("alpha_ls_isru_tanh", f"least-squares alpha, isru vs tanh on [-{w}, {w}]", float(a_t),
             f"alpha = {mpmath.nstr(a_t, 10)} (RMS error {mpmath.nstr(rms_t, 4)}, max |isru - tanh| "
             f"{mpmath.nstr(gap_ls, 4)} on [-{w}, {w}]; isru tends to +-{mpmath.nstr(1 / mpmath.sqrt(a_t), 6)})",
             rf"\alpha^* = \arg\min_\alpha \int_{{-{w}}}^{{{w}}} (\operatorname{{isru}}_\alpha - \tanh)^2\,dx"
             rf" = {mpmath.nstr(a_t, 10)}",
             interval=[-w, w], rms=float(rms_t), max_gap=float(gap_ls))
        fact("alpha_ls_isru_sigmoid", f"least-squares alpha, isru_sigmoid vs sigmoid on [-{2 * w}, {2 * w}]",
             float(a_s), f"alpha = {mpmath.nstr(a_s, 10)} (RMS error {mpmath.nstr(rms_s, 4)})",
             rf"\alpha^* = \arg\min_\alpha \int_{{-{2 * w}}}^{{{2 * w}}} (\sigma_{{\mathrm{{isru}},\alpha}} - \sigma)^2\,dx"
             rf" = {mpmath.nstr(a_s, 10)}",
             interval=[-2 * w, 2 * w], rms=float(rms_s))
        ok_ls = abs(a_t - a_s) < mpmath.mpf(10) ** -12 and abs(rms_t - 2 * rms_s) < mpmath.mpf(10) ** -12
        checks.append(Check("isru_sigmoid", "fact: least-squares alpha", PASS if ok_ls else FAIL, "computed",
                            f"tanh pair on [-{w}, {w}]: {mpmath.nstr(a_t, 10)}; sigmoid pair on [-{2 * w}, {2 * w}]: "
                            f"{mpmath.nstr(a_s, 10)} ({'the same, as the x/2 scaling says' if ok_ls else 'MISMATCH'})"))
    dt = time.perf_counter() - t0
    for c in checks:
        c.seconds = dt / len(checks)
    return facts, checks


# --------------------------------------------------------------------------------------------
# driving


SYMBOLIC_CHECKS = (check_derivative, check_antiderivative, check_backprop, check_limits, check_at_zero,
                   check_series)


def _formula(expr) -> dict:
    if expr is None:
        return None
    expr = sp.sympify(expr)
    return {"text": sp.sstr(expr), "latex": sp.latex(expr), "pretty": sp.pretty(expr, use_unicode=True)}


def describe(act: registry.Activation) -> dict:
    lo, hi = (sp.sympify(v) for v in act.out_range)
    return {
        "description": act.description,
        "group": act.group,
        "domain": act.domain,
        "param": {"symbol": act.param, "default": act.param_default} if act.param else None,
        "formulas": {
            "f": _formula(act.f),
            "dfdx": _formula(act.dfdx),
            "dfdy": _formula(act.dfdy),
            "antiderivative": _formula(act.antiderivative),
            "range": {"text": f"({sp.sstr(lo)}, {sp.sstr(hi)})",
                      "latex": rf"\left({sp.latex(lo)}, {sp.latex(hi)}\right)"},
        },
    }


def run(acts: Optional[Iterable[registry.Activation]] = None, kernels: bool = True, facts: bool = True,
        backends=("numba", "numpy")) -> dict:
    """Every check on ``acts`` (default: the whole registry); the report as a dict (JSON-able)."""
    t0 = time.perf_counter()
    acts = list(registry.REGISTRY.values()) if acts is None else list(acts)
    checks: list[Check] = []
    functions = {}
    for act in acts:
        functions[act.name] = describe(act)
        for fn in SYMBOLIC_CHECKS:
            try:
                c = fn(act)
            except Exception as e:  # a check that crashes fails; it never hides the others
                c = Check(act.name, fn.__name__.replace("check_", "").replace("_", " "), FAIL, "",
                          f"check raised {type(e).__name__}: {e}")
            checks.append(c)
            if c.check == "series" and c.data:
                functions[act.name]["series"] = {"text": c.data["series"], "latex": c.data["series_latex"]}
            if c.check == "at zero" and c.data:
                functions[act.name]["at_zero"] = c.data
            if c.check == "limits" and c.data:
                functions[act.name]["limits"] = c.data["limits"]
    fact_list = []
    if facts:
        fact_list, fact_checks = derived_facts({a.name: a for a in acts})
        checks += fact_checks
    if kernels:
        for act in acts:
            checks += check_kernels(act, backends=backends)
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, NA)}
    return {
        "tool": "mathbench verify",
        "version": 1,
        "ok": counts[FAIL] == 0,
        "counts": counts,
        "seconds": time.perf_counter() - t0,
        "functions": functions,
        "checks": [_jsonable(asdict(c)) for c in checks],
        "facts": [_jsonable(f) for f in fact_list],
    }


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(w) for w in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    return str(v)


# --------------------------------------------------------------------------------------------
# text output


def _unicode_ok(stream) -> bool:
    enc = (getattr(stream, "encoding", None) or "").lower()
    return "utf" in enc


def render(report: dict, latex: bool = False, stream=None) -> str:
    stream = stream or sys.stdout
    uni = _unicode_ok(stream)
    out = []
    out.append("Formulas" + (" (LaTeX)" if latex else ""))
    labels = [("f", "f(x)"), ("dfdx", "f'(x)"), ("dfdy", "g(y)"), ("antiderivative", "F(x)")]
    for name, info in report["functions"].items():
        p = info["param"]
        ptxt = f"; parameter {p['symbol']} > 0, default {p['default']:g}" if p else ""
        dom = "; domain x > 0" if info["domain"] == "positive" else ""
        out.append(f"\n  {name}: {info['description']}{ptxt}{dom}")
        for key, label in labels:
            fm = info["formulas"][key]
            if fm is None:
                continue
            if latex:
                body = fm["latex"]
            else:
                body = fm["pretty"] if uni else sp.pretty(sp.sympify(fm["text"]), use_unicode=False)
            lines = body.splitlines() or [""]
            if len(lines) == 1:
                out.append(f"    {label:6s} = {lines[0]}")
            else:
                out.append(f"    {label:6s} =")
                out.extend("      " + ln for ln in lines)
        rng = info["formulas"]["range"]
        out.append(f"    {'range':6s} = {rng['latex'] if latex else rng['text']}")
        if "series" in info:
            out.append(f"    {'series':6s} = {info['series']['latex'] if latex else info['series']['text']}")
    out.append("\nChecks")
    rows = report["checks"]
    w_fn = max([len("function")] + [len(c["function"]) for c in rows])
    w_ck = max([len("check")] + [len(c["check"]) for c in rows])
    out.append(f"  {'function':{w_fn}s}  {'check':{w_ck}s}  result  {'method':9s} detail")
    for c in rows:
        mark = {"pass": "pass", "fail": "FAIL", "n/a": "n/a"}[c["status"]]
        out.append(f"  {c['function']:{w_fn}s}  {c['check']:{w_ck}s}  {mark:6s}  {c['method']:9s} {c['detail']}")
    if any(c["check"].startswith("kernel ") for c in rows):
        out.append("  (kernel rows, per dtype: worst ULP error where the absolute bound does not cover the point"
                   " | worst absolute error; then the declared bound, ULP | absolute)")
    if report["facts"]:
        out.append("\nDerived facts")
        for f in report["facts"]:
            out.append(f"  {f['title']}:\n    {f['latex'] if latex else f['text']}")
    n = report["counts"]
    out.append(f"\n{len(rows)} checks: {n['pass']} passed, {n['fail']} failed, {n['n/a']} not applicable"
               f" ({report['seconds']:.1f} s)")
    if n["fail"]:
        out.append("FAILED: " + ", ".join(f"{c['function']} {c['check']}" for c in rows if c["status"] == FAIL))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mathbench verify",
                description="Prove the registry's formulas symbolically and check every kernel against them.")
    p.add_argument("--functions", metavar="A,B",
                   help="comma-separated registry names (default: all); the derived facts need "
                        "tanh, isru, sigmoid and isru_sigmoid")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON (formulas, checks, facts)")
    p.add_argument("--latex", action="store_true", help="print formulas and facts as LaTeX")
    p.add_argument("--no-kernels", action="store_true", help="skip the numerical cross-check of the kernels")
    return p


def _select(spec: Optional[str]) -> list[registry.Activation]:
    if spec is None:
        return list(registry.REGISTRY.values())
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UsageError(f"--functions is empty; valid: {', '.join(registry.REGISTRY)}")
    bad = [n for n in names if n not in registry.REGISTRY]
    if bad:
        raise UsageError(f"unknown function {', '.join(map(repr, bad))}; valid: {', '.join(registry.REGISTRY)}")
    return [registry.REGISTRY[n] for n in dict.fromkeys(names)]


def _json_target(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"--json {path}: is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--json {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--json {path}: folder {parent} is not writable")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    acts = _select(args.functions)
    target = _json_target(args.json) if args.json else None
    report = run(acts, kernels=not args.no_kernels)
    print(render(report, latex=args.latex))
    if target is not None:
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(report, indent=1, allow_nan=False))
            os.replace(tmp, target)
        except OSError as e:
            raise UsageError(f"--json {target}: cannot write: {e.strerror or e}") from None
        print(f"JSON report: {target}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(run_cli(main, sys.argv[1:], prog="mathbench verify"))
