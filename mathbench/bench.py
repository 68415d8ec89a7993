"""The kernel benchmark: plan, compile, check accuracy, time interleaved, write rows.

One *group* is (dtype, size): every selected kernel at that dtype and size, serial and
parallel, plus two references (the copy kernel = memory roof, ``plus`` = the seed's baseline),
is timed round-robin in one harness call. Every ratio in a row (speedup over tanh, over
np.tanh, over the same function's NumPy code, over the serial kernel, cost relative to plus,
fraction of the copy roof) is paired by round within that group, never computed across groups
or runs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import harness, kernels, registry, threads
from .errors import UsageError

DEFAULT_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)

COLUMNS = [
    "function", "form", "impl", "backend", "libm", "dtype", "size", "threads", "parallel",
    "ns_per_element", "ns_lo", "ns_hi", "seconds_per_call", "rounds", "repeats",
    "elements_per_s", "bytes_per_s",
    "roof_fraction", "roof_lo", "roof_hi",
    "speedup_vs_tanh", "speedup_vs_tanh_lo", "speedup_vs_tanh_hi",
    "speedup_vs_np_tanh", "speedup_vs_np_tanh_lo", "speedup_vs_np_tanh_hi",
    "speedup_vs_numpy", "speedup_vs_numpy_lo", "speedup_vs_numpy_hi",
    "speedup_vs_serial", "speedup_vs_serial_lo", "speedup_vs_serial_hi",
    "cost_vs_plus", "cost_vs_plus_lo", "cost_vs_plus_hi",
    "vectorized", "simd_bits", "libm_calls", "compile_seconds", "cache_hit",
    "max_ulp", "max_abs", "bound_ulp", "bound_abs", "within_bound",
    "input_scale", "seed", "note",
]


@dataclass
class Plan:
    functions: list
    impls: Optional[list]  # None: every implementation available
    forms: list
    dtypes: list
    sizes: list
    serial: bool
    parallel_threads: Optional[int]
    budget: float = 0.7  # seconds of timed rounds per (dtype, size) group
    samples: int = 7
    min_samples: int = 3
    seed: int = 0
    scale: float = 1.0
    denormals: bool = False
    accuracy: bool = True
    kernels: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# inputs


def make_input(act: registry.Activation, form: str, n: int, dtype: str, rng, scale: float,
               denormals: bool, forward_kernel=None) -> np.ndarray:
    """Fresh seeded inputs: scale * standard normal, |.| for positive domains, no subnormals
    unless asked. dfdy kernels get y = f(x), what backprop hands them."""
    dt = np.dtype(dtype)
    x = (rng.standard_normal(n) * scale).astype(dt)
    if act.domain == "positive":
        np.abs(x, out=x)
    tiny = np.finfo(dt).tiny
    if denormals:
        x[::7] = (x[::7] * tiny * 2.0 ** -10).astype(dt)  # every 7th element subnormal
    else:
        small = np.abs(x) < tiny
        x[small] = np.copysign(tiny, x[small]) if act.domain == "real" else tiny
    if form == "dfdy":
        y = np.empty_like(x)
        forward_kernel.call(x, forward_kernel.param, y)
        return y
    return x


def _mem_available() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(sizes, dtypes) -> None:
    """Refuse, before allocating, a size whose arrays would not fit in memory."""
    itemsize = max(np.dtype(d).itemsize for d in dtypes)
    need = max(sizes) * itemsize * 4 + (256 << 20)  # x, y, out, a scratch copy; + headroom
    avail = _mem_available()
    if need > avail:
        big = max(sizes)
        size = f"{big:,}" if big < 10**12 else f"{big:.3g}"  # 1e99 prints as 1e+99, not 100 digits
        raise UsageError(f"size {size} needs about {need / 2**30:.3g} GiB but only {avail / 2**30:.1f} GiB "
                         "is available; choose smaller --sizes")


# --------------------------------------------------------------------------------------------
# planning and compiling


def _selected_impls(act, plan: Plan):
    for im in act.impls.values():
        if plan.impls is not None and im.name not in plan.impls:
            continue
        if plan.impls is None and im.backend == "torch" and not kernels.torch_available():
            continue
        yield im


def compile_all(plan: Plan, progress=None) -> list:
    """Build every kernel of the plan (compiling or loading Numba code from the cache).
    Compile time is measured here, per kernel, and never inside a timing."""
    ks = []
    modes = ([False] if plan.serial else []) + ([True] if plan.parallel_threads else [])
    for name in plan.functions:
        act = registry.get(name)
        for im in _selected_impls(act, plan):
            for form in plan.forms:
                if im.fn(form) is None:
                    continue
                for dtype in plan.dtypes:
                    for par in modes:
                        if par and im.backend != "numba":
                            continue  # NumPy is single-threaded; torch is compared at 1 thread
                        ks.append(kernels.get(name, im.name, form, dtype, par))
                        if progress:
                            progress.update(1)
    for dtype in plan.dtypes:
        for par in modes:
            ks.append(kernels.copy_kernel(dtype, par))
            if not any(k.function == "plus" and k.form == "forward" and k.impl == "numba"
                       and k.dtype == dtype and k.parallel == par for k in ks):
                ks.append(kernels.get("plus", "numba", "forward", dtype, par))
    return ks


def count_kernels(plan: Plan) -> int:
    modes = int(plan.serial) + int(bool(plan.parallel_threads))
    n = 0
    for name in plan.functions:
        act = registry.get(name)
        for im in _selected_impls(act, plan):
            forms = sum(im.fn(f) is not None for f in plan.forms)
            n += forms * len(plan.dtypes) * (modes if im.backend == "numba" else int(plan.serial))
    return n


# --------------------------------------------------------------------------------------------
# measuring


def _key(k) -> tuple:
    return (k.function, k.form, k.impl, k.dtype, k.parallel)


def _ratio(ms, base_key, key, invert=False):
    """Paired ratio base/this (or this/base with invert) as (median, lo, hi); None if absent."""
    if base_key not in ms or key not in ms:
        return None
    if invert:
        r = harness.ratio(ms[key], ms[base_key])
    else:
        r = harness.ratio(ms[base_key], ms[key])
    return r.median, r.lo, r.hi


def measure_group(plan: Plan, group: list, dtype: str, size: int, rng) -> list[dict]:
    """Time every kernel of one (dtype, size) group interleaved; return its rows."""
    # One input per (function, form): every implementation of it reads the same array.
    inputs = {}
    for k in group:
        if (k.function, k.form) in inputs:
            continue
        act = registry.get(k.function) if k.function != "copy" else registry.get("plus")
        fwd = None
        if k.form == "dfdy":
            fwd = kernels.get(k.function, registry.resolve(k.function)[1].name, "forward", dtype, False)
        inputs[(k.function, k.form)] = make_input(act, k.form, size, dtype, rng, plan.scale,
                                                  plan.denormals, fwd)
    out = np.empty(size, dtype=dtype)
    out.fill(0)  # shared, and touched now: no page faults inside timings (np.zeros maps lazily)

    cands = []
    for k in group:
        x = inputs[(k.function, k.form)]
        cands.append(harness.Candidate(_key(k), (lambda k=k, x=x: k.call(x, k.param, out)), size))
    n = len(cands)
    sample_time = max(plan.budget / (plan.samples * n), 2e-5)
    ms = harness.measure_interleaved(
        cands, sample_time=sample_time, samples=plan.samples, min_samples=plan.min_samples,
        max_time=plan.budget, warmup=1 if size < 1_000_000 else 0, seed=plan.seed)
    # at >= 1e6 elements the (untimed) calibration call is the warm-up: a second one would
    # double the cost of the largest sizes for no measurable effect (buffers are pre-faulted)

    rows = []
    itemsize = np.dtype(dtype).itemsize
    for k in group:
        key = _key(k)
        m = ms[key]
        pe = m.per_element
        row = dict(
            function=k.function, form=k.form, impl=k.impl, backend=k.backend, libm=k.libm,
            dtype=dtype, size=size, threads=plan.parallel_threads if k.parallel else 1,
            parallel=k.parallel, ns_per_element=pe.median, ns_lo=pe.lo, ns_hi=pe.hi,
            seconds_per_call=m.median, rounds=m.rounds, repeats=m.repeats,
            elements_per_s=size / m.median, bytes_per_s=2 * itemsize * size / m.median,
            vectorized=k.vectorized, simd_bits=k.simd_bits, libm_calls=k.libm_calls,
            compile_seconds=k.compile_seconds, cache_hit=k.cache_hit,
            input_scale=plan.scale, seed=plan.seed, note=k.note,
        )
        par = k.parallel
        for prefix, base, invert in (
            ("roof", ("copy", "forward", "numba", dtype, par), False),
            ("speedup_vs_tanh", ("tanh", k.form, "numba", dtype, par), False),
            ("speedup_vs_np_tanh", ("tanh", k.form, "numpy", dtype, False), False),
            ("speedup_vs_numpy", (k.function, k.form, "numpy", dtype, False), False),
            ("speedup_vs_serial", (k.function, k.form, k.impl, dtype, False), False),
            ("cost_vs_plus", ("plus", "forward", "numba", dtype, par), True),
        ):
            if (prefix == "speedup_vs_serial" and not par) or (prefix == "speedup_vs_numpy" and k.backend != "numba"):
                continue
            r = _ratio(ms, base, key, invert)
            if r:
                name = "roof_fraction" if prefix == "roof" else prefix
                row[name], row[f"{prefix}_lo"], row[f"{prefix}_hi"] = r
        rows.append(row)
    return rows


def accuracy_columns(k) -> dict:
    """Max ULP / abs error of one kernel against the mpmath reference, with its bound."""
    from . import accuracy

    if k.function == "copy":
        return {}
    r = accuracy.measure(k)
    return dict(max_ulp=r["max_ulp"], max_abs=r["max_abs"], bound_ulp=r["bound_ulp"],
                bound_abs=r["bound_abs"], within_bound=r["within_bound"])


def run(plan: Plan, writer, progress_factory=None, log=print) -> dict:
    """Compile, measure accuracy, then time group by group, writing each group's rows as soon
    as it finishes. Returns a summary of compile and wall times for the metadata sidecar."""
    t_start = time.perf_counter()  # the caller has run check_memory before creating the run folder
    bar = progress_factory(total=count_kernels(plan), desc="compile") if progress_factory else None
    t0 = time.perf_counter()
    ks = compile_all(plan, bar)
    compile_wall = time.perf_counter() - t0
    if bar:
        bar.close()

    acc = {}  # (function, form, impl, dtype) -> columns; parallel kernels share the serial arithmetic
    if plan.accuracy:
        serial = [k for k in ks if not k.parallel]
        bar = progress_factory(total=len(serial), desc="accuracy") if progress_factory else None
        for k in serial:
            acc[_key(k)[:4]] = accuracy_columns(k)
            if bar:
                bar.update(1)
        if bar:
            bar.close()

    rng = np.random.default_rng(plan.seed)
    groups = [(d, s) for d in plan.dtypes for s in plan.sizes]
    bar = progress_factory(total=len(groups), desc="timing") if progress_factory else None
    t0 = time.perf_counter()
    with threads.limit(plan.parallel_threads or 1):
        _torch_single_thread()
        for dtype, size in groups:
            group = [k for k in ks if k.dtype == dtype]
            if bar:
                bar.set_postfix_str(f"{dtype} n={size:,}")
            for row in measure_group(plan, group, dtype, size, rng):
                row.update(acc.get((row["function"], row["form"], row["impl"], dtype), {}))
                writer.write(row)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    return {
        "compile_seconds_total": sum(k.compile_seconds for k in ks),
        "compile_wall_seconds": compile_wall,
        "kernels_compiled": sum(1 for k in ks if k.backend == "numba" and not k.cache_hit),
        "kernels_from_cache": sum(1 for k in ks if k.backend == "numba" and k.cache_hit),
        "timing_wall_seconds": time.perf_counter() - t0,
        "wall_seconds": time.perf_counter() - t_start,
    }


def _torch_single_thread() -> None:
    """torch rows are compared with the serial kernels, at one thread (threads.limit set the
    parallel count for Numba's prange kernels)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
