"""``mathbench report RUN --html FILE``: one self-contained page for a kernel run: machine and
settings, the summary tables, the key figures, the findings and the exact command. Drawn from
the run folder's files only (and, for speed against accuracy, an optional exhaustive accuracy
run); nothing is measured.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd

from ..core import runs
from ..core.errors import UsageError
from . import html, plots, tables

#: the tanh slot of notebook 2: every tanh implementation and the ISRU stand-ins, against np.tanh
TANH_SLOT = [("tanh", i) for i in ("numba", "numpy", "numba_simd", "numba_libmvec", "numba_rational")] + [
    ("isru", "numba"), ("isru", "numba_rsqrt")]

ACCURACY_KEY = ["function", "impl", "form", "dtype"]


def load_accuracy(acc_dir) -> tuple[pd.DataFrame, dict]:
    """The rows and metadata of a ``mathbench accuracy`` run (refused with one line otherwise)."""
    df, meta = runs.load_run(acc_dir)
    if meta.get("kind") != "accuracy":
        raise UsageError(f"{acc_dir} is a {meta.get('kind')!r} run, not a mathbench accuracy run")
    tables._require(df, ACCURACY_KEY + ["max_ulp"], f"{acc_dir} (accuracy run)")
    return df, meta


def with_accuracy(df: pd.DataFrame, acc: pd.DataFrame) -> pd.DataFrame:
    """The run's rows with ``max_ulp`` replaced by the accuracy run's (matched on function,
    implementation, form and dtype); rows the accuracy run did not check get no error (NaN) and
    so no point, rather than the run's own sampled figure beside exhaustive ones."""
    worst = acc.groupby(ACCURACY_KEY, as_index=False)["max_ulp"].max()
    return df.drop(columns=["max_ulp"]).merge(worst, on=ACCURACY_KEY, how="left")


def figures(df: pd.DataFrame, acc: pd.DataFrame | None = None) -> list[tuple[str, object, str]]:
    """(title, matplotlib figure, caption) of every figure on the page, in order (tests check the
    figures themselves: a legend on every panel, distinct colour and marker per line)."""
    out = []
    forms = [f for f in ("forward", "dfdy") if f in set(df["form"])]  # the LSTM's forward and backprop forms
    for form in forms:
        out.append((f"cost against size, {form}", plots.cost_vs_size(df, form),
                    "ns per element (log-log), serial kernels, one line per implementation; bands: the rows' "
                    "intervals (the axis label says which); the dotted black line is a copy loop (memory roof)"))
    pairs = set(zip(df["function"], df["impl"]))
    slot = [p for p in TANH_SLOT if p in pairs]
    if slot and df["speedup_vs_np_tanh"].notna().any():
        out.append(("speedup against size: the tanh slot",
                    plots.speedup_vs_size(df, "speedup_vs_np_tanh", "forward", only=slot),
                    "time(np.tanh) / time(kernel), paired by round, for every tanh implementation and the ISRU "
                    "stand-ins; > 1 = faster than np.tanh; bands: intervals"))
    for column, form, what in (("speedup_vs_numpy", "forward", "the same function's NumPy code"),
                               ("speedup_vs_tanh", "dfdy", "Numba's libm tanh loop")):
        if column in df and df.loc[df["form"] == form, column].notna().any():
            out.append((f"speedup against size: {column.replace('_', ' ')}, {form}",
                        plots.speedup_vs_size(df, column, form),
                        f"time({what}) / time(kernel), paired by round; > 1 = faster; bands: intervals"))
    src = df if acc is None else with_accuracy(df, acc)
    size = tables._near(sorted(df["size"].unique()), 100_000)
    label = ("max error, ULP, of the accuracy run (float32: every input; float64: its grid)" if acc is not None
             else "max error, ULP, of this run's grid check against mpmath")
    for dtype in sorted(src["dtype"].unique()):
        d = src[(src["dtype"] == dtype) & (src["size"] == size) & src["max_ulp"].notna()]
        if plots.serial(d[d["form"] == "forward"]).empty:
            continue
        out.append((f"speed against accuracy, {dtype}", plots.speed_vs_accuracy(src, size, dtype, xlabel=label),
                    f"one point per forward implementation at n = {size:,}, serial; error bars: the timing "
                    "interval; errors of 0 are drawn at 0.1 ULP"))
    return out


def report_command(run_dir, html_file=None, accuracy_dir=None) -> str:
    """The command that writes this page (shell-quoted; FILE when the caller did not say)."""
    args = ["python", "-m", "mathbench", "report", str(run_dir), "--html",
            "FILE" if html_file is None else str(html_file)]
    args += ["--accuracy", str(accuracy_dir)] if accuracy_dir is not None else []
    return shlex.join(args)


def build(run_dir, accuracy_dir=None, figs=None, html_file=None) -> str:
    """The page's HTML. Refuses (one line) a folder that is not a finished-or-partial kernel run.
    ``figs``: the figures, if the caller already drew them (``figures``); ``html_file``: the file
    the page goes to, for the command that makes it again."""
    run_dir = Path(run_dir)
    df, meta = tables.load_kernel_run(run_dir)
    acc, acc_meta = load_accuracy(accuracy_dir) if accuracy_dir is not None else (None, None)
    timing = meta.get("timing") or {}
    extra = [["wall time", f"{timing['wall_seconds']:.1f} s" if "wall_seconds" in timing else "-"],
             ["compile", (f"{timing.get('kernels_compiled', '?')} kernels compiled, "
                          f"{timing.get('kernels_from_cache', '?')} from cache, "
                          f"{timing['compile_wall_seconds']:.1f} s (never inside a timing)")
              if "compile_wall_seconds" in timing else "-"],
             ["timing", f"{timing['timing_wall_seconds']:.1f} s in {timing.get('processes', '?')} process(es)"
              if "timing_wall_seconds" in timing else "-"]]
    findings = tables.kernel_findings(df) if meta.get("finished") is True else []
    sections = [("Machine and run", html.machine_html(meta, run_dir, extra)),
                ("Settings", html.settings_html(meta.get("plan") or {}))]
    if meta.get("finished") is not True:
        sections.append(("Status", html.paragraph("INCOMPLETE run (interrupted or still running): no target is "
                                                  "judged on it", "note")))
    warn = tables.run_warnings(df, meta).strip()
    sections.append(("Findings", ([html.bullets(findings, "findings")] if findings else
                                  [html.paragraph("none judged (an incomplete run, or none of the targets' rows "
                                                  "measured)")]) + ([html.paragraph(warn, "note")] if warn else [])))
    body = []
    for title, fig, caption in figures(df, acc) if figs is None else figs:
        body += [html.heading(title), html.figure_html(fig, title, caption)]
    if acc is not None:
        body.append(html.paragraph(f"accuracy from {accuracy_dir}: {acc_meta.get('command')} "
                                   f"(commit {((acc_meta.get('git') or {}).get('commit') or 'unknown')[:10]})"))
    sections.append(("Figures", body))
    sections.append(("Summary tables", html.pre(tables.summary(df))))
    sections.append(("Command", [html.pre(meta.get("command", "-")),
                                 html.paragraph(f"report: {report_command(run_dir, html_file, accuracy_dir)}")]))
    return html.page(f"mathbench run {run_dir.name}", sections)
