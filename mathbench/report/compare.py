"""Runs side by side (``python -m mathbench compare RUN_1 RUN_2 ... RUN_N``): per-row ratios of
every later run against the first, with intervals and flags; the rows that only some runs have;
and an HTML page with one chart per function of the speedup over NumPy across runs, each run
labelled by CPU model, thread count, Numba version and commit, so runs from different machines
or commits read like per-CPU charts. Reporting only: nothing here measures.

Runs are separate processes (maybe separate machines), so rows cannot be paired by round: a
ratio's interval is the conservative [lo_1/hi_K, hi_1/lo_K], and a flag marks rows whose two
intervals do not overlap (each run's interval method is named: only intervals across processes
include run-to-run spread).
"""
from __future__ import annotations

import pandas as pd

from ..core import runs, stats
from ..core.errors import UsageError
from . import html
from .tables import KEY, _require, interval_label, table

TIMES = ["ns_per_element", "ns_lo", "ns_hi"]
SHOWN = runs.SAMPLE_KEY  # KEY without the redundant 'parallel'
ORDINALS = ("first", "second")


def load(dirs: list) -> list[tuple[str, pd.DataFrame, dict]]:
    """(folder, rows, metadata) of each run; a folder that is not a mathbench run is a UsageError."""
    out = []
    for i, d in enumerate(dirs):
        df, meta = runs.load_run(d)
        _require(df, KEY + TIMES, f"the {ORDINALS[i]} run folder" if i < len(ORDINALS) else f"run folder {i + 1}")
        out.append((str(d), df, meta))
    return out


def _row_cells(r) -> list:
    return [r["function"], r["form"], r["impl"], r["dtype"], f"{int(r['size']):,}", int(r["threads"])]


RATIOS = ["speedup", "speedup_lo", "speedup_hi", "differs"]


def compare_runs(dirs: list) -> tuple[pd.DataFrame, str, list, pd.DataFrame]:
    """(table, text to print, the loaded runs, the rows not every run has). Two runs: the table is
    one row per row both have (A = run 1, B = run 2); more: the long table, one row per run and
    row of that run, with the ratio to run 1 where run 1 has the row."""
    loaded = load(dirs)
    common = _common(loaded)
    missing = missing_rows([df for _, df, _ in loaded])
    return (*(_two(loaded, common, missing) if len(loaded) == 2 else _many(loaded, common, missing)), loaded, missing)


def _common(loaded: list) -> pd.DataFrame:
    """The rows every run has: each run K's times (``ns_per_element_K``...) and, for K > 1, its
    ratio to run 1 with interval and flag (``speedup_K``...)."""
    base = loaded[0][1]
    common = base[KEY + TIMES].rename(columns={c: f"{c}_1" for c in TIMES})
    for k, (_, df, _) in enumerate(loaded[1:], start=2):
        m = _ratios(base, df, "inner")[KEY + TIMES + RATIOS]
        common = common.merge(m.rename(columns={c: f"{c}_{k}" for c in TIMES + RATIOS}), on=KEY)
    if common.empty:
        raise UsageError(f"the {'two' if len(loaded) == 2 else len(loaded)} runs have no rows in common "
                         "(function, form, impl, dtype, size, threads)")
    return common


