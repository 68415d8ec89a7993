"""The kernel benchmark: plan, compile, check accuracy, time interleaved, write rows.

One *group* is (dtype, size): every selected kernel at that dtype and size, serial and
parallel, plus two references (the copy kernel = memory roof, ``plus`` = the seed's baseline),
is timed round-robin in one harness call. Every ratio in a row (speedup over tanh, over
np.tanh, over the same function's NumPy code, over the serial kernel, cost relative to plus,
fraction of the copy roof) is paired by round within that group, never computed across groups
or runs.

The timing happens in ``plan.processes`` fresh worker processes (``mathbench.worker``), one after
another, each timing every group with its share of the budget: timings move more between
processes than between rounds, so a row's interval is taken across the processes (stats.combine).
The samples behind every row (each process's per-round seconds per call) go to ``samples.csv``
(group_samples), written just before the group's rows, so no row is without its samples.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .core import harness, stats, threads
from .functions import kernels, registry
from .core.errors import UsageError

DEFAULT_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)

COLUMNS = [
    "function", "form", "impl", "backend", "libm", "dtype", "size", "threads", "parallel",
    "ns_per_element", "ns_lo", "ns_hi", "seconds_per_call", "rounds", "repeats",
    "processes", "rounds_per_process", "interval_method",
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
    processes: int = 3  # fresh worker processes timing every group (budget split between them)
    kernels: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# inputs


def make_input(act: registry.Activation, form: str, n: int, dtype: str, z: np.ndarray, scale: float,
               denormals: bool, forward_kernel=None, x: Optional[np.ndarray] = None) -> np.ndarray:
    """Inputs from ``z``, n seeded standard-normal draws: scale * z, |.| for positive domains, no
    subnormals unless asked. dfdy kernels get y = f(x), what backprop hands them (``x``: the x
    already made for this domain)."""
    if x is not None:
        return _forward(forward_kernel, x) if form == "dfdy" else x
    dt = np.dtype(dtype)
    x = (z * scale).astype(dt)
    if act.domain == "positive":
        np.abs(x, out=x)
    tiny = np.finfo(dt).tiny
    if denormals:
        x[::7] = (x[::7] * tiny * 2.0 ** -10).astype(dt)  # every 7th element subnormal
    else:
        small = np.abs(x) < tiny
        x[small] = np.copysign(tiny, x[small]) if act.domain == "real" else tiny
    return _forward(forward_kernel, x) if form == "dfdy" else x


def _forward(kernel, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    kernel.call(x, kernel.param, y)
    return y


def _fast_forward(function: str) -> str:
    """The implementation that makes dfdy inputs y = f(x): numba_simd where there is one (accurate
    and vectorized: a libm loop costs 0.2 s per 1e7 inputs in every process), else the default."""
    act = registry.get(function)
    return "numba_simd" if "numba_simd" in act.impls else registry.resolve(function)[1].name


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
# measuring: each worker process times every group (time_groups); the parent combines the
# processes' samples into rows (group_rows)


class Timing(NamedTuple):
    """One candidate's timing in one process (harness.Measurement has the same two fields)."""
    repeats: int
    samples: np.ndarray  # seconds per call, one per round


def _key(k) -> tuple:
    return (k.function, k.form, k.impl, k.dtype, k.parallel)


