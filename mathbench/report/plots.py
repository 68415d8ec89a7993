"""Figures for the notebooks, drawn from results files only (no measuring here)."""
from __future__ import annotations

import matplotlib
import matplotlib.font_manager
import matplotlib.ticker
import matplotlib.transforms

matplotlib.use("Agg")  # headless: notebooks run in tox/CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..core import stats  # noqa: E402


def _bool(s: pd.Series) -> pd.Series:
    return s.astype(str).eq("True")


def serial(df: pd.DataFrame) -> pd.DataFrame:
    return df[~_bool(df["parallel"])]


_COLORS = plt.cm.tab20.colors
_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers against 10 colours: 70 distinct pairs


def _style(i: int) -> dict:
    """Line i's colour, marker and line style: no two of the first 70 lines share all three, so
    lines stay distinguishable beyond the 10 colours the eye tells apart."""
    return dict(color=_COLORS[2 * (i % 10) + (i // 10) % 2], marker=_MARKERS[i % len(_MARKERS)],
                ls=_STYLES[(i // 10) % len(_STYLES)])


def _band(ax, x, mid, lo, hi, label, i=None, **kw):
    """A line with its interval as a band; ``i`` picks the style (default: the axes' line count),
    so the same label can keep one style across panels."""
    if "color" not in kw:
        kw = {**_style(len(ax.get_lines()) if i is None else i), **kw}
    kw.setdefault("marker", "o")
    line, = ax.plot(x, mid, ms=4, label=label, **kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


def _ci(d: pd.DataFrame) -> str:
    """The intervals' name on an axis: 95% only where the rows' method has that coverage (between
    processes); older runs and one-process runs have intervals within one process."""
    methods = set(d["interval_method"]) if "interval_method" in d else set()
    return "95% CI across processes" if methods == {stats.T_PROCESSES} else "interval within one process"


def cost_vs_size(df: pd.DataFrame, form: str = "forward", functions=None):
    """ns/element against array size (log-log), one panel per dtype, serial kernels, with the
    row's interval as a band."""
    d = serial(df[df["form"] == form])
    functions = functions or [f for f in d["function"].unique() if f not in ("copy", "plus")]
    dtypes = sorted(d["dtype"].unique())
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.5), sharey=True, squeeze=False)
    d = d[d["function"].isin(list(functions) + ["copy"])]
    order = _line_order(d)
    for ax, dtype in zip(axes[0], dtypes):
        for (fn, impl), g in d[d["dtype"] == dtype].groupby(["function", "impl"], sort=False):
            g = g.sort_values("size")
            style = dict(color="k", ls=":") if fn == "copy" else {}
            _band(ax, g["size"], g["ns_per_element"], g["ns_lo"], g["ns_hi"], f"{fn} / {impl}", order[fn, impl],
                  **style)
        ax.set(xscale="log", yscale="log", xlabel="elements", title=f"{form}, {dtype}, serial")
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(ax)
    axes[0][0].set_ylabel(f"ns per element ({_ci(d)})")
    fig.tight_layout()
    return fig


def _legend_below(ax) -> None:
    """A legend on every panel (its lines named where they are drawn), under it: with 16 lines no
    corner of the plot is free."""
    # anchored a fixed distance in points under the axes, below the tick labels and the x label
    # whatever the panel's height (a fraction of the axes overlapped the label on short panels)
    below = matplotlib.transforms.ScaledTranslation(0, -40 / 72, ax.figure.dpi_scale_trans)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=ax.transAxes + below,
              frameon=False)


def _line_order(d: pd.DataFrame) -> dict:
    """(function, impl) -> style index, the same in every panel of a figure."""
    return {k: i for i, k in enumerate(dict.fromkeys(zip(d["function"], d["impl"])))}


def speedup_vs_size(df: pd.DataFrame, column: str = "speedup_vs_np_tanh", form: str = "forward", only=None):
    """A paired speedup column against size, one line per (function, impl), per dtype; ``only``:
    the (function, impl) pairs to draw (a readable subset; default all)."""
    d = serial(df[(df["form"] == form) & df[column].notna() & ~df["function"].isin(["copy", "plus"])])
    if only is not None:
        d = d[[(f, i) in set(only) for f, i in zip(d["function"], d["impl"])]]
    dtypes = sorted(d["dtype"].unique())
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.5), sharey=True, squeeze=False)
    order = _line_order(d)
    for ax, dtype in zip(axes[0], dtypes):
        for (fn, impl), g in d[d["dtype"] == dtype].groupby(["function", "impl"], sort=False):
            g = g.sort_values("size")
            _band(ax, g["size"], g[column], g[f"{column}_lo"], g[f"{column}_hi"], f"{fn} / {impl}", order[fn, impl])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="elements", title=f"{form}, {dtype}, serial")
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(ax)
    axes[0][0].set_ylabel(column.replace("_", " ") + f" (paired, {_ci(d)})")
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
    ax.set(xscale="log", xlabel=f"time relative to x + c (paired, {_ci(d)})",
           title=f"relative cost, forward, {dtype}, n = {size:,}, serial")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def speed_vs_accuracy(df: pd.DataFrame, size: int, dtype: str = "float32", form: str = "forward",
                      xlabel: str = "max error, ULP (vs mpmath; ISRU etc. against their own formula)"):
    """ns/element against max ULP error, one point per implementation (its own colour and marker,
    named in the legend and beside the point); ``xlabel`` says where the errors come from (the
    run's own grid check, or an exhaustive accuracy run merged into ``max_ulp``)."""
    d = serial(df[(df["size"] == size) & (df["dtype"] == dtype) & (df["form"] == form)
                  & df["max_ulp"].notna() & ~df["function"].isin(["copy", "plus"])])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    order = _line_order(d)
    for _, r in d.iterrows():
        ax.errorbar(max(r["max_ulp"], 0.1), r["ns_per_element"],
                    yerr=[[r["ns_per_element"] - r["ns_lo"]], [r["ns_hi"] - r["ns_per_element"]]],
                    ms=5, capsize=2, label=f"{r['function']} / {r['impl']}",
                    **{**_style(order[r["function"], r["impl"]]), "ls": "none"})
    ax.set(xscale="log", yscale="log", xlabel=xlabel,
           ylabel="ns per element", title=f"speed vs accuracy, {form}, {dtype}, n = {size:,}")
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(ax)
    fig.tight_layout()
    label_apart(ax, np.column_stack([np.maximum(d["max_ulp"], 0.1), d["ns_per_element"]]),
                [f"{f}/{i}" for f, i in zip(d["function"], d["impl"])], max_shift=2)
    return fig