def _two(loaded: list, common: pd.DataFrame, missing: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Two runs, called A and B: one speedup column and a flag column."""
    (dir_a, a, meta_a), (dir_b, b, meta_b) = loaded
    rows = [[*_row_cells(r), f"{r['ns_per_element_1']:.3g}", f"{r['ns_per_element_2']:.3g}",
             f"{r['speedup_2']:.2f}x [{r['speedup_lo_2']:.2f}, {r['speedup_hi_2']:.2f}]",
             "*" if r["differs_2"] else ""] for _, r in common.iterrows()]
    head = (f"A = {dir_a} ({meta_a.get('cpu', {}).get('model')}, {meta_a.get('created')})\n"
            f"B = {dir_b} ({meta_b.get('cpu', {}).get('model')}, {meta_b.get('created')})\n"
            f"intervals A: {interval_label(a)}\n"
            f"intervals B: {interval_label(b)}\n"
            "speedup = time A / time B (>1: B faster); * = the two runs' intervals do not overlap\n")
    text = head + table(rows, ["function", "form", "impl", "dtype", "size", "threads", "ns A", "ns B",
                               "speedup of B", "differs"])
    text += missing_text(missing, ["A", "B"])
    out = common.rename(columns={"ns_per_element_1": "ns_per_element_a", "ns_per_element_2": "ns_per_element_b",
                                 **{f"{c}_2": c for c in RATIOS}})
    return out[KEY + ["ns_per_element_a", "ns_per_element_b", *RATIOS]], text


# --------------------------------------------------------------------------------------------
# N runs


def _threads(df: pd.DataFrame, meta: dict):
    """The run's largest thread count: of its rows, else its plan, else Numba's at the time."""
    if len(df):
        return int(df["threads"].max())
    return (meta.get("plan") or {}).get("parallel_threads") or (meta.get("threads") or {}).get("numba_threads")


def _commit(meta: dict) -> str:
    git = meta.get("git") or {}
    commit = (git.get("commit") or "?")[:7]
    return commit + (" (dirty)" if git.get("dirty") else "") if git.get("dirty") is not None else commit


def run_label(df: pd.DataFrame, meta: dict) -> str:
    """'CPU model · N threads · numba X · commit abc1234': what tells runs of other machines or
    commits apart in a chart's legend."""
    return (f"{(meta.get('cpu') or {}).get('model', '?')} · {_threads(df, meta)} threads · "
            f"numba {(meta.get('versions') or {}).get('numba', '?')} · commit {_commit(meta)}")


def run_header(k: int, d: str, df: pd.DataFrame, meta: dict) -> str:
    return (f"run {k} = {d} ({(meta.get('cpu') or {}).get('model')}, created {meta.get('created')}, "
            f"{_threads(df, meta)} threads, numba {(meta.get('versions') or {}).get('numba')}, "
            f"commit {_commit(meta)}); intervals: {interval_label(df)}")


def _ratios(base: pd.DataFrame, other: pd.DataFrame, how: str) -> pd.DataFrame:
    """``other``'s rows with run 1's times beside them and the speedup time 1 / time K."""
    m = other[KEY + TIMES].merge(base[KEY + TIMES], on=KEY, how=how, suffixes=("", "_1"))
    m["speedup"] = m["ns_per_element_1"] / m["ns_per_element"]
    m["speedup_lo"] = m["ns_lo_1"] / m["ns_hi"]
    m["speedup_hi"] = m["ns_hi_1"] / m["ns_lo"]
    differs = pd.array([not stats.intervals_overlap(*iv) for iv in
                        zip(m["ns_lo_1"], m["ns_hi_1"], m["ns_lo"], m["ns_hi"])], dtype="boolean")
    m["differs"] = pd.Series(differs, index=m.index).mask(m["speedup"].isna())  # no run-1 row: unknown
    return m


def _many(loaded: list, common: pd.DataFrame, missing: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Three runs or more: one ratio column per later run."""
    base = loaded[0][1]
    ks = range(2, len(loaded) + 1)
    rows = [[*_row_cells(r), *[f"{r[f'ns_per_element_{k}']:.3g}" for k in range(1, len(loaded) + 1)],
             *[f"{r[f'speedup_{k}']:.2f}x [{r[f'speedup_lo_{k}']:.2f}, {r[f'speedup_hi_{k}']:.2f}]"
               + (" *" if r[f"differs_{k}"] else "") for k in ks]] for _, r in common.iterrows()]
    head = "\n".join(run_header(k, d, df, meta) for k, (d, df, meta) in enumerate(loaded, start=1))
    head += ("\nspeedup K = time of run 1 / time of run K (>1: run K faster), interval [lo_1/hi_K, hi_1/lo_K]; "
             "* = the intervals of run 1 and run K do not overlap\n")
    text = head + table(rows, [*SHOWN, *[f"ns {k}" for k in range(1, len(loaded) + 1)],
                               *[f"speedup {k}" for k in ks]])
    text += missing_text(missing, [str(k) for k in range(1, len(loaded) + 1)])
    long = []
    for k, (d, df, _) in enumerate(loaded, start=1):
        m = _ratios(base, df, "left").drop(columns=[f"{c}_1" for c in TIMES])
        if k == 1:  # run 1 against itself says nothing
            m[["speedup", "speedup_lo", "speedup_hi"]] = float("nan")
            m["differs"] = m["differs"].mask(m["differs"].notna())
        long.append(m.assign(run=k, run_dir=d))
    out = pd.concat(long, ignore_index=True)
    return out[["run", "run_dir", *KEY, *TIMES, *RATIOS]], text


def missing_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows (KEY) not every run has, with the runs (1-based) that have each."""
    seen = pd.concat([f[KEY].drop_duplicates().assign(run=k) for k, f in enumerate(frames, start=1)])
    for c in KEY:  # one spelling per value ('True' vs True) so the same row groups together
        seen[c] = seen[c].astype(str)
    has = seen.groupby(KEY, sort=False)["run"].agg(lambda s: sorted(set(s))).reset_index(name="runs")
    return has[has["runs"].map(len) < len(frames)].reset_index(drop=True)


MISSING_GROUP = ["impl", "dtype", "threads"]


def missing_text(missing: pd.DataFrame, names: list[str]) -> str:
    """'' when every run has every row, else a section that counts them (never dropped silently)
    per implementation, dtype and thread count and the runs that have them: a run with a peer or
    an implementation the others lack would otherwise add hundreds of lines. Every row is in
    ``missing_csv``."""
    if missing.empty:
        return ""
    groups = missing.assign(has=missing["runs"].map(tuple)).groupby([*MISSING_GROUP, "has"], sort=False)
    rows = [[impl, dtype, int(threads), len(g), ", ".join(dict.fromkeys(g["function"])),
             ", ".join(names[k - 1] for k in has), ", ".join(n for k, n in enumerate(names, start=1) if k not in has)]
            for (impl, dtype, threads, has), g in groups]
    return (f"\n\nrows not in every run ({len(missing)}; not compared above; counted per implementation, dtype "
            "and threads; each row: --missing-csv FILE):\n"
            + table(rows, ["impl", "dtype", "threads", "rows", "functions", "in runs", "missing from"]))


def missing_csv(missing: pd.DataFrame, n_runs: int) -> str:
    """Every row not every run has, with the runs (numbered as given, 1 = RUN_1 = A) that have it
    and those that lack it, as CSV text."""
    out = missing[KEY].assign(
        in_runs=missing["runs"].map(lambda r: " ".join(map(str, r))),
        missing_from=missing["runs"].map(lambda r: " ".join(str(k) for k in range(1, n_runs + 1) if k not in r)))
    return out.to_csv(index=False)


# --------------------------------------------------------------------------------------------
# HTML: speedup over NumPy across runs, one chart per function


#: timed by every run as baselines (x+c), not as contenders: their ratio to tanh says nothing
REFERENCES = ("plus",)


def _speedup_column(function: str, d: pd.DataFrame) -> tuple[str, str] | None:
    """The ratio to chart for ``function``, or None when it has no meaningful baseline: the copy
    kernel (no registry entry, the memory roof) and the references' ratio to tanh."""
    from ..functions import registry  # loads Numba: only when drawing

    if function not in registry.REGISTRY:
        return None
    for col, what in (("speedup_vs_numpy", "the same function's NumPy code"),
                      ("speedup_vs_tanh", "Numba's libm tanh loop")):
        if col == "speedup_vs_tanh" and function in REFERENCES:
            continue
        if col in d.columns and d[col].notna().any():
            return col, what
    return None


def _minor_labels(ax) -> None:
    """Minor-tick labels of the log y axis that never crowd: every one below a decade (there may
    be no major tick to read), only 2x and 5x each power of ten up to three decades (0.7, 0.8,
    0.9 would stack under each power), none beyond."""
    import math

    from matplotlib.ticker import FuncFormatter, NullFormatter

    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo)
    if decades < 1:
        ax.yaxis.set_minor_formatter("{x:g}")
    elif decades <= 3:
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda x, _: f"{x:g}" if round(x / 10 ** math.floor(math.log10(x) + 1e-9), 6) in (2, 5) else ""))
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


