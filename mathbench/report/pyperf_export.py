"""A mathbench run in pyperf's JSON format (``python -m mathbench export RUN --pyperf FILE.json``),
so ``python -m pyperf stats`` / ``compare_to`` / ``hist`` work on our runs. pyperf is not needed
to export: the file (format version 1.0) is written here with ``json``.

One pyperf benchmark per results row, named ``function/form/impl/dtype/size/threads``. A value is
seconds per kernel call on ``size`` elements: pyperf's "seconds per loop" with one loop = one call
(``unit`` = "second"; divide by ``size`` for seconds per element, the CSV's ns_per_element / 1e9).
One timed round is ``repeats`` back-to-back calls, timed together and divided by ``repeats``, so a
run's ``loops`` is that process's repeats.

With samples (``samples.csv``, which kernel runs write from this version on): each worker process of the
row becomes one pyperf run whose values are that process's per-round seconds per call, so pyperf
shows the real spread (rounds within a process and between processes) and ``compare_to`` can run
its t-test. The row's own value is not among them: ``seconds_per_call`` is the geometric mean over
the processes of each process's median round (stats.combine), which pyperf's mean/median of the
pooled rounds need not equal. A row's samples are used only if they are whole: one block per
process 0..processes-1 with rounds 0..n-1, as many rounds in all as the row's ``rounds``, and
reproducing its seconds_per_call by that rule; otherwise (a kill between writing a group's samples
and its rows, a truncated or edited file) that row falls back as below.

Without samples (runs from before samples.csv, e.g. the committed results/mathbench-* folders, or
a row whose samples are not whole): ONE run with ONE value, the row's seconds_per_call (``loops`` =
the row's median repeats). pyperf then shows no standard deviation and ``compare_to`` cannot test
significance; ``mathbench compare`` can. Every benchmark says which it is in its metadata
(``mathbench_values``), and the export prints one line on stderr naming how many rows fell back and
why. Independently of the values, the row's interval and method, which pyperf cannot hold as
values, are benchmark metadata (``interval_lo``/``interval_hi`` in seconds per call,
``interval_method``, ``processes``, ``rounds``).

pyperf 2.x's compare_to t-test needs the same number of values in both benchmarks (else it prints
"ERROR when testing if values are significant"): compare runs made with the same --samples and
--processes at sizes where the budget did not cut rounds (the ``rounds`` column says).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import runs, stats
from ..core.errors import UsageError
from .tables import KEY, _require

FORMAT_VERSION = "1.0"
NEEDED = KEY + ["ns_per_element", "ns_lo", "ns_hi"]
#: the ``mathbench_values`` benchmark metadata: where the benchmark's values come from
FROM_SAMPLES = "per-round samples, one run per worker process"
FROM_ROW = "one value, the row's seconds per call (no whole samples)"


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


def read_samples(run_dir) -> tuple[dict | None, str | None]:
    """samples.csv as {benchmark name: {process: {round: (seconds, repeats)}}}, or (None, why not).
    Lines that are not whole (torn, wrong field count, non-numbers, non-positive times) are left
    out; duplicates of one (process, round) make that name unusable (its rows fall back)."""
    path = Path(run_dir) / runs.SAMPLES
    if not path.exists():
        return None, f"no {runs.SAMPLES} (a run from before per-round samples were kept)"
    try:
        text = path.read_text()
        # a last line without its newline was cut mid-write: even its numbers may be cut short
        lines = list(csv.reader(text.splitlines()[:None if text.endswith("\n") else -1]))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return None, f"{runs.SAMPLES} is unreadable ({e})"
    if not lines or lines[0] != runs.SAMPLE_COLUMNS:
        return None, f"{runs.SAMPLES} has other columns than {','.join(runs.SAMPLE_COLUMNS)}"
    out, dup = {}, set()
    width = len(runs.SAMPLE_COLUMNS)
    for cells in lines[1:]:
        if len(cells) != width:
            continue
        function, form, impl, dtype, size, threads, process, rnd, seconds, repeats = cells
        try:
            name = benchmark_name(dict(zip(runs.SAMPLE_KEY, cells[:6])))
            process, rnd, seconds, repeats = int(process), int(rnd), float(seconds), int(repeats)
        except ValueError:
            continue
        if not (math.isfinite(seconds) and seconds > 0 and repeats >= 1 and process >= 0 and rnd >= 0):
            continue
        rounds = out.setdefault(name, {}).setdefault(process, {})
        if rnd in rounds:
            dup.add(name)
        rounds[rnd] = (seconds, repeats)
    for name in dup:
        out[name] = None  # which copy is the real one is unknown
    return out, None


def _whole(r, df, per_process) -> tuple[list | None, str]:
    """The row's per-process [(seconds, repeats), ...] in round order if its samples are whole
    (see the module docstring), else (None, why)."""
    if per_process is None:
        return None, "duplicated samples"
    if any(c not in df.columns or pd.isna(r[c]) for c in ("processes", "rounds", "seconds_per_call")):
        return None, "row without processes/rounds/seconds_per_call"
    if sorted(per_process) != list(range(int(r["processes"]))):
        return None, "samples of other processes than the row's"
    blocks = []
    for i in range(int(r["processes"])):
        rounds = per_process[i]
        if sorted(rounds) != list(range(len(rounds))):
            return None, "missing rounds"
        blocks.append([rounds[j] for j in range(len(rounds))])
        if len({rep for _, rep in blocks[-1]}) != 1:  # calibrated once per process and group
            return None, "repeats that differ between rounds of one process"
    if sum(map(len, blocks)) != int(r["rounds"]):
        return None, "fewer or more samples than the row's rounds"
    value = stats.combine([[s for s, _ in b] for b in blocks]).value
    if not np.isclose(value, float(r["seconds_per_call"]), rtol=1e-9, atol=0):
        return None, "samples that do not give the row's seconds per call"
    return blocks, ""


def benchmarks(df: pd.DataFrame, samples: dict | None = None, fell_back: dict | None = None) -> list[dict]:
    """One pyperf benchmark per row: one run per process with its rounds as values where
    ``samples`` (read_samples) holds the row's whole samples, else one run with one value (seconds
    per call). ``fell_back``: filled with {benchmark name: why} for rows that had no whole samples."""
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
        for key, column in (("processes", "processes"), ("rounds", "rounds")):
            v = _int(r[column]) if column in df.columns else None
            if v is not None and v >= 1:
                meta[key] = v
        if "interval_method" in df.columns and not pd.isna(r["interval_method"]):
            meta["interval_method"] = _text(r["interval_method"])
        blocks, why = (None, "no samples") if samples is None or name not in samples else \
            _whole(r, df, samples[name])
        if blocks is not None:
            meta["mathbench_values"] = FROM_SAMPLES
            bench_runs = [{"metadata": {"loops": b[0][1]}, "values": [s for s, _ in b]} for b in blocks]
        else:
            if fell_back is not None:
                fell_back[name] = why
            meta["mathbench_values"] = FROM_ROW
            loops = _int(r["repeats"]) if "repeats" in df.columns else None
            if loops is not None and loops >= 1:
                meta["loops"] = loops
            bench_runs = [{"values": [value]}]
        out.append({"metadata": meta, "runs": bench_runs})
    return out


def export(run_dir, notes: list | None = None) -> str:
    """The pyperf JSON text of a mathbench run folder (UsageError if it is not one). ``notes``:
    gets one line when some or all rows are exported as one value, and why (the caller prints it
    once the file is written)."""
    df, meta = runs.load_run(run_dir)
    _require(df, NEEDED, run_dir)
    if df.empty:
        raise UsageError(f"{run_dir} has no finished rows to export")
    samples, why = read_samples(run_dir)
    fell_back = {}
    data = {"version": FORMAT_VERSION, "metadata": suite_metadata(meta),
            "benchmarks": benchmarks(df, samples, fell_back)}
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    if fell_back and notes is not None:
        if why is None:  # samples.csv was read: name the first row and its reason
            first = next(iter(fell_back))
            why = f"{runs.SAMPLES} has no whole samples for them (first: {first}, {fell_back[first]})"
        notes.append(f"note: {len(fell_back)} of {len(df)} rows of {run_dir} exported as one value each, "
                     f"without spread (pyperf cannot test their significance): {why}")
    return text