def label_apart(ax, points: np.ndarray, texts: list, fontsize: float = 7, max_shift: int | None = None) -> list:
    """Label each point to its right, nudging a label up just enough to clear the labels placed
    before it (lowest point first), with a thin leader line back to its point: implementations
    of equal speed and error would otherwise print their names on top of each other. With
    ``max_shift``, a label that would move more than that many label heights is left out (in a
    dense cluster the stack would run off the axes; the legend names those points)."""
    ax.autoscale_view()
    px = ax.transData.transform(points)  # display pixels (with the final scales and limits)
    pt = ax.figure.dpi / 72  # pixels per point
    height = 1.3 * fontsize * pt
    placed, out = [], []  # (x0, x1, y) of placed labels, in pixels
    renderer, font = ax.figure.canvas.get_renderer(), matplotlib.font_manager.FontProperties(size=fontsize)
    width = lambda t: renderer.get_text_width_height_descent(t, font, ismath=False)[0]  # noqa: E731
    for k in np.argsort(px[:, 1], kind="stable"):
        x0 = px[k, 0] + 4 * pt
        x1 = x0 + width(texts[k]) + 2 * pt  # the rendered width and a little air
        y = px[k, 1]
        for a0, a1, b in sorted(placed, key=lambda t: t[2]):
            if a0 < x1 and x0 < a1 and abs(y - b) < height:
                y = b + height
        if max_shift is not None and y - px[k, 1] > max_shift * height:
            continue
        placed.append((x0, x1, y))
        dy = (y - px[k, 1]) / pt
        out.append(ax.annotate(texts[k], tuple(points[k]), xytext=(4, dy + 2), textcoords="offset points",
                               fontsize=fontsize, va="bottom",
                               arrowprops=dict(arrowstyle="-", lw=0.4, color="0.5") if dy > 0 else None))
    return out


