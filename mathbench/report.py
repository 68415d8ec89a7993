"""Readable tables from a run folder's CSV (reporting never measures anything)."""
from __future__ import annotations

import math
import pandas as pd

from . import runs
from .errors import UsageError


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
    """One table per dtype at one size (default: closest to 1e5), serial rows, plus the
    parallel speedup at the largest size and the seed-style relative-cost table."""
    out = []
    sizes = sorted(df["size"].unique())
    n = size or _near(sizes, 100_000)
    for dtype in sorted(df["dtype"].unique()):
        d = df[(df["dtype"] == dtype) & (df["size"] == n) & (~df["parallel"].astype(bool))
               & (df["function"] != "copy")]
        rows = []
        for _, r in d.iterrows():
            acc = "-" if pd.isna(r.get("max_ulp")) else (
                f"{r['max_ulp']:.3g}" + ("" if str(r.get("within_bound")) == "True" else " (!)"))
            rows.append([r["function"], r["form"], _impl_label(r),
                         _ci(r, "ns_per_element", "ns_lo", "ns_hi"),
                         _ci(r, "speedup_vs_tanh", "speedup_vs_tanh_lo", "speedup_vs_tanh_hi", suffix="x"),
                         _ci(r, "speedup_vs_np_tanh", "speedup_vs_np_tanh_lo", "speedup_vs_np_tanh_hi", suffix="x"),
                         _fmt(r.get("roof_fraction")), _simd(r), acc])
        out.append(f"\n{dtype}, n = {n:,}, serial (1 thread); medians with bootstrap 95% intervals")
        out.append(table(rows, ["function", "form", "implementation", "ns/element", "speedup vs tanh",
                                "vs np.tanh", "roof", "SIMD", "max ULP"]))
    big = max(sizes)
    p = df[(df["size"] == big) & (df["parallel"].astype(bool)) & (df["function"] != "copy")]
    if len(p):
        rows = [[r["dtype"], r["function"], r["form"], r["impl"], int(r["threads"]),
                 _ci(r, "speedup_vs_serial", "speedup_vs_serial_lo", "speedup_vs_serial_hi", suffix="x"),
                 _fmt(r.get("roof_fraction"))] for _, r in p.iterrows()]
        out.append(f"\nparallel (prange) over serial at n = {big:,}")
        out.append(table(rows, ["dtype", "function", "form", "impl", "threads", "speedup vs serial", "roof"]))
    out.append("\n" + relative_cost(df, n))
    out.append("\nroof = time of a copy loop / time of this kernel (1.0 = memory bound); "
               "(!) = error above the implementation's declared bound")
    return "\n".join(out)


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


def compare(dir_a: str, dir_b: str) -> tuple[pd.DataFrame, str]:
    """Per-row speedup of run B over run A (time A / time B), with an interval.

    Runs are separate processes (maybe separate machines), so rows cannot be paired by round:
    the interval is the conservative [lo_A/hi_B, hi_A/lo_B], and ``differs`` flags rows whose
    two 95% intervals do not overlap."""
    a, meta_a = runs.load_run(dir_a)
    b, meta_b = runs.load_run(dir_b)
    for name, d in (("first", a), ("second", b)):
        missing = [c for c in KEY + ["ns_per_element", "ns_lo", "ns_hi"] if c not in d.columns]
        if missing:
            raise UsageError(f"the {name} run folder is not a mathbench run (missing columns: {', '.join(missing)})")
    m = a.merge(b, on=KEY, suffixes=("_a", "_b"))
    if m.empty:
        raise UsageError("the two runs have no rows in common (function, form, impl, dtype, size, threads)")
    m["speedup"] = m["ns_per_element_a"] / m["ns_per_element_b"]
    m["speedup_lo"] = m["ns_lo_a"] / m["ns_hi_b"]
    m["speedup_hi"] = m["ns_hi_a"] / m["ns_lo_b"]
    m["differs"] = (m["ns_hi_a"] < m["ns_lo_b"]) | (m["ns_hi_b"] < m["ns_lo_a"])
    rows = [[r["function"], r["form"], r["impl"], r["dtype"], f"{int(r['size']):,}", int(r["threads"]),
             f"{r['ns_per_element_a']:.3g}", f"{r['ns_per_element_b']:.3g}",
             f"{r['speedup']:.2f}x [{r['speedup_lo']:.2f}, {r['speedup_hi']:.2f}]",
             "*" if r["differs"] else ""] for _, r in m.iterrows()]
    head = (f"A = {dir_a} ({meta_a.get('cpu', {}).get('model')}, {meta_a.get('created')})\n"
            f"B = {dir_b} ({meta_b.get('cpu', {}).get('model')}, {meta_b.get('created')})\n"
            "speedup = time A / time B (>1: B faster); * = the 95% intervals do not overlap\n")
    text = head + table(rows, ["function", "form", "impl", "dtype", "size", "threads", "ns A", "ns B",
                               "speedup of B", ""])
    return m[KEY + ["ns_per_element_a", "ns_per_element_b", "speedup", "speedup_lo", "speedup_hi", "differs"]], text


def load_summary(run_dir) -> str:
    df, meta = runs.load_run(run_dir)
    if "ns_per_element" not in df.columns:
        raise UsageError(f"{run_dir} is not a mathbench kernel run")
    return summary(df)
