"""Readable tables from a run folder's CSV (reporting never measures anything)."""
from __future__ import annotations

import math
import pandas as pd

from ..core import runs, stats
from ..core.errors import UsageError


def _fmt(v, spec="{:.2f}"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return spec.format(v)


def _ci(row, mid, lo, hi, spec="{:.2f}", suffix=""):
    if pd.isna(row.get(mid)):
        return "-"
    return f"{spec.format(row[mid])}{suffix} [{spec.format(row[lo])}, {spec.format(row[hi])}]"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _impl_label(r) -> str:
    calls = r.get("libm_calls")
    return f"{r['impl']} ({calls})" if isinstance(calls, str) and calls else r["impl"]


def _simd(r) -> str:
    v = r.get("vectorized")
    if pd.isna(v) or v == "":
        return "?"
    if str(v) == "True":
        return f"{int(r['simd_bits'])}-bit" if not pd.isna(r.get("simd_bits")) else "yes"
    return "no"


def _near(sizes, target) -> int:
    return int(min(sizes, key=lambda s: abs(math.log10(s) - math.log10(target))))


def summary(df: pd.DataFrame, size: int | None = None) -> str:
    """One table per dtype at one size (default: closest to 1e5), serial rows (parallel rows in
    a run without serial ones), plus the parallel speedup at the largest size and the seed-style
    relative-cost table."""
    out = []
    sizes = sorted(df["size"].unique())
    n = size or _near(sizes, 100_000)
    par = df["parallel"].astype(str).eq("True")
    has_serial = bool((~par).any())
    for dtype in sorted(df["dtype"].unique()):
        d = df[(df["dtype"] == dtype) & (df["size"] == n) & (par != has_serial) & (df["function"] != "copy")]
        rows = []
        for _, r in d.iterrows():
            acc = "-" if pd.isna(r.get("max_ulp")) else (
                f"{r['max_ulp']:.3g} / {r['max_abs']:.2g}" + ("" if str(r.get("within_bound")) == "True" else " (!)"))
            rows.append([r["function"], r["form"], _impl_label(r),
                         _ci(r, "ns_per_element", "ns_lo", "ns_hi"),
                         _ci(r, "speedup_vs_tanh", "speedup_vs_tanh_lo", "speedup_vs_tanh_hi", suffix="x"),
                         _ci(r, "speedup_vs_np_tanh", "speedup_vs_np_tanh_lo", "speedup_vs_np_tanh_hi", suffix="x"),
                         _fmt(r.get("roof_fraction")), _simd(r), acc])
        mode = ("serial (1 thread)" if has_serial else
                f"parallel ({int(d['threads'].max())} threads)" if len(d) else "parallel")
        out.append(f"\n{dtype}, n = {n:,}, {mode}; {interval_label(d)}")
        out.append(table(rows, ["function", "form", "implementation", "ns/element", "speedup vs tanh",
                                "vs np.tanh", "roof", "SIMD", "max error ULP / abs"]))
    big = max(sizes)
    p = df[(df["size"] == big) & par & (df["function"] != "copy")]
    if len(p) and has_serial:
        rows = [[r["dtype"], r["function"], r["form"], r["impl"], int(r["threads"]),
                 _ci(r, "speedup_vs_serial", "speedup_vs_serial_lo", "speedup_vs_serial_hi", suffix="x"),
                 _fmt(r.get("roof_fraction"))] for _, r in p.iterrows()]
        out.append(f"\nparallel (prange) over serial at n = {big:,}; {interval_label(p)}")
        out.append(table(rows, ["dtype", "function", "form", "impl", "threads", "speedup vs serial", "roof"]))
    out.append("\n" + relative_cost(df, n))
    out.append("\nroof = time of a copy loop / time of this kernel (1.0 = memory bound); max error against "
               "mpmath (ULP is large where outputs near 0 come from cancellation, e.g. 1 - tanh^2: read the abs "
               "error there); (!) = error above the implementation's declared bound")
    return "\n".join(out)


def interval_label(d: pd.DataFrame) -> str:
    """What the values and intervals of these rows are, in words: one phrase per method (older
    runs, without the ``interval_method`` column, used a bootstrap within one process)."""
    if d.empty:
        return "no rows"
    if "interval_method" not in d.columns:
        return "medians; intervals: " + stats.describe(None, 1, 0)
    per = d.groupby(["interval_method", "processes", "rounds_per_process"]).size()
    # one phrase per description: t intervals do not depend on the rounds, so groups that differ
    # only in rounds read the same and are counted together
    phrases: dict = {}
    for (m, p, r), c in per.items():
        text = stats.describe(m, int(p), int(r))
        phrases[text] = phrases.get(text, 0) + c
    many = len(phrases) > 1
    parts = [text + (f" ({c} rows)" if many else "") for text, c in phrases.items()]
    what = "geometric means of per-process medians" if (d["processes"] > 1).all() else "medians"
    return f"{what}; intervals: " + "; ".join(parts)


def relative_cost(df: pd.DataFrame, size: int) -> str:
    """The seed's view: cost of each forward function relative to a plain add loop."""
    d = df[(df["size"] == size) & (df["form"] == "forward") & (~df["parallel"].astype(bool))
           & (df["function"] != "copy") & df["cost_vs_plus"].notna()]
    if d.empty:
        return ""
    piv = d.pivot_table(index=["function", "impl"], columns="dtype", values="cost_vs_plus", aggfunc="first")
    piv = piv.sort_values(by=list(piv.columns)[0])
    rows = [[f, i, *[_fmt(v, "{:.1f}") for v in vals]] for (f, i), vals in zip(piv.index, piv.values)]
    return (f"relative cost (time / time of x + c), forward, serial, n = {size:,}\n"
            + table(rows, ["function", "impl", *[str(c) for c in piv.columns]]))


KEY = ["function", "form", "impl", "dtype", "size", "threads", "parallel"]


#: the columns summary() and kernel_findings() index; other columns are optional (shown as "-")
SUMMARY_COLUMNS = KEY + ["backend", "ns_per_element", "ns_lo", "ns_hi", "roof_fraction", "roof_lo", "roof_hi",
                         "cost_vs_plus", *[f"speedup_vs_{b}{e}" for b in ("tanh", "np_tanh", "numpy", "serial")
                                           for e in ("", "_lo", "_hi")]]


def _require(df: pd.DataFrame, columns: list, what) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(f"{what} is not a mathbench run, or is from another version "
                         f"(missing columns: {', '.join(missing)})")


def load_kernel_run(run_dir) -> tuple[pd.DataFrame, dict]:
    """(rows, metadata) of a kernel run folder with the summary's columns and at least one row."""
    df, meta = runs.load_run(run_dir)
    _require(df, SUMMARY_COLUMNS, run_dir)
    if df.empty:
        raise UsageError(f"{run_dir} has no finished rows (interrupted or still running before its first group)")
    return df, meta


def load_summary(run_dir) -> str:
    """The summary and the findings of a run. An unfinished run (interrupted, or still running:
    metadata ``finished`` is not true) is labelled incomplete and no target is judged on it."""
    df, meta = load_kernel_run(run_dir)
    head, findings = "", kernel_findings(df)
    if meta.get("finished") is not True:
        head, findings = (f"INCOMPLETE run (interrupted or still running): {df.groupby(['dtype', 'size']).ngroups} "
                          "(dtype, size) groups finished; no target is judged\n"), []
    return (head + summary(df) + ("\n\nfindings:\n" + "\n".join(f"- {f}" for f in findings) if findings else "")
            + run_warnings(df, meta))


def run_warnings(df: pd.DataFrame, meta: dict) -> str:
    """One line each when the machine was not quiet or the kernel timings look unstable ("" if neither)."""
    lines = [w for w in (runs.machine_warning(meta),
                         runs.unstable_warning(df, "ns_per_element", "ns_lo", "ns_hi", "ns/element")) if w]
    return "\n\n" + "\n".join(lines) if lines else ""


# --------------------------------------------------------------------------------------------
# findings: sentences computed from a run (the README and notebooks quote these, never retype)


def _pick(df, **kw) -> pd.DataFrame:
    d = df
    for k, v in kw.items():
        d = d[d[k].astype(str) == str(v)]
    return d


def _x(r, col) -> str:
    return f"{r[col]:.2f}x [{r[col + '_lo']:.2f}, {r[col + '_hi']:.2f}]"


def _verdict(value: float, lo: float, target: float) -> str:
    """'meets' when the whole interval clears the target, 'meets on the median' when only the point
    estimate does, else 'misses'."""
    return "meets" if lo >= target else "meets on the median" if value >= target else "misses"


# The accurate vectorized implementations' speed targets: (function, dtype, ratio column, target,
# the baseline's name as the column pairs it)
SIMD_TARGETS = (
    ("tanh", "float32", "speedup_vs_np_tanh", 4, "np.tanh"),
    ("sigmoid", "float32", "speedup_vs_numpy", 3, "1/(1+np.exp(-x))"),
    ("softplus", "float32", "speedup_vs_numpy", 3, "np.logaddexp(0, x)"),
    ("exp", "float32", "speedup_vs_numpy", 1.5, "np.exp"),
    ("tanh", "float64", "speedup_vs_np_tanh", 4, "np.tanh"),
)


def simd_findings(df: pd.DataFrame) -> list[str]:
    """numba_simd against the NumPy baselines at 1e5 (serial) and against the copy roof at 1e7."""
    out = []
    for function, dtype, col, target, name in SIMD_TARGETS:
        r = _pick(df, function=function, impl="numba_simd", form="forward", dtype=dtype, size=100_000, parallel=False)
        if len(r) and not pd.isna(r.iloc[0][col]):
            r = r.iloc[0]
            out.append(f"{function}:numba_simd {dtype} at n = 100,000: {_x(r, col)} the speed of {name} "
                       f"({_verdict(r[col], r[f'{col}_lo'], target)} the >= {target:g}x target).")
    roofs = []
    for function in ("tanh", "sigmoid", "softplus", "exp"):
        r = _pick(df, function=function, impl="numba_simd", form="forward", dtype="float32", size=10_000_000,
                  parallel=False)
        if len(r) and not pd.isna(r.iloc[0]["roof_fraction"]):
            r = r.iloc[0]
            t = 1 / r["roof_fraction"]
            roofs.append(f"{function} {t:.2f}x [{1 / r['roof_hi']:.2f}, {1 / r['roof_lo']:.2f}] "
                         f"({_verdict(1 / t, r['roof_lo'], 1 / 1.3)})")
    if roofs:
        out.append("numba_simd float32 at n = 10,000,000, time over the copy loop's (target within 1.3x): "
                   + "; ".join(roofs) + ".")
    return out


def kernel_findings(df: pd.DataFrame) -> list[str]:
    """The issue's speed targets and the seed's claim, checked against one run."""
    out = []
    n5 = 100_000  # the targets' sizes: a run that did not measure them is not judged on them
    base = dict(form="forward", dtype="float32", size=n5, parallel=False)
    isru = _pick(df, function="isru", impl="numba", **base)
    rat = _pick(df, function="tanh", impl="numba_rational", **base)
    libm = _pick(df, function="tanh", impl="numba", **base)
    if len(isru) and not pd.isna(isru.iloc[0]["speedup_vs_np_tanh"]):
        r = isru.iloc[0]
        ok = "meets" if r["speedup_vs_np_tanh_lo"] >= 4 else "misses"
        out.append(f"ISRU float32 at n = {n5:,}: {_x(r, 'speedup_vs_np_tanh')} faster than np.tanh "
                   f"({ok} the >= 4x target); {_x(r, 'speedup_vs_tanh')} faster than Numba's libm tanhf loop.")
    if len(rat) and not pd.isna(rat.iloc[0]["speedup_vs_np_tanh"]):
        r = rat.iloc[0]
        ok_speed = r["speedup_vs_np_tanh_lo"] >= 2
        ok_ulp = r["max_ulp"] <= 4
        verdict = "meets" if ok_speed and ok_ulp else "misses"
        out.append(f"rational tanh float32 at n = {n5:,}: {_x(r, 'speedup_vs_np_tanh')} faster than np.tanh at "
                   f"{r['max_ulp']:.2f} ULP max error ({verdict} the >= 2x at <= 4 ULP target).")
    if len(libm):
        r = libm.iloc[0]
        out.append(f"libm tanhf in a Numba loop: {r['ns_per_element']:.2f} ns/element "
                   f"[{r['ns_lo']:.2f}, {r['ns_hi']:.2f}] (no SVML: one scalar call per element).")
    # every Numba serial kernel at least as fast as its NumPy code at >= 1e4 elements
    nb = df[(df["backend"] == "numba") & ~df["parallel"].astype(str).eq("True") & (df["size"] >= 10_000)
            & df["speedup_vs_numpy"].notna()]
    if len(nb):
        slower = nb[nb["speedup_vs_numpy_hi"] < 1.0]
        worst = nb.loc[nb["speedup_vs_numpy"].idxmin()]
        out.append(f"Numba serial vs the same function's NumPy code at >= 1e4 elements: {len(nb) - len(slower)} of "
                   f"{len(nb)} rows at least as fast (interval reaching 1.0 or above); slowest "
                   f"{worst['function']}/{worst['form']}/{worst['impl']} {worst['dtype']} n={int(worst['size']):,}: "
                   f"{_x(worst, 'speedup_vs_numpy')}.")
    big = 10_000_000
    roof = _pick(df, function="isru", impl="numba", form="forward", dtype="float32", size=big, parallel=False)
    if len(roof) and not pd.isna(roof.iloc[0]["roof_fraction"]):
        r = roof.iloc[0]
        t = 1 / r["roof_fraction"]
        verdict = "meets" if t <= 1.3 else "misses"
        out.append(f"ISRU float32 at n = {big:,}: {t:.2f}x the copy loop's time [{1 / r['roof_hi']:.2f}, "
                   f"{1 / r['roof_lo']:.2f}] ({verdict} the within-1.3x-of-roof target).")
    out += simd_findings(df)
    par = df[df["parallel"].astype(str).eq("True") & (df["size"] >= 1_000_000) & (df["function"] != "copy")
             & df["speedup_vs_serial"].notna()]
    if len(par):
        good = par[par["speedup_vs_serial"] >= 1.6]
        out.append(f"parallel over serial at >= 1e6 elements ({int(par['threads'].max())} threads): "
                   f"{len(good)} of {len(par)} kernels reach 1.6x; median {par['speedup_vs_serial'].median():.2f}x, "
                   f"range {par['speedup_vs_serial'].min():.2f}x to {par['speedup_vs_serial'].max():.2f}x.")
    return out