# --------------------------------------------------------------------------------------------
# the functions themselves (evaluated from the registry's SymPy expressions on a small grid)


def _curve(act, form: str, xs, param=None):
    import mpmath
    import sympy as sp

    from ..functions import registry

    expr = {"forward": act.f, "dfdx": act.dfdx, "antiderivative": act.antiderivative}[form]
    expr = act.subs_param(expr, param)
    fn = sp.lambdify(registry.x, expr, modules=["mpmath"])
    with mpmath.workdps(20):
        return np.array([float(fn(mpmath.mpf(float(v)))) for v in xs])


def activation_curves(names, alphas=(0.5, 1.0, 2.0), lim=5.0):
    """f, f' and the antiderivative on shared axes; ISRU drawn for several alphas."""
    from ..functions import registry

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
    from ..functions import registry

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


# --------------------------------------------------------------------------------------------
# LSTM sweep


def _candidates(df: pd.DataFrame) -> pd.DataFrame:
    """Numba rows of the non-baseline activation pairs."""
    return df[(df["backend"] == "numba") & ~_bool(df["baseline"])]


def _lstm_interval_column(column: str) -> tuple[str, str]:
    """(the row's interval-kind column, the sample-count column older runs are judged by)."""
    if column.startswith(("loss", "accuracy", "f1", "perplexity")):
        return "quality_interval", "repeats"
    if "latency" in column or "throughput" in column:
        return "latency_interval", "latency_samples"
    return "timing_interval", "timing_samples"


def lstm_band_label(d: pd.DataFrame, column: str) -> str:
    """What the bands of ``column`` are: "95% CI" only from >= 10 samples, else "range of n"
    (min..max). Runs written before the interval columns bootstrapped 3 seeds, whose "95%"
    interval is [min, max]: they are called ranges too."""
    kind_col, count_col = _lstm_interval_column(column)
    n = int(pd.to_numeric(d[count_col], errors="coerce").min()) if count_col in d and len(d) else 0
    if kind_col == "quality_interval" and "quality_samples" in d and d["quality_samples"].notna().any():
        n = int(pd.to_numeric(d["quality_samples"], errors="coerce").min())
    if kind_col in d and d[kind_col].notna().all():
        ci = bool((d[kind_col] == stats.CI).all())
    else:
        ci = n >= stats.MIN_CI_SAMPLES
    if not ci:
        return f"bands: range (min..max) of {n} samples, too few for a 95% CI"
    ordered = "interval_method" in d and (d["interval_method"] == stats.CI_METHOD).all()
    return "bands: order-statistic 95% CI" if ordered else "bands: percentile bootstrap (older run; 91-94% coverage)"