def time_group(plan: Plan, group: list, dtype: str, size: int, rng, slower_than: Optional[dict] = None) -> dict:
    """Time every kernel of one (dtype, size) group interleaved in this process: {key: Measurement}.
    ``slower_than``: {key: seconds per call} lower bounds; a kernel known to take a whole sample
    per call runs once per sample without calibrating (saves one slow call per kernel)."""
    z = rng.standard_normal(size)  # one draw per group shared by every input: cheap, and identical in each process
    # One x per domain, read by every function's f and f' (kernels never write their input: making
    # one array per function cost seconds per 1e7 group); one y = f(x) per function for g(y).
    xs, inputs = {}, {}
    for k in group:
        if (k.function, k.form) in inputs:
            continue
        act = registry.get(k.function) if k.function != "copy" else registry.get("plus")
        fwd = None
        if k.form == "dfdy":
            fwd = kernels.get(k.function, _fast_forward(k.function), "forward", dtype, False)
        if act.domain not in xs:
            xs[act.domain] = make_input(act, "forward", size, dtype, z, plan.scale, plan.denormals)
        inputs[(k.function, k.form)] = make_input(act, k.form, size, dtype, z, plan.scale, plan.denormals, fwd,
                                                  xs[act.domain])
    out = np.empty(size, dtype=dtype)
    out.fill(0)  # shared, and touched now: no page faults inside timings (np.zeros maps lazily)

    cands = []
    for k in group:
        x = inputs[(k.function, k.form)]
        cands.append(harness.Candidate(_key(k), (lambda k=k, x=x: k.call(x, k.param, out)), size))
    sample_time = max(plan.budget / (plan.samples * len(cands)), 2e-5)
    known = {key: 1 for key, t in (slower_than or {}).items() if t >= sample_time}
    # at >= 1e6 elements the (untimed) calibration call is the warm-up: a second one would
    # double the cost of the largest sizes for no measurable effect (buffers are pre-faulted)
    return harness.measure_interleaved(
        cands, sample_time=sample_time, samples=plan.samples, min_samples=plan.min_samples,
        max_time=plan.budget, warmup=1 if size < 1_000_000 else 0, seed=plan.seed, known_repeats=known)


def time_groups(plan: Plan, ks: list):
    """One process's timing of every group, in run order: yields (dtype, size, {key: Measurement}).
    Inputs come from one seeded stream, so every process times the same inputs."""
    rng = np.random.default_rng(plan.seed)
    floor = {}  # key -> (size, median seconds per call): a call on more elements takes no less
    with threads.limit(plan.parallel_threads or 1):
        _torch_single_thread()
        for dtype, size in groups(plan):
            slower = {key: t for key, (n, t) in floor.items() if n <= size}
            ms = time_group(plan, [k for k in ks if k.dtype == dtype], dtype, size, rng, slower)
            floor.update({key: (size, float(np.median(m.samples))) for key, m in ms.items()})
            yield dtype, size, ms


def groups(plan: Plan) -> list:
    return [(d, s) for d in plan.dtypes for s in plan.sizes]


def _ratio(per_process: list, base_key, key, invert=False) -> Optional[stats.Interval]:
    """Paired ratio base/this (or this/base with invert), per round within each process, then
    combined over the processes; None if the base was not measured."""
    if base_key not in per_process[0] or key not in per_process[0]:
        return None
    num, den = (key, base_key) if invert else (base_key, key)
    return stats.combine([stats.pair_ratios(p[num].samples, p[den].samples) for p in per_process])


def _numpy_baseline(function: str) -> str:
    act = registry.REGISTRY.get(function)  # the copy kernel is not a registry entry
    return act.numpy_baseline if act else "numpy"


def group_rows(plan: Plan, group: list, dtype: str, size: int, per_process: list) -> list[dict]:
    """One group's rows from every process's timings (a list of {key: Timing or Measurement})."""
    rounds = [len(next(iter(p.values())).samples) for p in per_process]
    rows = []
    itemsize = np.dtype(dtype).itemsize
    for k in group:
        key = _key(k)
        t = stats.combine([p[key].samples for p in per_process])
        ns = 1e9 / size
        row = dict(
            **_row_key(plan, k, dtype, size), backend=k.backend, libm=k.libm, parallel=k.parallel, ns_per_element=t.value * ns, ns_lo=t.lo * ns, ns_hi=t.hi * ns,
            seconds_per_call=t.value, rounds=sum(rounds), repeats=int(np.median([p[key].repeats for p in per_process])),
            processes=len(per_process), rounds_per_process=min(rounds), interval_method=t.method,
            elements_per_s=size / t.value, bytes_per_s=2 * itemsize * size / t.value,
            vectorized=k.vectorized, simd_bits=k.simd_bits, libm_calls=k.libm_calls,
            compile_seconds=k.compile_seconds, cache_hit=k.cache_hit,
            input_scale=plan.scale, seed=plan.seed, note=k.note,
        )
        par = k.parallel
        for prefix, base, invert in (
            ("roof", ("copy", "forward", "numba", dtype, par), False),
            ("speedup_vs_tanh", ("tanh", k.form, "numba", dtype, par), False),
            ("speedup_vs_np_tanh", ("tanh", k.form, "numpy", dtype, False), False),
            ("speedup_vs_numpy", (k.function, k.form, _numpy_baseline(k.function), dtype, False), False),
            ("speedup_vs_serial", (k.function, k.form, k.impl, dtype, False), False),
            ("cost_vs_plus", ("plus", "forward", "numba", dtype, par), True),
        ):
            if (prefix == "speedup_vs_serial" and not par) or (prefix == "speedup_vs_numpy" and k.backend != "numba"):
                continue
            r = _ratio(per_process, base, key, invert)
            if r:
                name = "roof_fraction" if prefix == "roof" else prefix
                row[name], row[f"{prefix}_lo"], row[f"{prefix}_hi"] = r.value, r.lo, r.hi
        rows.append(row)
    return rows


