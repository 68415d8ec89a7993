"""A mathbench run in pyperf's JSON format (``python -m mathbench export RUN --pyperf FILE.json``),
so ``python -m pyperf stats`` / ``compare_to`` / ``hist`` work on our runs. pyperf is not needed
to export: the file (format version 1.0) is written here with ``json``.

What a value is. A run folder keeps one aggregated row per function x form x implementation x
dtype x size x threads, not the per-round samples: ``seconds_per_call`` is the geometric mean over
the worker processes of each process's median round (one round = ``repeats`` back-to-back calls,
timed together and divided by ``repeats``). So each pyperf benchmark (one per row, named
``function/form/impl/dtype/size/threads``) holds ONE run with ONE value: that row's seconds per
kernel call on ``size`` elements. That is pyperf's "seconds per loop" with one loop = one call
(metadata ``unit`` = "second", ``loops`` = the row's repeats); divide by ``size`` for seconds per
element (the CSV's ns_per_element / 1e9). The row's interval and its method, which pyperf cannot
hold as values, are kept as benchmark metadata (``interval_lo``/``interval_hi`` in seconds per
call, ``interval_method``, ``processes``, ``rounds``). With one value per benchmark pyperf shows no
standard deviation and ``compare_to`` cannot test significance: use ``mathbench compare`` for
that; the export is for pyperf's tools and dashboards.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from ..core import runs
from ..core.errors import UsageError
from .tables import KEY, _require

FORMAT_VERSION = "1.0"
NEEDED = KEY + ["ns_per_element", "ns_lo", "ns_hi"]


def benchmark_name(r) -> str:
    return f"{r['function']}/{r['form']}/{r['impl']}/{r['dtype']}/{int(r['size'])}/{int(r['threads'])}"


def _text(v) -> str | None:
    """A metadata string as pyperf accepts it (one line, not empty), else None (left out)."""
    if v is None:
        return None
    s = " ".join(str(v).split())
    return s or None


def suite_metadata(meta: dict) -> dict:
    """The run's metadata.json mapped to pyperf's keys (where it has one), ours kept under
    plain names; absent values are left out rather than written empty."""
    versions = meta.get("versions") or {}
    git = meta.get("git") or {}
    out = {
        "cpu_model_name": (meta.get("cpu") or {}).get("model"),
        "cpu_count": meta.get("cores"),
        "hostname": meta.get("hostname"),  # recorded only by runs that record it
        "platform": meta.get("platform"),
        "python_version": versions.get("python"),
        "date": meta.get("created"),
        "command": meta.get("command"),
        "git_commit": git.get("commit"),
        "git_dirty": None if git.get("dirty") is None else str(bool(git["dirty"])).lower(),
        "numba_version": versions.get("numba"),
        "numpy_version": versions.get("numpy"),
        "llvmlite_version": versions.get("llvmlite"),
        "mathbench_run_kind": meta.get("kind"),
        "mathbench_finished": None if meta.get("finished") is None else str(meta["finished"]).lower(),
        "unit": "second",
    }
    keep = {}
    for k, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            v = _text(v)
        if v is not None:
            keep[k] = v
    return keep


def _positive(r, column: str, what: str) -> float:
    v = float(r[column])
    if not (math.isfinite(v) and v > 0):
        raise UsageError(f"row {benchmark_name(r)}: {column} is {r[column]!r}, not a positive finite time; "
                         f"{what} cannot be exported")
    return v


def _int(v) -> int | None:
    return None if pd.isna(v) else int(v)


def benchmarks(df: pd.DataFrame) -> list[dict]:
    """One pyperf benchmark per row: one run, one value (seconds per call)."""
    out, seen = [], set()
    for _, r in df.iterrows():
        name = benchmark_name(r)
        if name in seen:
            raise UsageError(f"two rows are named {name}; a run has one row per function/form/impl/dtype/size/threads")
        seen.add(name)
        size = int(r["size"])
        if "seconds_per_call" in df.columns and not pd.isna(r["seconds_per_call"]):
            value = _positive(r, "seconds_per_call", name)
        else:  # the same number, from the per-element time
            value = _positive(r, "ns_per_element", name) * size * 1e-9
        lo, hi = (_positive(r, c, name) * size * 1e-9 for c in ("ns_lo", "ns_hi"))
        meta = {"name": name, "interval_lo": lo, "interval_hi": hi, "size": size}
        for key, column in (("loops", "repeats"), ("processes", "processes"), ("rounds", "rounds")):
            v = _int(r[column]) if column in df.columns else None
            if v is not None and v >= 1:
                meta[key] = v
        if "interval_method" in df.columns and not pd.isna(r["interval_method"]):
            meta["interval_method"] = _text(r["interval_method"])
        out.append({"metadata": meta, "runs": [{"values": [value]}]})
    return out


def export(run_dir) -> str:
    """The pyperf JSON text of a mathbench run folder (UsageError if it is not one)."""
    df, meta = runs.load_run(run_dir)
    _require(df, NEEDED, run_dir)
    if df.empty:
        raise UsageError(f"{run_dir} has no finished rows to export")
    data = {"version": FORMAT_VERSION, "metadata": suite_metadata(meta), "benchmarks": benchmarks(df)}
    return json.dumps(data, indent=1, allow_nan=False) + "\n"