def speedup_figures(loaded: list[tuple[str, pd.DataFrame, dict]], form: str = "forward") -> list[tuple]:
    """(function, figure, caption) per function: speedup over NumPy (else over tanh) against
    size, one panel per implementation x dtype x serial/parallel, one line per run (colour and
    marker differ) with its interval as a band, and a legend on every panel."""
    from .plots import _band, _bool, _panel_grid, _style

    labels = [f"{k}: {run_label(df, meta)}" for k, (_, df, meta) in enumerate(loaded, start=1)]
    rows = pd.concat([df.assign(run=k) for k, (_, df, _) in enumerate(loaded)], ignore_index=True)
    rows = rows[rows["form"] == form]
    out = []
    for function in dict.fromkeys(rows["function"]):
        d = rows[rows["function"] == function]
        picked = _speedup_column(function, d)
        if picked is None:  # the references (copy, plus) and NumPy-only functions
            continue
        col, what = picked
        d = d[d[col].notna()]
        panels = list(dict.fromkeys(zip(d["impl"], d["dtype"], _bool(d["parallel"]))))
        fig, axes = _panel_grid(len(panels), "", 3, 6.2, 4.4, layout="constrained")  # panels: never empty
        for ax, (impl, dtype, par) in zip(axes.flat, panels):
            p = d[(d["impl"] == impl) & (d["dtype"] == dtype) & (_bool(d["parallel"]) == par)]
            for k, label in enumerate(labels):
                s = p[p["run"] == k].sort_values("size")
                if s.empty:  # in the legend all the same: a run without the row is said, not hidden
                    ax.plot([], [], ms=4, label=label + " (no rows)", **_style(k))
                else:
                    _band(ax, s["size"], s[col], s[f"{col}_lo"], s[f"{col}_hi"], label, i=k)
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")  # ratios: 2x faster and 2x slower sit equally far from 1
            ax.yaxis.set_major_formatter("{x:g}")
            # the medians set the scale; a band much wider than them (few processes, a noisy
            # round) is cut at the panel's edge instead of flattening every line
            mid = p[col][p[col] > 0]
            if len(mid):
                ax.set_ylim(min(mid.min(), 1.0) / 1.5, max(mid.max(), 1.0) * 1.5)
            _minor_labels(ax)
            ax.set_title(f"{impl}, {dtype}, {'parallel' if par else 'serial'}", fontsize=10)
            ax.set_xlabel("size (elements)")
            ax.set_ylabel(f"speedup over {'NumPy' if col == 'speedup_vs_numpy' else 'tanh'} (x)")
            ax.legend(fontsize=7, loc="best")
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(f"{function} ({form}): time of {what} / time of the kernel (>1: faster)")
        out.append((function, fig, f"{function}, {form} form: {col} with its interval as a band; "
                    "runs differ in colour and marker; a dotted line marks 1x; log scales, bands cut at the panel's edge"))
    return out


def html_page(loaded: list, text: str) -> str:
    """The comparison (``text``, as printed) of the runs ``loaded`` as one self-contained page:
    the runs, the table with the rows not in every run, and the charts."""
    runs_rows = [[k, d, run_label(df, meta), meta.get("created", "-"), interval_label(df)]
                 for k, (d, df, meta) in enumerate(loaded, start=1)]
    sections = [("Runs", [html.table_html(runs_rows, ["run", "folder", "label", "created", "intervals"])]),
                ("Per-row ratios against the first run", [html.pre(text)])]
    figures = speedup_figures(loaded)
    if not figures:
        sections.append(("Charts", [html.paragraph("no row has a speedup over NumPy or over tanh to chart")]))
    for function, fig, caption in figures:
        sections.append((function, [html.figure_html(fig, f"speedup of {function} across runs", caption, dpi=80)]))
    return html.page(f"mathbench compare: {len(loaded)} runs", sections)