def _lstm_trained(d: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose model and whose configuration's baseline beat the unigram / majority baseline
    (runs without the ``quality_flag`` column: all rows)."""
    if "quality_flag" not in d:
        return d
    base = df[_bool(df["baseline"])].set_index("config_id")["quality_flag"].fillna("") != "not trained"
    return d[(d["quality_flag"].fillna("") != "not trained") & d["config_id"].map(base).eq(True)]


def _panel_grid(n: int, empty: str, cols: int, width: float, height: float, **kw):
    """(figure, axes grid) for n panels, at most ``cols`` a row; with no panel, a small figure
    saying ``empty`` and None."""
    if not n:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.text(0.5, 0.5, empty, ha="center")
        return fig, None
    cols = min(cols, n)
    return plt.subplots((n + cols - 1) // cols, cols, figsize=(width * cols, height * ((n + cols - 1) // cols)),
                        squeeze=False, **kw)


def lstm_vs_hidden(df: pd.DataFrame, column: str, ylabel: str, ref: float | None = 1.0, rows=None):
    """``column`` (with ``_lo``/``_hi`` bands) against hidden size, one line per layer count;
    one panel per (task, variant, dtype, threads). Bands are labelled with what they are (a 95% CI
    or the range of few samples); quality differences leave out models that are not trained."""
    d = rows if rows is not None else _candidates(df)
    if column.endswith("_diff"):
        d = _lstm_trained(d, df)
    d = d[d[column].notna()]
    panels = list(d.groupby(["task", "variant", "dtype", "threads"], sort=True))
    fig, axes = _panel_grid(len(panels), f"no {column} rows", 3, 5.5, 3.8)
    if axes is None:
        return fig
    lo, hi = (f"{column}_lo", f"{column}_hi") if f"{column}_lo" in d else ("loss_diff_lo", "loss_diff_hi")
    for ax, ((task, variant, dtype, thr), g) in zip(axes.flat, panels):
        for layers, gl in g.groupby("layers"):
            gl = gl.sort_values("hidden")
            _band(ax, gl["hidden"], gl[column], gl[lo], gl[hi], f"{layers} layer{'s' if layers > 1 else ''}")
        if ref is not None:
            ax.axhline(ref, color="k", lw=0.8)
        ax.set(xscale="log", xlabel="hidden size", ylabel=ylabel,
               title=f"{task}: {variant}, {dtype}, {thr} thread(s)\n{lstm_band_label(g, column)}")
        ax.title.set_fontsize(9)
        ax.set_xticks(sorted(g["hidden"].unique()), [str(h) for h in sorted(g["hidden"].unique())])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def lstm_torch_peer(df: pd.DataFrame):
    """Numba baseline against torch.nn.LSTM: time(torch)/time(numba), paired."""
    d = df[(df["backend"] == "numba") & _bool(df["baseline"]) & df["vs_torch_train"].notna()]
    return lstm_vs_hidden(df, "vs_torch_train", "time(torch) / time(Numba), training step", rows=d)


def lstm_serial_parallel(df: pd.DataFrame):
    """Training step time of the baseline against hidden size, serial against parallel (separate
    configurations: read the two lines, not a paired ratio)."""
    d = df[(df["backend"] == "numba") & _bool(df["baseline"])]
    panels = list(d.groupby(["task", "dtype"], sort=True))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    for ax, ((task, dtype), g) in zip(axes[0], panels):
        for (layers, thr), gl in g.groupby(["layers", "threads"]):
            gl = gl.sort_values("hidden")
            _band(ax, gl["hidden"], gl["train_step_s"] * 1e3, gl["train_step_lo"] * 1e3, gl["train_step_hi"] * 1e3,
                  f"{layers}L, {thr} thread(s)", color=_COLORS[2 * (layers - 1) % 20], ls="-" if thr == 1 else "--",
                  marker="o" if thr == 1 else "s")  # colour and marker tell every line apart
        base = g["variant"].iloc[0] if len(g) else "baseline"
        ax.set(xscale="log", yscale="log", xlabel="hidden size", ylabel="ms per training step",
               title=f"{task}, {dtype}: {base}, serial vs parallel\n{lstm_band_label(g, 'train_step_s')}")
        ax.title.set_fontsize(9)
        ax.set_xticks(sorted(g["hidden"].unique()), [str(h) for h in sorted(g["hidden"].unique())])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def lstm_study(comp: pd.DataFrame, metric: str = "loss", ylabel: str | None = None):
    """An accuracy study's paired differences (candidate - baseline, ``lstm_numba accuracy``'s
    summary.csv) against hidden size: one panel per (task, layers, dtype), one line per candidate
    (colour and marker), its interval as an error bar, 0 marked. Titles say what the bands are (an
    order-statistic 95% interval of the median, or the range of fewer than 6 seeds) and n."""
    d = comp[(comp["metric"] == metric) & comp["diff"].notna()]
    panels = list(d.groupby(["task", "layers", "dtype"], sort=True))
    fig, axes = _panel_grid(len(panels), f"no {metric} comparisons", 3, 5.8, 4.2)
    if axes is None:
        return fig
    order = {v: i for i, v in enumerate(dict.fromkeys(d["variant"]))}  # one style per candidate everywhere
    for ax, ((task, layers, dtype), g) in zip(axes.flat, panels):
        for variant, gv in g.groupby("variant", sort=False):
            gv = gv.sort_values("hidden")
            i = order[variant]
            # intervals as error bars, each candidate nudged sideways so that overlapping ones stay apart
            x = gv["hidden"] * (1 + 0.05 * (i - (len(order) - 1) / 2))
            ax.errorbar(x, gv["diff"], yerr=[gv["diff"] - gv["diff_lo"], gv["diff_hi"] - gv["diff"]], capsize=3,
                        ms=5, label=variant, **_style(i))
        ax.axhline(0.0, color="k", lw=0.8)
        kinds = set(g["interval"])
        n = f"{int(g['n'].min())}" + (f"-{int(g['n'].max())}" if g["n"].max() != g["n"].min() else "")
        band = ("order-statistic 95% interval of the median" if kinds == {"95% order-statistic"}
                else "range (too few seeds for 95%)" if kinds == {"range"} else "95% interval or range")
        ax.set(xscale="log", xlabel="hidden size", ylabel=ylabel or f"test {metric}, candidate - baseline",
               title=f"{task}, {layers} layer(s), {dtype}: {n} paired seeds\nbars: {band}")
        ax.title.set_fontsize(9)
        ax.set_xticks(sorted(g["hidden"].unique()), [str(h) for h in sorted(g["hidden"].unique())])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, alpha=0.3)
        _legend_below(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig



def lstm_versus(summary: pd.DataFrame, what: str = "train"):
    """A vs-torch run's per-shape summary (``lstm_numba.versus.summarize``): time(torch) /
    time(Numba) against hidden size, one line per batch size (colour and marker), one panel per
    (layers, threads); bands are the range (min..max) over the run's processes, not a CI."""
    col = f"{what}_ratio"
    d = summary[summary[col].notna()]
    panels = list(d.groupby(["layers", "threads"], sort=True))
    fig, axes = _panel_grid(len(panels), f"no {col} rows", 4, 4.6, 3.9, sharey=True)
    if axes is None:
        return fig
    order = {b: i for i, b in enumerate(sorted(d["batch"].unique()))}
    step = "training step" if what == "train" else "inference"
    for ax, ((layers, thr), g) in zip(axes.flat, panels):
        for batch, gb in g.groupby("batch", sort=True):
            gb = gb.sort_values("hidden")
            _band(ax, gb["hidden"], gb[col], gb[f"{what}_min"], gb[f"{what}_max"], f"batch {batch}", order[batch])
        ax.axhline(1.0, color="k", lw=0.8)
        n = int(g["passes"].min())
        ax.set(xscale="log", yscale="log", xlabel="hidden size",
               title=f"{layers} layer(s), {thr} thread(s), {step}\nbands: range of {n} processes (not a CI)")
        ax.title.set_fontsize(9)
        ax.set_xticks(sorted(g["hidden"].unique()), [str(h) for h in sorted(g["hidden"].unique())])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"time(torch) / time(Numba), {step}\n(> 1: Numba faster)", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