def _row_key(plan: Plan, k, dtype: str, size: int) -> dict:
    """A row's key (runs.SAMPLE_KEY): what names it in results.csv and samples.csv."""
    return dict(function=k.function, form=k.form, impl=k.impl, dtype=dtype, size=size,
                threads=plan.parallel_threads if k.parallel else 1)


def group_samples(plan: Plan, group: list, dtype: str, size: int, per_process: list) -> list[dict]:
    """The timings behind group_rows' rows, in runs.SAMPLE_COLUMNS: one dict per kernel, process
    and round (seconds per call; ``repeats``: that process's calls per round)."""
    out = []
    for k in group:
        key = _key(k)
        row_key = _row_key(plan, k, dtype, size)
        for i, p in enumerate(per_process):
            out += [dict(row_key, process=i, round=j, seconds_per_call=float(s), repeats=int(p[key].repeats))
                    for j, s in enumerate(p[key].samples)]
    return out


def measure_group(plan: Plan, group: list, dtype: str, size: int, rng) -> list[dict]:
    """Time one group in this process and return its rows (one process: within-process intervals)."""
    return group_rows(plan, group, dtype, size, [time_group(plan, group, dtype, size, rng)])


def accuracy_columns(k) -> dict:
    """Max ULP / abs error of one kernel against the mpmath reference, with its bound."""
    from .accuracy import measure as accuracy

    if k.function == "copy":
        return {}
    r = accuracy.measure(k)
    return dict(max_ulp=r["max_ulp"], max_abs=r["max_abs"], bound_ulp=r["bound_ulp"],
                bound_abs=r["bound_abs"], within_bound=r["within_bound"])


def run(plan: Plan, writer, progress_factory=None, log=print, samples_writer=None) -> dict:
    """Compile (filling the disk cache the workers load from), measure accuracy, then time every
    group in each of ``plan.processes`` fresh worker processes in turn, writing a group's rows as
    soon as the last process has timed it (its samples first, as one block, to ``samples_writer``
    if given). Returns compile and wall times for the metadata."""
    t_start = time.perf_counter()  # the caller has run check_memory before creating the run folder
    sources = sources_version()  # before compiling: the workers must time exactly this code
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

    # Rows are written as the last process finishes each group: a group's rows need every process.
    per_group = {g: [] for g in groups(plan)}
    t0 = time.perf_counter()
    process_seconds, process_compiled = [], []
    for i in range(plan.processes):
        bar = progress_factory(total=len(per_group), desc=f"timing {i + 1}/{plan.processes}") \
            if progress_factory else None
        t1 = time.perf_counter()
        for dtype, size, timings, compiled in worker_groups(plan, i, sources):
            per_group[(dtype, size)].append(timings)
            if i == plan.processes - 1:
                group = [k for k in ks if k.dtype == dtype]
                if samples_writer is not None:  # before the rows: a kill in between leaves samples without rows
                    samples_writer.write_many(group_samples(plan, group, dtype, size, per_group[(dtype, size)]))
                for row in group_rows(plan, group, dtype, size, per_group[(dtype, size)]):
                    row.update(acc.get((row["function"], row["form"], row["impl"], dtype), {}))
                    writer.write(row)
            if bar:
                bar.set_postfix_str(f"{dtype} n={size:,}")
                bar.update(1)
        process_seconds.append(time.perf_counter() - t1)
        process_compiled.append(compiled)
        if bar:
            bar.close()
    return {
        "compile_seconds_total": sum(k.compile_seconds for k in ks),
        "compile_wall_seconds": compile_wall,
        "kernels_compiled": sum(1 for k in ks if k.backend == "numba" and not k.cache_hit),
        "kernels_from_cache": sum(1 for k in ks if k.backend == "numba" and k.cache_hit),
        "timing_wall_seconds": time.perf_counter() - t0,
        "processes": plan.processes,
        "process_wall_seconds": process_seconds,  # each worker, start-up and kernel loading included
        "process_kernels_compiled": process_compiled,  # 0: the worker loaded every kernel from the cache
        "sources_version": sources,
        "wall_seconds": time.perf_counter() - t_start,
    }


