"""SymPy helpers shared by the accuracy reference and the verifier.

* :func:`form_expr` - the registry expression for a form and the variable it is written in.
* :func:`limit` - a limit that also works for ``Piecewise`` (SymPy's ``limit`` raises on
  those): the branch that holds for large |x| is picked first.
* :func:`mp_function` - the expression as an mpmath function ``fn(x, p) -> mpf`` (NaN where
  the expression is complex or undefined), evaluated at whatever precision is current.
* :func:`is_zero` - "does this difference vanish?": SymPy first, then a high-precision numeric
  check; says which one decided.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional

import mpmath
import sympy as sp

from ..functions import registry

# the variable each form is written in
FORM_FIELD = {"forward": "f", "dfdx": "dfdx", "dfdy": "dfdy"}


def form_expr(act: registry.Activation, form: str) -> tuple[Optional[sp.Expr], sp.Symbol]:
    """(expression, variable) of ``form`` for ``act``; the expression is None if missing."""
    try:
        field = FORM_FIELD[form]
    except KeyError:
        raise ValueError(f"unknown form {form!r}; valid: {', '.join(FORM_FIELD)}") from None
    expr = getattr(act, field)
    if expr is not None:
        expr = sp.sympify(expr)
    return expr, (registry.y if form == "dfdy" else registry.x)


def param_symbols(act: registry.Activation) -> tuple:
    return (act.symbol,) if act.symbol is not None else ()


# --------------------------------------------------------------------------------------------
# limits


def _branch_at(expr: sp.Piecewise, var: sp.Symbol, point) -> sp.Expr:
    """The branch of a Piecewise that applies at a (large) number ``point``."""
    for e, cond in expr.args:
        c = sp.sympify(cond).subs(var, point)
        if c == sp.true:
            return e
    raise ValueError(f"no branch of {expr} applies at {var} = {point}")


def limit(expr, var: sp.Symbol, to, dir: str = "+"):
    """``limit(expr, var -> to)``; Piecewise (also nested inside expr) is resolved first by the
    branch that holds near ``to`` (for +-oo: at +-10^60). Returns a SymPy number, +-oo, or
    raises ValueError when SymPy cannot decide."""
    expr = sp.sympify(expr)
    if expr.has(sp.Piecewise):
        if to in (sp.oo, -sp.oo):
            point = sp.Integer(10) ** 60 * (1 if to == sp.oo else -1)
        else:
            point = to + (sp.Rational(1, 10**60) if dir == "+" else -sp.Rational(1, 10**60))
        expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: _branch_at(e, var, point))
    try:
        result = sp.limit(expr, var, to, dir)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"SymPy cannot take the limit of {expr}: {e}") from None
    if isinstance(result, sp.Limit) or result.has(sp.AccumBounds) or result is sp.nan or result.has(sp.I):
        raise ValueError(f"SymPy gives no real limit of {expr} at {to}: {result}")
    return result


# --------------------------------------------------------------------------------------------
# mpmath evaluation


def mp_function(expr, var: sp.Symbol, params: tuple = ()) -> Callable:
    """``fn(x, *params) -> mpf`` evaluating expr with mpmath at the current precision.
    Complex results with a nonzero imaginary part and domain errors give NaN; a division by
    zero raises ZeroDivisionError (the caller decides which side to approach from)."""
    raw = sp.lambdify((var, *params), expr, modules="mpmath")

    def fn(xv, *p):
        v = raw(xv, *p)
        if isinstance(v, mpmath.mpc):
            return v.real if v.imag == 0 else mpmath.mpf("nan")
        if isinstance(v, (bool, sp.logic.boolalg.BooleanAtom)):
            raise TypeError(f"{expr} evaluated to a boolean")
        return mpmath.mpf(v)

    return fn


def to_mpf(value) -> mpmath.mpf:
    """A SymPy number (or +-oo) as an mpf at the current precision."""
    value = sp.sympify(value)
    if value == sp.oo:
        return mpmath.inf
    if value == -sp.oo:
        return -mpmath.inf
    return mpmath.mpf(sp.N(value, mpmath.mp.dps + 10))


# --------------------------------------------------------------------------------------------
# "is this zero?"


@dataclass
class ZeroResult:
    zero: bool
    method: str  # "symbolic", "symbolic (piecewise)", "numeric", "numeric (difference found)"
    detail: str = ""


def _piecewise_zero_ae(d: sp.Piecewise, var: sp.Symbol) -> Optional[str]:
    """If every branch of ``d`` is 0 except on finitely many points, describe those points
    ("" if none); None if that cannot be decided symbolically."""
    covered = sp.S.EmptySet
    exceptions = sp.S.EmptySet
    for e, cond in d.args:
        try:
            here = sp.sympify(cond).as_set() if cond != sp.true else sp.S.Reals
        except (NotImplementedError, TypeError, ValueError, AttributeError):
            return None
        effective = sp.Complement(here, covered)
        covered = sp.Union(covered, here)
        if sp.simplify(sp.expand_func(e)) == 0:
            continue
        effective = sp.simplify(effective) if not isinstance(effective, sp.FiniteSet) else effective
        if effective is sp.S.EmptySet:
            continue
        if not isinstance(effective, sp.FiniteSet):
            return None
        exceptions = sp.Union(exceptions, effective)
    if exceptions is sp.S.EmptySet:
        return ""
    return f"equal except at {var} in {exceptions} (a kink)"


def _simplify_zero(d: sp.Expr, var: sp.Symbol) -> Optional[str]:
    """"" if d simplifies to 0, a note if it is 0 except at finitely many points, else None."""
    if d == 0:
        return ""
    for step in (sp.expand_func, sp.simplify):
        d = step(d)
        if d == 0:
            return ""
    if d.has(sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min):
        d = sp.piecewise_fold(d.rewrite(sp.Piecewise))
    if isinstance(d, sp.Piecewise):
        return _piecewise_zero_ae(d, var)
    return None


def sample_points(domain: str, n: int, seed: int = 12345) -> list[float]:
    """Deterministic sample points for numeric checks: a spread of magnitudes, both signs
    (positive domain: positive only), avoiding exact integers and the kinks at 0, +-1, +-3."""
    rng = random.Random(seed)
    pts = []
    for i in range(n):
        mag = 10 ** rng.uniform(-3, 1.3)
        if i % 5 == 0:
            mag = rng.uniform(0.05, 6.0)
        s = 1 if domain == "positive" or i % 2 == 0 else -1
        pts.append(s * mag)
    return pts


NUMERIC_PARAMS = (0.37, 1.0, 2.5)


def numeric_zero(d: sp.Expr, var: sp.Symbol, params: tuple, domain: str, n: int = 120,
                 dps: int = 40, tol=None) -> tuple[bool, str]:
    """Check ``d == 0`` at n points (and several parameter values) with mpmath at ``dps``
    digits; returns (ok, detail with the worst point)."""
    fn = mp_function(d, var, params)
    tol = mpmath.mpf(10) ** (-(dps - 12)) if tol is None else tol
    worst = (mpmath.mpf(0), None, None)
    pvals = NUMERIC_PARAMS if params else (None,)
    with mpmath.workdps(dps):
        for pv in pvals:
            for xv in sample_points(domain, n):
                args = (mpmath.mpf(pv),) if params else ()
                try:
                    v = fn(mpmath.mpf(xv), *args)
                except ZeroDivisionError:
                    continue
                err = abs(v) if not mpmath.isnan(v) else mpmath.inf
                if err > worst[0] or (mpmath.isinf(err) and worst[1] is None):
                    worst = (err, xv, pv)
    ok = worst[0] <= tol
    where = "" if worst[1] is None else f" at {var}={worst[1]:.6g}" + (f", {params[0]}={worst[2]}" if params else "")
    return ok, f"max |difference| = {mpmath.nstr(worst[0], 3)}{where} over {n * len(pvals)} points"


def is_zero(d: sp.Expr, var: sp.Symbol, params: tuple = (), domain: str = "real") -> ZeroResult:
    """Symbolic proof that ``d`` vanishes (everywhere, or everywhere but at kinks), else a
    numeric check at many points (said so in ``method``)."""
    d = sp.sympify(d)
    if domain == "positive":
        xp = sp.Symbol(var.name, positive=True)
        d_sym, v_sym = d.subs(var, xp), xp
    else:
        d_sym, v_sym = d, var
    try:
        note = _simplify_zero(d_sym, v_sym)
    except Exception as e:  # SymPy can raise on exotic input; fall through to numbers
        note, why = None, f"simplify raised {type(e).__name__}; "
    else:
        why = "simplification inconclusive; "
    if note is not None:
        return ZeroResult(True, "symbolic", note)
    ok, detail = numeric_zero(d, var, params, domain)
    return ZeroResult(ok, "numeric", why + detail)
