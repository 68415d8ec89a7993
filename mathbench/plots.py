"""Figures for the notebooks, drawn from results files only (no measuring here)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: notebooks run in tox/CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _bool(s: pd.Series) -> pd.Series:
    return s.astype(str).eq("True")


def serial(df: pd.DataFrame) -> pd.DataFrame:
    return df[~_bool(df["parallel"])]


def _band(ax, x, mid, lo, hi, label, **kw):
    line, = ax.plot(x, mid, marker="o", ms=3, label=label, **kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


def cost_vs_size(df: pd.DataFrame, form: str = "forward", functions=None):
    """ns/element against array size (log-log), one panel per dtype, serial kernels, with the
    bootstrap 95% interval as a band."""
    d = serial(df[df["form"] == form])
    functions = functions or [f for f in d["function"].unique() if f not in ("copy", "plus")]
    dtypes = sorted(d["dtype"].unique())
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.5), sharey=True, squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        for (fn, impl), g in d[(d["dtype"] == dtype) & d["function"].isin(list(functions) + ["copy"])] \
                .groupby(["function", "impl"], sort=False):
            g = g.sort_values("size")
            style = dict(color="k", ls=":") if fn == "copy" else {}
            _band(ax, g["size"], g["ns_per_element"], g["ns_lo"], g["ns_hi"], f"{fn} / {impl}", **style)
        ax.set(xscale="log", yscale="log", xlabel="elements", title=f"{form}, {dtype}, serial")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ns per element (median, 95% CI)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def speedup_vs_size(df: pd.DataFrame, column: str = "speedup_vs_np_tanh", form: str = "forward"):
    """A paired speedup column against size, one line per (function, impl), per dtype."""
    d = serial(df[(df["form"] == form) & df[column].notna() & ~df["function"].isin(["copy", "plus"])])
    dtypes = sorted(d["dtype"].unique())
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.5), sharey=True, squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        for (fn, impl), g in d[d["dtype"] == dtype].groupby(["function", "impl"], sort=False):
            g = g.sort_values("size")
            _band(ax, g["size"], g[column], g[f"{column}_lo"], g[f"{column}_hi"], f"{fn} / {impl}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="elements", title=f"{form}, {dtype}, serial")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(column.replace("_", " ") + " (paired, 95% CI)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def roof_fraction(df: pd.DataFrame, form: str = "forward"):
    """Fraction of the copy-loop roof against size (1.0 = as fast as copying memory)."""
    return speedup_vs_size(df.rename(columns={"roof_fraction": "roof", "roof_lo": "roof_lo", "roof_hi": "roof_hi"}),
                           column="roof", form=form)


def relative_cost_bars(df: pd.DataFrame, size: int, dtype: str = "float32"):
    """The seed's bar chart: forward cost relative to a plain x + c loop, serial, one size."""
    d = serial(df[(df["form"] == "forward") & (df["size"] == size) & (df["dtype"] == dtype)
                  & df["cost_vs_plus"].notna() & (df["function"] != "copy")])
    d = d.sort_values("cost_vs_plus")
    labels = [f"{f} / {i}" for f, i in zip(d["function"], d["impl"])]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(d) + 1.5))
    err = np.vstack([d["cost_vs_plus"] - d["cost_vs_plus_lo"], d["cost_vs_plus_hi"] - d["cost_vs_plus"]])
    ax.barh(labels, d["cost_vs_plus"], xerr=err, color="tab:blue", alpha=0.8)
    ax.set(xscale="log", xlabel="time relative to x + c (paired, 95% CI)",
           title=f"relative cost, forward, {dtype}, n = {size:,}, serial")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def speed_vs_accuracy(df: pd.DataFrame, size: int, dtype: str = "float32", form: str = "forward"):
    """ns/element against max ULP error, one point per implementation."""
    d = serial(df[(df["size"] == size) & (df["dtype"] == dtype) & (df["form"] == form)
                  & df["max_ulp"].notna() & ~df["function"].isin(["copy", "plus"])])
    fig, ax = plt.subplots(figsize=(7, 5))
    for _, r in d.iterrows():
        ax.errorbar(max(r["max_ulp"], 0.1), r["ns_per_element"],
                    yerr=[[r["ns_per_element"] - r["ns_lo"]], [r["ns_hi"] - r["ns_per_element"]]], fmt="o")
        ax.annotate(f"{r['function']}/{r['impl']}", (max(r["max_ulp"], 0.1), r["ns_per_element"]),
                    fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="max error, ULP (vs mpmath; ISRU etc. against their own formula)",
           ylabel="ns per element", title=f"speed vs accuracy, {form}, {dtype}, n = {size:,}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# the functions themselves (evaluated from the registry's SymPy expressions on a small grid)


def _curve(act, form: str, xs, param=None):
    import mpmath
    import sympy as sp

    from . import registry

    expr = {"forward": act.f, "dfdx": act.dfdx, "antiderivative": act.antiderivative}[form]
    expr = act.subs_param(expr, param)
    fn = sp.lambdify(registry.x, expr, modules=["mpmath"])
    with mpmath.workdps(20):
        return np.array([float(fn(mpmath.mpf(float(v)))) for v in xs])


def activation_curves(names, alphas=(0.5, 1.0, 2.0), lim=5.0):
    """f, f' and the antiderivative on shared axes; ISRU drawn for several alphas."""
    from . import registry

    xs = np.linspace(-lim, lim, 241)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, form, title in zip(axes, ("forward", "dfdx", "antiderivative"), ("f(x)", "f'(x)", "antiderivative F(x)")):
        for name in names:
            act = registry.get(name)
            params = alphas if act.param == "alpha" and name == "isru" else (None,)
            for a in params:
                label = name if a is None else f"{name} (alpha={a:g})"
                ax.plot(xs, _curve(act, form, xs, a), label=label)
        ax.set(title=title, xlabel="x")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def approximation_error(pairs, lim=8.0):
    """approx(x) - exact(x) for (approximation, exact) pairs, e.g. (isru, tanh)."""
    from . import registry

    xs = np.linspace(-lim, lim, 321)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for approx, exact in pairs:
        err = _curve(registry.get(approx), "forward", xs) - _curve(registry.get(exact), "forward", xs)
        ax.plot(xs, err, label=f"{approx} - {exact}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="x", ylabel="difference", title="approximation against the function it replaces")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