# --------------------------------------------------------------------------------------------
# worker processes


class WorkerFailed(UsageError):
    """A timing process ended before sending every group."""


def process_plan(plan: Plan) -> Plan:
    """What one of N worker processes measures: the group budget split N ways (the run's total is
    unchanged) and the round floor too, so the processes together still reach it."""
    n = plan.processes
    return dataclasses.replace(plan, budget=plan.budget / n, min_samples=-(-plan.min_samples // n))


def worker_command() -> list[str]:
    return [sys.executable, "-m", "mathbench.worker"]


def worker_env() -> dict:
    """The parent's environment, plus what makes a worker load the parent's kernels: the same
    kernel cache, thread ceiling and package."""
    from .core import codegen

    env = dict(os.environ, MATHBENCH_CACHE_DIR=str(codegen.cache_dir()),
               NUMBA_NUM_THREADS=str(threads.max_threads()))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def worker_job(plan: Plan, sources: str) -> str:
    """A worker's stdin: its share of the plan (process_plan) and the parent's sources_version."""
    share = process_plan(plan)
    fields = {f.name: getattr(share, f.name) for f in dataclasses.fields(share) if f.name != "kernels"}
    return json.dumps({"plan": fields, "sources": sources})


def sources_version() -> str:
    """Hash of this package's sources: a worker started after they changed (an edit, a checkout)
    would time other code than the parent compiled and checked, so it refuses to."""
    from .core import codegen

    return codegen.source_hash("", [str(p) for p in Path(__file__).parent.rglob("*.py")])


def worker_groups(plan: Plan, index: int, sources: str):
    """Run worker process ``index`` on the whole plan; yield (dtype, size, {key: Timing}, kernels
    it compiled) as each group arrives. WorkerFailed (one line) if it dies or sends something else.
    ``sources``: the parent's sources_version(), which the worker checks against its own."""
    expected = groups(plan)
    name = f"timing process {index + 1}/{plan.processes}"
    with tempfile.TemporaryFile(mode="w+") as err:  # a file, not a pipe: a chatty worker cannot block
        proc = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, env=worker_env())
        try:
            proc.stdin.write(worker_job(plan, sources))
            proc.stdin.close()
            n = -1
            for n, line in enumerate(proc.stdout):
                try:
                    msg = json.loads(line)
                    got = (msg["dtype"], msg["size"])
                    timings = {tuple(key): Timing(rep, np.asarray(s, dtype=float)) for key, rep, s in msg["timings"]}
                except (ValueError, KeyError, TypeError):
                    got = None
                if n >= len(expected) or got != expected[n]:
                    raise WorkerFailed(f"{name} sent unexpected output: {line.strip()[:80]!r}")
                yield (*got, timings, msg.get("compiled", 0))
            code = proc.wait()
            if code == -signal.SIGINT:  # Ctrl-C reached the worker first: the run was interrupted
                raise KeyboardInterrupt
            err.seek(0)
            text = err.read()
            if code != 0 or n + 1 < len(expected):
                last = ([ln for ln in text.splitlines() if ln.strip()] or ["no message"])[-1].strip()
                where = "after its last group" if n + 1 == len(expected) else \
                    "while timing {} n={:,}".format(*expected[n + 1])
                raise WorkerFailed(f"{name} failed (exit code {code}) {where}: {last}")
            if text.strip():
                print(text.rstrip(), file=sys.stderr)  # warnings: never swallowed
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _torch_single_thread() -> None:
    """torch rows are compared with the serial kernels, at one thread (threads.limit set the
    parallel count for Numba's prange kernels)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
