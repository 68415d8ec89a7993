"""The LSTM sweep: paired, interleaved timing and held-out quality of activation pairs.

One *configuration* is (task, layers, hidden, dtype, threads) plus the run settings. It has one
*variant* per activation pair (cell/gate; the baseline first: ``BASELINE``, tanh and sigmoid
accurate and vectorized, so a candidate's speedup is its own and not scalar libm's; the seed's
scalar-libm ``tanh/sigmoid`` is one of the default candidates, labelled as such) and, with torch
installed, a ``torch.nn.LSTM`` peer. For each repeat r (seed = --seed + r):

1. every variant starts from the same initial weights (``model.init_params`` depends only on
   the seed and the shapes; the torch peer gets a copy) and trains on the same pre-drawn batches
   from the training part of the data (validation excluded);
2. the iterations are cut into chunks and the variants take turns chunk by chunk, the order
   rotating every chunk, so machine drift hits all variants alike; each (repeat, chunk) gives one
   paired timing sample (median seconds per step, split forward / backward / optimizer);
3. between timed steps, every ``val_every`` steps, each variant is evaluated on the validation
   part (the end of the training text or file); the best parameters are kept and, after
   ``patience`` validations without a lower loss, the checkpoint is final (what early stopping
   would keep; training goes on only so that all variants are timed over the same steps);
4. prediction latency (one sequence, batch 1) and throughput (--eval-batch sequences) are timed
   by ``mathbench.harness.measure_interleaved`` (rotating round-robin, paired by round);
5. each variant is restored to its chosen checkpoint and scored once on the test part
   (LM: mean cross-entropy per character, perplexity = exp(loss); classify: binary
   cross-entropy, accuracy, F1), beside trivial baselines of the same test data
   (``baselines``), which flag it "not trained" or "weak".

Per-loop facts (``network.loop_facts``: vectorized, SIMD width, libm calls left in the gate
forward, cell forward, backward and head loops) are read once per compiled variant.

Speedups are ``stats.paired_ratio(time(baseline), time(variant))`` over the paired samples
(> 1: the variant is faster). Quality differences (variant - baseline) pair by repeat/seed.
An interval is a 95% interval (the order-statistic interval of the median, ``stats.median_interval``)
only from at least ``MIN_CI_SAMPLES`` samples; with fewer it is the range (min, max); the
``*_interval`` columns say which, ``interval_method`` which 95% interval. JIT compile time is measured before
any timing (``Model.compile``) in its own column.

Threads are set explicitly for every variant before each chunk and recorded per row: Numba
variants run Numba at the row's thread count (``parallel=True`` kernels when > 1) with BLAS at
one thread (the model calls BLAS from Numba workers); the torch peer runs torch at the row's
thread count. Defaults oversubscribe two cores and time 10-100x slow, so nothing runs on them.

All rows of a configuration are written together when it finishes. Re-running into the same
folder skips finished configurations (by ``config_id``) and redoes unfinished ones; partial or
duplicated groups left by an interruption are removed first, so no row is lost or duplicated.
The key holds every setting that changes a row; the code version (``code_version``: a hash of the
measuring sources and library versions) must match an earlier session's unless the caller accepts
mixing (``--resume-anyway``), and every row records it.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import inspect
import io
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mathbench import c as _jit_c, codegen, exp_core, harness, registry, runs, stats, threads
from mathbench import UsageError

from . import baselines as BL
from . import data as D
from . import optim, peers, tasks
from . import variants as _kernel_variants  # (``variants`` below is this sweep's list of pairs)
# Importing the model loads SciPy's BLAS now, before any thread limit is set, so every limit
# below reaches it (a library loaded inside a threadpool_limits block keeps its default).
from .network import LOOPS, Model, ModelConfig, loop_facts, matmul_flops
from .optim import Adam

KIND = "lstm"
#: Accurate and vectorized in both slots: what a candidate must beat to claim a saving.
BASELINE = ("tanh:numba_simd", "sigmoid:numba_simd")
#: The seed project's configuration (scalar libm tanh and exp): shows what scalar libm costs,
#: and keeps the earlier "ISRU is faster" measurement reproducible.
SEED_PAIR = ("tanh", "sigmoid")
DEFAULT_PAIRS = [BASELINE, ("isru", "sigmoid:numba_simd"), ("isru", "isru_sigmoid"),
                 ("isru:numba_rsqrt", "sigmoid:numba_simd"), SEED_PAIR]
MIN_CI_SAMPLES, CI, RANGE = stats.MIN_CI_SAMPLES, stats.CI, stats.RANGE  # the interval rule lives in stats
TASKS = tasks.NAMES
DTYPES = ("float32", "float64")

COLUMNS = [
    # identity of the configuration and the variant
    "config_id", "task", "layers", "hidden", "dtype", "threads", "parallel",
    "variant", "backend", "cell", "gate", "baseline", "role",
    # run settings (constant within a run, repeated so every row stands alone)
    "seq_len", "batch", "eval_batch", "iterations", "repeats", "chunks", "seed",
    "optimizer", "lr", "clip", "val_every", "patience", "data", "data_fingerprint", "n_in", "n_out", "parameters",
    # JIT
    "compile_s",
    # per loop of the compiled kernels (network.LOOPS): vectorized?, SIMD bits, libm calls left
    *[f"{loop}_{k}" for loop in LOOPS for k in ("vectorized", "simd_bits", "libm")],
    # training step, seconds per iteration (median over paired samples, 95% interval: see interval_method)
    "train_step_s", "train_step_lo", "train_step_hi",
    "forward_s", "forward_lo", "forward_hi",
    "backward_s", "backward_lo", "backward_hi",
    "optimizer_s", "optimizer_lo", "optimizer_hi",
    # prediction
    "latency_s", "latency_lo", "latency_hi",
    "throughput_seq_per_s", "throughput_lo", "throughput_hi",
    # speedups over the Numba baseline (time(baseline) / time(this row)), paired
    "speedup_train", "speedup_train_lo", "speedup_train_hi",
    "speedup_latency", "speedup_latency_lo", "speedup_latency_hi",
    "speedup_throughput", "speedup_throughput_lo", "speedup_throughput_hi",
    # matrix-product GFLOP/s of the training step (network.matmul_flops / train_step_s), and of one
    # plain square GEMM with the same FLOPs at the row's thread count, timed in the same run
    "train_gflops", "sgemm_gflops", "sgemm_n", "gemm_efficiency",
    # Numba rows: time(torch peer) / time(this row), paired (> 1: faster than torch)
    "vs_torch_train", "vs_torch_train_lo", "vs_torch_train_hi",
    "vs_torch_latency", "vs_torch_latency_lo", "vs_torch_latency_hi",
    # held-out (test) quality at the validation-chosen checkpoint (median over repeats/seeds)
    "loss", "loss_lo", "loss_hi", "perplexity", "perplexity_lo", "perplexity_hi",
    "accuracy", "accuracy_lo", "accuracy_hi", "f1", "f1_lo", "f1_hi",
    "loss_diff", "loss_diff_lo", "loss_diff_hi",
    "accuracy_diff", "accuracy_diff_lo", "accuracy_diff_hi",
    "f1_diff", "f1_diff_lo", "f1_diff_hi",
    "higher_loss_repeats", "train_loss", "diverged",
    # validation (the end of the training data): the chosen checkpoint
    "val_loss", "best_step", "best_steps", "stopped_early_repeats",
    # trivial baselines on the same test data (fit on the training part) and this row's state
    "ref_unigram", "ref_bigram", "ref_majority_acc", "ref_majority_f1", "ref_threshold_acc", "ref_threshold_f1",
    "quality_flag",
    # what the _lo/_hi columns are: "95% CI" (>= MIN_CI_SAMPLES samples; interval_method says which:
    # "order-statistic", or absent in runs made before it: a percentile bootstrap) or "range" (min, max)
    "timing_interval", "latency_interval", "quality_interval", "quality_samples", "interval_method",
    # bookkeeping
    "timing_samples", "latency_samples", "init",
    # how the Numba model ran its recurrence (network.Plan, measured per shape): training batch,
    # latency (batch 1) and throughput (eval batch)
    "plan_train", "plan_latency", "plan_throughput",
    "numba_threads", "blas_threads", "torch_threads", "threading_layer",
    "config_rows", "wall_s", "finished", "code_version",
]


# ============================================================================================
# settings


@dataclass
class Settings:
    tasks: list = field(default_factory=lambda: ["lm"])
    layers: list = field(default_factory=lambda: [1, 2, 3])
    hidden: list = field(default_factory=lambda: [16, 32, 64, 128, 256])
    pairs: list = field(default_factory=lambda: list(DEFAULT_PAIRS))  # baseline first
    dtypes: list = field(default_factory=lambda: ["float32"])
    threads: list = field(default_factory=lambda: sorted({1, threads.max_threads()}))  # serial, all cores
    iterations: int = 80
    repeats: int = 3
    chunks: int = 4
    seq_len: int = 32
    batch: int = 4
    eval_batch: int = 32
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 1e-2
    clip: float = 5.0
    val_every: int = 0  # validate every this many steps (0: iterations // 8)
    patience: int = 4  # validations without improvement after which the checkpoint is final
    peers: str = "auto"  # auto (if torch imports), on (required), off
    latency_rounds: int = 5  # harness rounds per repeat for each prediction timing
    prediction_time: float = 0.05  # seconds of timed rounds per repeat per prediction timing
    eval_chars: int = 8192  # LM: held-out characters evaluated (at most)
    eval_windows: int = 4096  # classify: held-out windows evaluated (at most)
    data: Optional[str] = None
    occupancy_train: Optional[str] = None
    occupancy_test: Optional[str] = None

    def to_dict(self) -> dict:
        return settings_dict(self)


def settings_dict(s) -> dict:
    """A settings dataclass (the sweep's or the accuracy study's) as metadata: pairs as CELL/GATE."""
    d = asdict(s)
    d["pairs"] = [f"{c}/{g}" for c, g in s.pairs]
    return d


def quick_settings() -> Settings:
    """A smoke sweep: both tasks, tiny shapes, a few steps (well under a minute once the
    kernels are in the disk cache)."""
    return Settings(tasks=["lm", "classify"], layers=[1], hidden=[16, 32], threads=[1], iterations=12, repeats=2,
                    chunks=2, seq_len=16, batch=4, eval_batch=16, latency_rounds=3, prediction_time=0.01,
                    eval_chars=1024, eval_windows=256, pairs=[BASELINE, ("isru", "sigmoid:numba_simd"), SEED_PAIR])


@dataclass(frozen=True)
class Variant:
    backend: str  # "numba" or "torch"
    cell: str
    gate: str

    @property
    def label(self) -> str:
        return f"{self.cell}/{self.gate}" if self.backend == "numba" else f"torch {self.cell}/{self.gate}"

    @property
    def is_baseline(self) -> bool:
        return self.backend == "numba" and (self.cell, self.gate) == BASELINE

    @property
    def role(self) -> str:
        if self.backend != "numba":
            return "peer"
        return "baseline" if self.is_baseline else "seed (scalar libm)" if (self.cell, self.gate) == SEED_PAIR \
            else "candidate"


def display_name(label: str, role: str = "") -> str:
    """A variant's name in summaries: the seed's pair says what it is."""
    return f"{label} (seed: scalar libm)" if str(role).startswith("seed") else label


@dataclass(frozen=True)
class Config:
    task: str
    layers: int
    hidden: int
    dtype: str
    threads: int


def parse_pair(text: str) -> tuple[str, str]:
    """``"isru"`` (cell only, with the baseline's gate) or ``"cell/gate"``; each a registry spec
    with a Numba implementation and a backprop form."""
    cell, sep, gate = text.strip().partition("/")
    if not sep:
        gate = BASELINE[1]
    cell, gate = cell.strip(), gate.strip()
    if not cell or not gate:
        raise UsageError(f"--pairs entry {text!r}: expected CELL/GATE, e.g. isru/sigmoid")
    for slot, spec in (("cell", cell), ("gate", gate)):
        check_activation(spec, slot)
    return cell, gate


def check_activation(spec: str, slot: str) -> None:
    act, impl = registry.resolve(spec)  # UnknownName lists the valid names
    if impl.backend != "numba":
        raise UsageError(f"{slot} activation {spec!r} is a {impl.backend} implementation; the LSTM needs numba")
    if not act.has_backprop_form or impl.dfdy is None:
        raise UsageError(f"{slot} activation {spec!r} has no backprop form g(y) = f'(f^-1(y)); "
                         "the LSTM's backward pass needs one")


def validate(s: Settings) -> None:
    for t in s.tasks:
        if t not in TASKS:
            raise UsageError(f"unknown task {t!r}; valid: {', '.join(TASKS)}")
    for d in s.dtypes:
        if d not in DTYPES:
            raise UsageError(f"unknown dtype {d!r}; valid: {', '.join(DTYPES)}")
    for name in ("layers", "hidden"):
        vals = getattr(s, name)
        if not vals:
            raise UsageError(f"--{name} is empty")
        for v in vals:
            if v < 1:
                raise UsageError(f"--{name} {v}: must be positive")
    for name in ("iterations", "repeats", "chunks", "seq_len", "batch", "eval_batch", "latency_rounds"):
        v = getattr(s, name)
        if v < 1:
            raise UsageError(f"--{name.replace('_', '-')} {v}: must be positive")
    for name in ("val_every", "patience"):
        if getattr(s, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(s, name)}: must be >= 0")
    if s.seed < 0:
        raise UsageError(f"--seed {s.seed}: must be non-negative")
    if not (s.lr > 0 and math.isfinite(s.lr)):
        raise UsageError(f"--lr {s.lr}: must be a positive number")
    if not (s.clip >= 0 and math.isfinite(s.clip)):
        raise UsageError(f"--clip {s.clip}: must be >= 0 (0: no clipping)")
    if not s.threads:
        raise UsageError("--threads is empty")
    for t in s.threads:
        if not 1 <= t <= threads.max_threads():
            raise UsageError(f"thread count {t} out of range 1..{threads.max_threads()}")
    if s.optimizer not in ("adam",):
        raise UsageError(f"unknown optimizer {s.optimizer!r}; valid: adam")
    if s.pairs[0] != BASELINE:
        raise UsageError("internal: the baseline pair must come first")
    if (s.occupancy_train is None) != (s.occupancy_test is None):
        raise UsageError("--occupancy-train and --occupancy-test go together")
    if s.peers == "on":
        peers.require()


def configs(s: Settings) -> list[Config]:
    return [Config(task, L, H, dt, th) for task in s.tasks for dt in s.dtypes for th in s.threads
            for L in s.layers for H in s.hidden]


def variants(s: Settings, with_peer: bool) -> list[Variant]:
    vs = [Variant("numba", c, g) for c, g in s.pairs]
    if with_peer:  # torch.nn.LSTM's fixed activations
        vs.append(Variant(peers.DEFAULT, "tanh", "sigmoid"))
    return vs


def val_every(s: Settings) -> int:
    return s.val_every or max(1, s.iterations // 8)


def use_peer(s: Settings) -> bool:
    return s.peers == "on" or (s.peers == "auto" and peers.available())


# ============================================================================================
# data


def load_datasets(s: Settings) -> dict:
    """task -> TextData / SensorData, checked against --seq-len (UsageError on bad files)."""
    out = {t: tasks.get(t).load_data(s) for t in tasks.NAMES if t in s.tasks}
    for ds in out.values():
        ds.check_seq_len(s.seq_len)
    return out


def data_info(ds, task: str) -> dict:
    return tasks.get(task).data_info(ds)


def config_id(s: Settings, c: Config, ds) -> str:
    """Stable identity of a configuration under these settings (the resume key, with
    ``code_version``): every setting that changes one of its rows is in it."""
    parts = [c.task, f"L{c.layers}", f"H{c.hidden}", c.dtype, f"t{c.threads}", f"T{s.seq_len}", f"B{s.batch}",
             f"E{s.eval_batch}", f"N{s.iterations}", f"R{s.repeats}", f"K{s.chunks}", f"s{s.seed}",
             f"{s.optimizer}{s.lr:g}c{s.clip:g}", ",".join(f"{a}/{b}" for a, b in s.pairs), ds.fingerprint,
             f"peer={peers.version() if use_peer(s) else 'off'}",
             f"P{s.latency_rounds}x{s.prediction_time:g}", f"ev{s.eval_chars}c{s.eval_windows}w",
             f"V{val_every(s)}p{s.patience}"]
    return "|".join(parts)


def code_files(pairs) -> set:
    """The sources the numbers run through: this sweep, the model, optimizer, data, torch peer,
    timing harness, statistics, thread control, code generation, and the scalar activations of
    the chosen pairs."""
    files = {m.__file__ for m in (sys.modules[__name__], sys.modules[Model.__module__], optim, D, BL, peers,
                                  peers.get(), harness, stats, registry, threads, codegen)}
    files |= set(_kernel_variants.template_sources()) | {_kernel_variants.__file__, tasks.__file__}
    files |= {inspect.getsourcefile(_jit_c), inspect.getsourcefile(exp_core.py_func)}  # JIT options, SIMD exp
    for pair in pairs:
        for spec in pair:
            impl = registry.resolve(spec)[1]
            files |= {inspect.getsourcefile(fn.py_func) for fn in (impl.forward, impl.dfdy)}
    return files


def hash_files(files) -> str:
    """Hash of the files' contents (not their paths) and of the numeric libraries' versions."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(Path(path).read_bytes())
    for lib in ("numpy", "numba", "llvmlite"):
        h.update(f"{lib} {sys.modules[lib].__version__}".encode() if lib in sys.modules else lib.encode())
    return h.hexdigest()[:16]


_CODE_VERSIONS: dict = {}


def code_version(s, extra: tuple = ()) -> str:
    """``hash_files(code_files(pairs) | extra)``: a resumed run must not silently mix rows measured
    by different code (``extra``: further sources, e.g. the accuracy study's). Computed once per
    process: the code that runs is the code imported, whatever happens to the files later."""
    key = (tuple(s.pairs), tuple(extra))
    if key not in _CODE_VERSIONS:
        _CODE_VERSIONS[key] = hash_files(code_files(s.pairs) | set(extra))
    return _CODE_VERSIONS[key]


# ============================================================================================
# engines


def _params_count(tensors: dict) -> int:
    return int(sum(np.asarray(v).size for v in tensors.values()))


class NumbaEngine:
    """``lstm_numba.network.Model`` + ``lstm_numba.optim.Adam``, behind the interface the sweep
    times (the same one as a peer's ``Engine``, ``lstm_numba.peers``). The same primitives as ``train.train``:
    ``forward(..., validate=False)`` (the sweep's batches are C-contiguous arrays of the model's
    types, checked once when drawn), ``backward()``, ``Adam.step()``; buffers for every batch
    shape are allocated up front (``Model.prepare``), never inside a timed call."""

    backend = "numba"

    def __init__(self, model: Model, s: Settings):
        self.model = model
        self.opt = Adam(model, lr=s.lr, clip=s.clip)
        self.init = "same"
        for b in (s.batch, 1, s.eval_batch):
            model.prepare(s.seq_len, b)
        # how it runs the three shapes it is timed at (the rows record them)
        self.plans = {"plan_train": model.plan(s.seq_len, s.batch).label,
                      "plan_latency": model.plan(s.seq_len, 1, train=False).label,
                      "plan_throughput": model.plan(s.seq_len, s.eval_batch, train=False).label}

    def train_step(self, x, y):
        clock = time.perf_counter
        m = self.model
        t0 = clock()
        loss = m.forward(x, y, None, validate=False)
        t1 = clock()
        m.backward()
        t2 = clock()
        self.opt.step()
        t3 = clock()
        return t1 - t0, t2 - t1, t3 - t2, loss

    def snapshot(self):
        """The parameters, for the validation-chosen checkpoint."""
        return self.model.params.flat.copy()

    def restore(self, snap) -> None:
        self.model.params.flat[:] = snap

    def predict(self, x):
        """Probabilities (LM softmax (T, B, V), classify sigmoid (B,)): ``train.predict_proba_batch``
        without its input checks: the forward-only route."""
        return self.model.predict(x, None, validate=False)

    def evaluate(self, x, y):
        loss = self.model.forward(x, y, None, validate=False)
        p = self.model.outputs()
        pred = self.model.task.labels(p)
        return loss, pred


def model_config(c: Config, v: Variant, ds, seed: int) -> ModelConfig:
    kw = tasks.get(c.task).model_kwargs(ds)
    return ModelConfig(c.task, hidden=c.hidden, layers=c.layers, cell=v.cell, gate=v.gate, dtype=c.dtype,
                       parallel=c.threads > 1, seed=seed, **kw)


def make_engine(c: Config, v: Variant, ds, seed: int, s: Settings, init_tensors: Optional[dict] = None):
    """A fresh engine for one variant; every Numba variant of a seed starts from the same
    weights, and the torch peer gets a copy of them (``init_tensors``)."""
    if v.backend != "numba":  # a peer (``lstm_numba.peers``) of the same shape
        return peers.engine(model_config(c, v, ds, seed), v.backend, optimizer=s.optimizer, lr=s.lr,
                            clip=s.clip or None, init_weights=init_tensors)
    return NumbaEngine(Model(model_config(c, v, ds, seed)), s)


def compile_variant(c: Config, v: Variant, ds, s: Settings) -> float:
    """Seconds to compile (or load from the disk cache) what variant ``v`` runs, before timing."""
    if v.backend != "numba":
        t0 = time.perf_counter()
        e = make_engine(c, v, ds, s.seed, s)
        x, y = _batches(ds, c, s, np.random.default_rng(0), 1)[0]
        e.train_step(x, y)
        e.predict(x)
        return time.perf_counter() - t0
    return Model(model_config(c, v, ds, s.seed)).compile()


# ============================================================================================
# threads


def config_threads(n: int):
    """Explicit thread counts for one configuration: Numba ``n`` (the parallel kernels split
    work into ``n`` chunks; serial kernels ignore it), torch ``n`` (the peer), BLAS 1 (the
    parallel kernels call BLAS from Numba workers; torch has its own GEMMs). Numba and torch
    never run at the same moment, so both pools at ``n`` do not oversubscribe; each is at the
    row's count when it runs."""
    return threads.limit(n, blas=1)


def _thread_columns() -> dict:
    info = threads.thread_info()
    blas = sorted({b["threads"] for b in info["blas"]})
    return {"numba_threads": info["numba_threads"], "blas_threads": ",".join(map(str, blas)),
            "torch_threads": info["torch_threads"], "threading_layer": info["numba_threading_layer"]}


# ============================================================================================
# measuring one configuration


def _batches(ds, c: Config, s: Settings, rng, n: int) -> list:
    """``n`` training batches drawn once per seed, shared by every variant (same data order)."""
    task = tasks.get(c.task)
    return [tuple(np.ascontiguousarray(a) for a in task.train_batch(ds, rng, s.batch, s.seq_len, c.dtype))
            for _ in range(n)]


def _eval_set(ds, c: Config, s: Settings, part: str = "test") -> list:
    """Held-out batches of ``part``: "test" (scored once, at the chosen checkpoint) or "val"."""
    return tasks.get(c.task).eval_batches(ds, s, c.dtype, part)


def reference_scores(ds, c: Config, eval_set: list) -> dict:
    """The trivial baselines (``baselines``) on exactly the test batches the variants are scored
    on, fit on the training part."""
    return tasks.get(c.task).reference_scores(ds, eval_set)


def _evaluate(engine, eval_set, task: str) -> dict:
    """Held-out loss (weighted mean over predictions) and the task's scores (``Task.scores``:
    accuracy; F1 for classify)."""
    total, n = 0.0, 0
    ys, ps = [], []
    for x, y in eval_set:
        loss, pred = engine.evaluate(x, y)
        k = int(np.asarray(y).size)
        total += float(loss) * k
        n += k
        ys.append(np.asarray(y))
        ps.append(np.asarray(pred))
    return {"loss": total / n, **tasks.get(task).scores(ys, ps)}


def _chunks(n: int, k: int) -> list[range]:
    k = max(1, min(k, n))
    return [range(i * n // k, (i + 1) * n // k) for i in range(k)]


def _put(row: dict, names: tuple, values: tuple) -> None:
    for n, v in zip(names, values):
        row[n] = v


@dataclass
class _Track:
    """Everything measured for one variant across repeats."""
    step: list = field(default_factory=list)  # per (repeat, chunk): median seconds per step
    fwd: list = field(default_factory=list)
    bwd: list = field(default_factory=list)
    opt: list = field(default_factory=list)
    lat: list = field(default_factory=list)  # per (repeat, round)
    thr: list = field(default_factory=list)
    quality: list = field(default_factory=list)  # per repeat: dict (test, at the chosen checkpoint)
    val: list = field(default_factory=list)  # per repeat: validation loss at the chosen checkpoint
    best: list = field(default_factory=list)  # per repeat: steps at the chosen checkpoint
    early: int = 0  # repeats whose patience ran out before the last step
    train_loss: list = field(default_factory=list)
    threads: dict = field(default_factory=dict)
    init: str = "same"
    plans: dict = field(default_factory=dict)


class _Checkpoint:
    """One variant's validation in one repeat: evaluated every ``val_every`` steps, the best
    parameters kept, and after ``patience`` validations without a lower loss the checkpoint is
    final -- the model early stopping would have kept. Training goes on only so that every
    variant is timed over the same steps; later validations are skipped. An engine without
    ``snapshot`` (a test double) is validated once, at the end."""

    def __init__(self, engine, patience: int, val_set: list, task: str):
        self.engine, self.patience, self.val_set, self.task = engine, patience, val_set, task
        self.can = hasattr(engine, "snapshot")
        self.loss, self.step, self.snap, self.bad, self.final = math.inf, 0, None, 0, False

    def check(self, step: int, last: bool) -> None:
        if self.final or not (self.can or last):
            return
        with np.errstate(all="ignore"):
            try:
                loss = _evaluate(self.engine, self.val_set, self.task)["loss"]
            except (FloatingPointError, ValueError, OverflowError):
                loss = math.nan
        if loss < self.loss or (last and not self.can):  # NaN never improves
            self.loss, self.step, self.bad = loss, step, 0
            if self.can:
                self.snap = self.engine.snapshot()
        else:
            self.bad += 1
            self.final = self.patience > 0 and self.bad >= self.patience
        if not math.isfinite(self.loss) and last:
            self.loss, self.step = loss, step  # never finite: report the end state

    def restore(self) -> None:
        if self.snap is not None:
            self.engine.restore(self.snap)


def measure_config(s: Settings, c: Config, ds, vs: list[Variant], compile_s: dict,
                   on_repeat: Optional[Callable[[], None]] = None, facts: Optional[dict] = None) -> list[dict]:
    """Run every repeat of one configuration and return its rows (one per variant); ``facts``:
    ``(task, dtype, parallel, variant) -> network.loop_facts`` of the compiled Numba variants."""
    with config_threads(c.threads):
        return _measure(s, c, ds, vs, compile_s, on_repeat, facts or {})


def _measure(s, c, ds, vs, compile_s, on_repeat, facts) -> list[dict]:
    t_start = time.perf_counter()
    eval_set = _eval_set(ds, c, s)
    val_set = _eval_set(ds, c, s, "val")
    every = val_every(s)
    x1 = np.ascontiguousarray(eval_set[0][0][:, :1])  # one held-out sequence, batch 1
    xb = eval_set[0][0]
    if xb.shape[1] < s.eval_batch:  # held-out smaller than one eval batch: tile to size
        reps = -(-s.eval_batch // xb.shape[1])
        xb = np.concatenate([xb] * reps, axis=1)[:, :s.eval_batch]
    xb = np.ascontiguousarray(xb)
    thread_cols = _thread_columns()
    tracks = {v: _Track() for v in vs}
    parts = _chunks(s.iterations, s.chunks)
    n_var = len(vs)
    params_count = None
    for r in range(s.repeats):
        seed = s.seed + r
        batches = _batches(ds, c, s, np.random.default_rng([seed, 1]), s.iterations)
        engines = {}
        init_tensors = None
        for v in vs:
            engines[v] = make_engine(c, v, ds, seed, s, init_tensors if v.backend != "numba" else None)
            if v.backend == "numba" and init_tensors is None:
                init_tensors = {k: np.array(a) for k, a in engines[v].model.params.tensors().items()}
                params_count = _params_count(init_tensors)
            tracks[v].init = getattr(engines[v], "init", "same")
            tracks[v].plans = getattr(engines[v], "plans", {})  # (peers and test doubles have none)
        times = {v: np.full((s.iterations, 3), np.nan) for v in vs}
        losses = {v: np.full(s.iterations, np.nan) for v in vs}
        ckpt = {v: _Checkpoint(engines[v], s.patience, val_set, c.task) for v in vs}
        # training: variants take turns chunk by chunk, the order rotating every chunk; validation
        # runs between timed steps
        for k, idx in enumerate(parts):
            shift = (r * len(parts) + k) % n_var
            for v in vs[shift:] + vs[:shift]:
                step = engines[v].train_step
                tv, lv = times[v], losses[v]
                for i in idx:
                    f, b, o, loss = step(*batches[i])
                    tv[i] = (f, b, o)
                    lv[i] = math.nan if loss is None else loss
                    if (i + 1) % every == 0 or i + 1 == s.iterations:
                        ckpt[v].check(i + 1, i + 1 == s.iterations)
        last = slice(parts[-1].start, parts[-1].stop)
        for v in vs:
            tr = tracks[v]
            for idx in parts:
                t = times[v][idx.start:idx.stop]
                tr.step.append(float(np.median(t.sum(axis=1))))
                tr.fwd.append(float(np.median(t[:, 0])))
                tr.bwd.append(float(np.median(t[:, 1])))
                tr.opt.append(float(np.median(t[:, 2])))
            tail = losses[v][last]
            tr.train_loss.append(float(np.mean(tail)) if np.isfinite(tail).all() else math.nan)
        # prediction: latency at batch 1 and throughput at eval_batch, interleaved across variants
        for xin, sink in ((x1, "lat"), (xb, "thr")):
            cands = [harness.Candidate(v, (lambda e=engines[v], x=xin: e.predict(x))) for v in vs]
            ms = harness.measure_interleaved(cands, sample_time=s.prediction_time / (s.latency_rounds * n_var),
                                             samples=s.latency_rounds, min_samples=min(3, s.latency_rounds),
                                             warmup=1, seed=seed)
            for v in vs:
                getattr(tracks[v], sink).extend(ms[v].samples.tolist())
        # held-out (test) quality, once, at the checkpoint validation chose
        for v in vs:
            ck = ckpt[v]
            ck.restore()
            tracks[v].val.append(ck.loss)
            tracks[v].best.append(ck.step)
            tracks[v].early += int(ck.final)
            with np.errstate(all="ignore"):
                try:
                    q = _evaluate(engines[v], eval_set, c.task)
                except (FloatingPointError, ValueError, OverflowError):
                    q = {"loss": math.nan, "accuracy": math.nan, "f1": math.nan}
            tracks[v].quality.append(q)
        if on_repeat:
            on_repeat()
    for v in vs:
        tracks[v].threads = thread_cols
    refs = reference_scores(ds, c, eval_set)
    flops = matmul_flops(model_config(c, vs[0], ds, s.seed), s.seq_len, s.batch)["train"]
    gemm = sgemm_reference(flops, c.dtype, c.threads)
    return _rows(s, c, ds, vs, tracks, compile_s, params_count, time.perf_counter() - t_start, refs, facts,
                 (flops, *gemm))


def sgemm_reference(flops: int, dtype: str, n_threads: int, rounds: int = 7) -> tuple[float, int]:
    """(GFLOP/s, n) of one square n x n x n GEMM with about ``flops`` operations (2 n^3), through
    NumPy's BLAS at ``n_threads`` threads: the speed the same work reaches as one well-shaped
    matrix product on this machine. Median of ``rounds`` calls after one warm-up."""
    from threadpoolctl import threadpool_limits

    n = max(8, round((flops / 2) ** (1 / 3)))
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    out = np.empty((n, n), dtype)
    times = []
    with threadpool_limits(limits=n_threads, user_api="blas"):
        np.dot(a, b, out=out)
        for _ in range(rounds):
            t0 = time.perf_counter()
            np.dot(a, b, out=out)
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9, n


def _rows(s: Settings, c: Config, ds, vs, tracks, compile_s, params_count, wall, refs, facts,
          gemm: tuple = (None, math.nan, None)) -> list[dict]:
    """``gemm``: (the training step's matrix-product FLOPs, sgemm_reference's GFLOP/s and n)."""
    base = next(v for v in vs if v.backend == "numba")  # the first pair (validate: BASELINE)
    code = code_version(s)
    torch_v = next((v for v in vs if v.backend != "numba"), None)  # the peer
    bt = tracks[base]
    cid = config_id(s, c, ds)
    finished = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    task = tasks.get(c.task)
    shape = model_config(c, base, ds, s.seed)
    rows = []
    for v in vs:
        tr = tracks[v]
        row = dict(
            config_id=cid, task=c.task, layers=c.layers, hidden=c.hidden, dtype=c.dtype, threads=c.threads,
            parallel=c.threads > 1, variant=v.label, backend=v.backend, cell=v.cell, gate=v.gate,
            baseline=v == base, role="baseline" if v == base else v.role, seq_len=s.seq_len, batch=s.batch,
            eval_batch=s.eval_batch,
            iterations=s.iterations, repeats=s.repeats, chunks=len(_chunks(s.iterations, s.chunks)), seed=s.seed,
            optimizer=s.optimizer, lr=s.lr, clip=s.clip, val_every=val_every(s), patience=s.patience, data=ds.source,
            data_fingerprint=ds.fingerprint,
            n_in=shape.n_in, n_out=shape.n_out, parameters=params_count,
            compile_s=compile_s.get((c.task, c.dtype, c.threads > 1, v)),
            timing_samples=len(tr.step), latency_samples=len(tr.lat), init=tr.init,
            config_rows=len(vs), wall_s=wall, finished=finished, code_version=code, **tr.threads, **tr.plans,
        )
        _put(row, ("train_step_s", "train_step_lo", "train_step_hi"), stats.median_interval(tr.step))
        _put(row, ("forward_s", "forward_lo", "forward_hi"), stats.median_interval(tr.fwd))
        _put(row, ("backward_s", "backward_lo", "backward_hi"), stats.median_interval(tr.bwd))
        _put(row, ("optimizer_s", "optimizer_lo", "optimizer_hi"), stats.median_interval(tr.opt))
        _put(row, ("latency_s", "latency_lo", "latency_hi"), stats.median_interval(tr.lat))
        thr = s.eval_batch / np.asarray(tr.thr)
        m, lo, hi = stats.median_interval(thr)
        _put(row, ("throughput_seq_per_s", "throughput_lo", "throughput_hi"), (m, lo, hi))
        flops, sg, sg_n = gemm
        if flops and row["train_step_s"] > 0:
            row["train_gflops"] = flops / row["train_step_s"] / 1e9
            row["sgemm_gflops"], row["sgemm_n"] = sg, sg_n
            row["gemm_efficiency"] = row["train_gflops"] / sg
        _put(row, ("speedup_train", "speedup_train_lo", "speedup_train_hi"), stats.ratio_interval(bt.step, tr.step))
        _put(row, ("speedup_latency", "speedup_latency_lo", "speedup_latency_hi"), stats.ratio_interval(bt.lat, tr.lat))
        _put(row, ("speedup_throughput", "speedup_throughput_lo", "speedup_throughput_hi"),
             stats.ratio_interval(bt.thr, tr.thr))
        if torch_v is not None and v.backend == "numba":
            tt = tracks[torch_v]
            _put(row, ("vs_torch_train", "vs_torch_train_lo", "vs_torch_train_hi"), stats.ratio_interval(tt.step, tr.step))
            _put(row, ("vs_torch_latency", "vs_torch_latency_lo", "vs_torch_latency_hi"), stats.ratio_interval(tt.lat, tr.lat))
        q = {k: np.array([d.get(k, math.nan) for d in tr.quality], dtype=float) for k in ("loss", "accuracy", "f1")}
        qb = {k: np.array([d.get(k, math.nan) for d in bt.quality], dtype=float) for k in ("loss", "accuracy", "f1")}
        _put(row, ("loss", "loss_lo", "loss_hi"), stats.median_interval(q["loss"]))
        if task.PERPLEXITY:
            row["perplexity"], row["perplexity_lo"], row["perplexity_hi"] = (
                math.exp(min(x, 700.0)) if math.isfinite(x) else math.nan for x in stats.median_interval(q["loss"]))
        for k in task.SCORES:
            _put(row, (k, f"{k}_lo", f"{k}_hi"), stats.median_interval(q[k]))
        if v != base:
            for k in ("loss", *task.SCORES):
                _put(row, (f"{k}_diff", f"{k}_diff_lo", f"{k}_diff_hi"), stats.median_interval(q[k] - qb[k]))
            row["higher_loss_repeats"] = int(np.sum(q["loss"] > qb["loss"]))
        row["train_loss"] = stats.median_interval(tr.train_loss)[0]
        row["diverged"] = int(np.sum(~np.isfinite(q["loss"])))
        row["val_loss"] = stats.median_interval(tr.val)[0]
        row["best_step"] = float(np.median(tr.best)) if tr.best else math.nan
        row["best_steps"] = ";".join(str(b) for b in tr.best)
        row["stopped_early_repeats"] = tr.early
        row.update(task.ref_columns(refs))
        row["quality_flag"] = BL.flag(c.task, {"loss": row["loss"], "accuracy": row.get("accuracy", math.nan)}, refs)
        nq = int(np.isfinite(q["loss"]).sum())
        row["timing_interval"] = stats.interval_kind(len(tr.step))
        row["latency_interval"] = stats.interval_kind(len(tr.lat))
        row["quality_interval"], row["quality_samples"] = stats.interval_kind(nq), nq
        row["interval_method"] = stats.CI_METHOD
        row.update(loop_columns(facts.get((c.task, c.dtype, c.threads > 1, v)) or {}))
        rows.append(row)
    return rows


# ============================================================================================
# resume


def _config_groups(rows: list[dict], key: str = "config_id") -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def _complete(group: list[dict], count: str = "config_rows") -> bool:
    try:
        n = int(group[0][count])
    except (KeyError, ValueError):
        return False
    labels = [r["variant"] for r in group]
    return len(group) == n and len(set(labels)) == n and all(r[count] == group[0][count] for r in group)


def prepare_resume(run_dir: Path, columns: list = COLUMNS, key: str = "config_id", count: str = "config_rows",
                   what: str = "sweep") -> set:
    """Finished unit ids (``key``: a configuration of the sweep; the accuracy study passes its own
    columns and key) of an earlier run in ``run_dir``. Rows of a unit that was cut off while being
    written (or written twice) are removed from the CSV first, so that the unit is redone and
    appended once."""
    path = Path(run_dir) / runs.RESULTS
    if not path.exists() or path.stat().st_size == 0:
        return set()
    text = path.read_text()
    torn = not text.endswith("\n")
    if torn:  # a half-written last line (killed mid-write)
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != columns:
        raise UsageError(f"{path} has different columns; it was written by another version of the {what}, "
                         "choose a new --out folder")
    rows = list(reader)
    keep: list[dict] = []
    done = set()
    for uid, group in _config_groups(rows, key).items():
        try:
            n = int(group[0][count])
        except (TypeError, ValueError):
            continue
        first = group[:n]  # a group written twice (should not happen) keeps its first copy
        if _complete(first, count):
            keep.extend(first)
            done.add(uid)
    if torn or len(keep) != len(rows):
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")  # as ResultsWriter writes
        w.writeheader()
        w.writerows(keep)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(out.getvalue(), newline="")
        os.replace(tmp, path)
    return done


# ============================================================================================
# the run


def check_code_version(meta: dict, code: str, resume_anyway: bool) -> None:
    """Refuse to resume a run measured by other code (or code of unknown version) unless asked."""
    earlier = {sess.get("code_version") for sess in meta.get("sessions", [])}
    if code in earlier or resume_anyway:
        return
    known = ", ".join(sorted(v for v in earlier if v)) or "an unknown version"
    raise UsageError(f"this run folder was measured by other code ({known}; now {code}); use a new --out, "
                     "or --resume-anyway to mix them")


def open_run(kind: str, out, argv: list[str], command: str, code: str, settings: dict,
             resume_anyway: bool, meta_argv: Optional[list] = None) -> tuple[Path, dict, dict, bool]:
    """The run folder of a sweep, study or vs-torch run, new or resumed: (folder, its metadata
    with a new session appended and ``finished`` False, that session, resumed). A resumed
    folder's code version is checked before anything in it changes; nothing is written here."""
    run_dir = runs.new_run_dir(kind, out, resume=True)
    resumed = (run_dir / runs.METADATA).exists()
    session = {"started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "argv": list(argv),
               "command": command, "git": runs.git_state(), "code_version": code, "settings": settings}
    if resumed:
        meta = runs.read_metadata(run_dir)
        check_code_version(meta, code, resume_anyway)
        session["machine_state"] = meta["machine_state"] = {"before": runs.machine_state()}
        meta.setdefault("sessions", []).append(session)
    else:
        meta = runs.metadata(kind, meta_argv or argv, settings=settings, sessions=[session])
        meta["command"] = command
        session["machine_state"] = meta["machine_state"]
    meta["finished"] = False
    return run_dir, meta, session, resumed


def _measure_all(s, todo, datasets, vs, compile_s, facts, bar, writer) -> None:
    """Compile and measure every configuration still to do, writing each one's rows as it ends."""
    for c, _ in todo:
        ds = datasets[c.task]
        if bar:
            bar.set_postfix_str(f"{c.task} L{c.layers} H{c.hidden} {c.dtype} t{c.threads}")
        for v in vs:  # JIT before any timing; once per kernel set in this process
            key = (c.task, c.dtype, c.threads > 1, v)
            if key not in compile_s:
                if bar:
                    bar.set_postfix_str(f"compiling {v.label} {c.task} {c.dtype} t{c.threads}")
                with config_threads(c.threads):
                    compile_s[key] = compile_variant(c, v, ds, s)
                    if v.backend == "numba":  # read from the assembly, not timed
                        facts[key] = loop_facts(model_config(c, v, ds, s.seed))
        if bar:
            bar.set_postfix_str(f"{c.task} L{c.layers} H{c.hidden} {c.dtype} t{c.threads}")
        rows = measure_config(s, c, ds, vs, compile_s, on_repeat=(lambda: bar.update(1)) if bar else None,
                              facts=facts)
        for row in rows:  # all rows of a configuration together, each flushed
            writer.write(row)


def run(s: Settings, out: Optional[str], argv: list[str], progress_factory=None,
        resume_anyway: bool = False) -> tuple[Path, list, dict]:
    """Run (or resume) the sweep into a run folder; returns (folder, config ids of this plan,
    this session's metadata: configs skipped as already done and measured now)."""
    validate(s)
    datasets = load_datasets(s)
    with_peer = use_peer(s)
    vs = variants(s, with_peer)
    plan = [(c, config_id(s, c, datasets[c.task])) for c in configs(s)]
    code = code_version(s)
    command = "python -m lstm_numba " + " ".join(argv)
    run_dir, meta, session, resumed = open_run(KIND, out, argv, command, code, s.to_dict(), resume_anyway)
    meta_path = run_dir / runs.METADATA
    done = prepare_resume(run_dir) if resumed else set()
    session.update(configs_planned=len(plan), configs_already_done=sum(cid in done for _, cid in plan))
    meta["plan"] = [cid for _, cid in plan]  # what "finished" means for report's "k of n"
    meta["data"] = {t: data_info(ds, t) for t, ds in datasets.items()}
    meta["peer"] = {"torch": peers.version(), "used": with_peer}
    meta["variants"] = [v.label for v in vs]
    runs.write_json(meta_path, meta)

    todo = [(c, cid) for c, cid in plan if cid not in done]
    t0 = time.perf_counter()
    compile_s: dict = {}
    facts: dict = {}
    bar = progress_factory(total=len(plan) * s.repeats, initial=(len(plan) - len(todo)) * s.repeats,
                           desc="lstm sweep", unit="repeat") if progress_factory else None
    with runs.ResultsWriter(run_dir, COLUMNS) as writer:
        try:
            _measure_all(s, todo, datasets, vs, compile_s, facts, bar, writer)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; the finished configurations are in {run_dir}: run again with "
                                    f"--out {run_dir} to resume") from None
    if bar:
        bar.close()
    sess = meta["sessions"][-1]
    sess["wall_seconds"] = time.perf_counter() - t0
    sess["configs_measured"] = len(todo)
    sess["compile_seconds"] = {f"{k[0]} {k[1]} {'parallel' if k[2] else 'serial'} {k[3].label}": v
                               for k, v in compile_s.items()}
    meta["finished"] = True
    meta["threads"] = threads.thread_info()
    runs.record_end_state(meta)  # meta["machine_state"] is this session's
    runs.write_json(meta_path, meta)
    return run_dir, meta["plan"], sess


# ============================================================================================
# summary


def _fmt(v, spec="{:.2f}") -> str:
    try:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return spec.format(v)
    except (TypeError, ValueError):
        return str(v)


def _ci(r, mid, lo, hi, spec="{:.2f}", kind=CI) -> str:
    """``median [lo, hi]`` for a 95% CI, ``median {lo..hi}`` for the range of < 10 samples."""
    if _fmt(r.get(mid)) == "-":
        return "-"
    a, b = _fmt(r.get(lo), spec), _fmt(r.get(hi), spec)
    return f"{_fmt(r.get(mid), spec)} " + (f"{{{a}..{b}}}" if kind == RANGE else f"[{a}, {b}]")


def _kind(r: dict, column: str, count: str) -> str:
    """The interval kind of a row's ``column``; runs written before the column existed used a
    bootstrap whatever the count, which below MIN_CI_SAMPLES is the range (n = 3: [min, max])."""
    k = r.get(column)
    if isinstance(k, str) and k in (CI, RANGE):
        return k
    try:
        return stats.interval_kind(int(r.get(count)))
    except (TypeError, ValueError):
        return RANGE


def loop_columns(facts: dict) -> dict:
    """``network.loop_facts`` as row cells: ``{loop}_vectorized``, ``_simd_bits``, ``_libm``."""
    out = {}
    for loop, info in facts.items():
        out[f"{loop}_vectorized"], out[f"{loop}_simd_bits"] = info["vectorized"], info["simd_bits"]
        out[f"{loop}_libm"] = info["libm_calls"] or "none"
    return out


def _loops(r: dict) -> list[str]:
    """Per loop: the SIMD width, or "no" with the libm calls that keep it scalar."""
    out = []
    for loop in LOOPS:
        vec = str(r.get(f"{loop}_vectorized"))
        libm = r.get(f"{loop}_libm")
        libm = "" if not isinstance(libm, str) or libm == "none" else f" ({libm})"
        if vec == "True":
            bits = r.get(f"{loop}_simd_bits")
            out.append(f"{int(float(bits))}-bit" if _fmt(bits) != "-" else "yes")
        elif vec == "False":
            out.append("no" + libm)
        else:
            out.append("-")
    return out


def _is_trained(r: dict) -> bool:
    return r.get("quality_flag") != BL.NOT_TRAINED


def ci_method_text(row) -> str:
    """What a row's "95% CI" is: the order-statistic interval, or (runs made before the
    interval_method column) a percentile bootstrap, whose coverage at 10-15 samples is 91-94%."""
    if row.get("interval_method") == stats.CI_METHOD:
        return "order-statistic 95% interval of the median"
    return "percentile-bootstrap interval (an older run: labelled 95%, covers 91-94% at 10-15 samples)"


def summary(df, config_ids: Optional[list] = None) -> str:
    """Per task: the trivial baselines of the test data, then one line per configuration and
    variant: training step time, speedup over the vectorized baseline, held-out quality at the
    validation-chosen checkpoint with its state against the baselines, the difference from the
    baseline (only between models that learned something), and the chosen step; then which loops
    vectorized, per variant. Intervals say what they are (95% CI, or the range of few samples)."""
    from mathbench import table

    if config_ids is not None:
        df = df[df["config_id"].isin(config_ids)]
    if df.empty:
        return "no finished configurations"
    df = df.astype(object).where(df.notna(), None)
    lines = []
    for task, tdf in df.groupby("task", sort=False):
        td = tasks.get(task)
        recs = tdf.to_dict("records")
        base_label = next((r["variant"] for r in recs if str(r["baseline"]) == "True"), "baseline")
        has_torch = any(r["backend"] == "torch" for r in recs)
        tk = _kind(recs[0], "timing_interval", "timing_samples")
        lk = _kind(recs[0], "latency_interval", "latency_samples")
        qk = _kind(recs[0], "quality_interval", "repeats")
        # no trained model at all: the run says so and reports speed only (differences hidden)
        speed_only = any(r.get("quality_flag") for r in recs) and not any(
            r.get("quality_flag") == BL.TRAINED for r in recs if r["backend"] == "numba")
        rows = []
        for _, g in tdf.groupby("config_id", sort=False):
            grecs = df.loc[g.index].to_dict("records")
            base = next((r for r in grecs if str(r["baseline"]) == "True"), None)
            if base is None:
                continue
            for r in grecs:
                is_base = r is base
                qual, diff = td.quality_cell(r, _ci, _fmt, qk)
                if is_base or r["backend"] != "numba":
                    d = ""
                elif speed_only:
                    d = "-"
                elif not (_is_trained(r) and _is_trained(base)):
                    d = "(not trained)"  # a difference between untrained models says nothing
                else:
                    d = _ci(r, *diff, "{:+.3f}", qk)
                line = [r["dtype"], r["threads"], r["batch"], r["layers"], r["hidden"],
                        display_name(r["variant"], r.get("role") or ""),
                        _fmt(r["train_step_s"] * 1e3 if r.get("train_step_s") is not None else None, "{:.3f}"),
                        "1" if is_base else _ci(r, "speedup_train", "speedup_train_lo", "speedup_train_hi", kind=tk),
                        "1" if is_base else _ci(r, "speedup_latency", "speedup_latency_lo", "speedup_latency_hi",
                                                kind=lk),
                        qual, r.get("quality_flag") or "-", d, _fmt(r.get("best_step"), "{:.0f}")]
                rows.append(line)
        header = ["dtype", "thr", "batch", "layers", "hidden", "variant", "ms/step", "speedup train",
                  "speedup predict", td.HEADERS[0], "state", td.HEADERS[1], "chosen step"]
        r0 = recs[0]
        if _fmt(r0.get(td.REF_KEY)) != "-":
            refs = td.refs_text(r0)
        else:
            refs = "no baselines recorded (a run written before they existed)"
        n_t = _fmt(r0.get("timing_samples"), "{:.0f}")
        n_q = _fmt(r0.get("quality_samples") if r0.get("quality_samples") is not None else r0.get("repeats"),
                   "{:.0f}")
        chosen = any(_fmt(r.get("best_step")) != "-" for r in recs)
        lines.append(f"task {task}: speedup = time({base_label}) / time(variant), > 1 = variant faster, paired; "
                     + ("held-out = the test part at the checkpoint chosen on validation data; " if chosen else
                        "held-out = the test part after the last step (a run made before validation existed); ")
                     + f"diff = variant - {base_label}, paired by seed")
        lines.append(f"  {refs}; state: 'not trained' = no better than "
                     f"{td.TRIVIAL}, 'weak' = no better than {td.STRONG}")
        lines.append(f"  intervals: [lo, hi] = {ci_method_text(r0)}, {{lo..hi}} = min..max (fewer than "
                     f"{MIN_CI_SAMPLES} samples); timing from {n_t} samples per row, quality from {n_q} seeds")
        lines.append(table(rows, header))
        lines += _quality_verdict(task, recs)
        lines += _loop_table(recs)
        if has_torch:
            lines += _torch_lines(recs, tk)
        lines += _gemm_lines(recs)
        lines.append("")
    return "\n".join(lines).rstrip()


def _quality_verdict(task: str, recs: list[dict]) -> list[str]:
    numba = [r for r in recs if r["backend"] == "numba" and r.get("quality_flag")]
    if not numba:
        return []
    n = len(numba)
    counts = {f: sum(r["quality_flag"] == f for r in numba) for f in (BL.TRAINED, BL.WEAK, BL.NOT_TRAINED)}
    line = (f"quality: {counts[BL.TRAINED]} of {n} Numba rows trained (beat the "
            f"{tasks.get(task).STRONG} baseline), {counts[BL.WEAK]} weak, "
            f"{counts[BL.NOT_TRAINED]} not trained")
    last = [r for r in numba if _fmt(r.get("best_step")) != "-" and r.get("iterations")
            and float(r["best_step"]) >= float(r["iterations"])]
    if last:  # the validation loss was still falling when training stopped
        line += (f"; {len(last)} of {n} chose the last step (validation loss still falling: more steps would "
                 "help)")
    if counts[BL.TRAINED] == 0:
        return [line, f"speed only for task {task}: no model beats the {tasks.get(task).STRONG} "
                "baseline at these settings, so quality differences would compare models that have not learned "
                "the data and say nothing about the activations (none shown); train longer (--iterations, "
                "--batch) for accuracy"]
    return [line]


def _loop_table(recs: list[dict]) -> list[str]:
    """Which loops vectorized, once per variant (the facts depend on the variant, dtype and
    threading, not on the shape)."""
    from mathbench import table

    seen, rows = set(), []
    for r in recs:
        if r["backend"] != "numba" or r.get("gate_fwd_vectorized") is None:
            continue
        key = (r["variant"], r["dtype"], str(r["parallel"]))
        if key in seen:
            continue
        seen.add(key)
        rows.append([display_name(r["variant"], r.get("role") or ""), r["dtype"],
                     "parallel" if str(r["parallel"]) == "True" else "serial", *_loops(r)])
    if not rows:
        return []
    return ["vectorized loops (from the compiled assembly: SIMD width, or 'no' with the libm calls left):",
            table(rows, ["variant", "dtype", "kernels", "gate forward", "cell forward", "backward", "head"])]


def _torch_lines(recs: list[dict], kind: str) -> list[str]:
    out = []
    for r in recs:
        if str(r["baseline"]) == "True" and _fmt(r.get("vs_torch_train")) != "-":
            out.append(f"  L{r['layers']} H{r['hidden']} t{r['threads']}: time(torch.nn.LSTM) / time({r['variant']}) "
                       f"train {_ci(r, 'vs_torch_train', 'vs_torch_train_lo', 'vs_torch_train_hi', kind=kind)}, "
                       f"predict {_ci(r, 'vs_torch_latency', 'vs_torch_latency_lo', 'vs_torch_latency_hi', kind=kind)}")
    return ["torch peer (> 1: Numba faster):"] + out if out else []


def _gemm_lines(recs: list[dict]) -> list[str]:
    """The baseline's matrix-product GFLOP/s against one plain GEMM of the same FLOPs."""
    out = []
    for r in recs:
        if str(r["baseline"]) == "True" and _fmt(r.get("gemm_efficiency")) != "-":
            out.append(f"  L{r['layers']} H{r['hidden']} t{r['threads']}: {r['train_gflops']:.1f} of "
                       f"{r['sgemm_gflops']:.1f} GFLOP/s ({r['gemm_efficiency']:.0%}; sgemm n={int(r['sgemm_n'])})")
    return ["training step's matrix products against one sgemm of the same FLOPs (baseline):"] + out if out else []


def status(df, meta: dict) -> list[str]:
    """Lines for under a sweep's summary: whether the run is unfinished (k of n planned
    configurations complete), and one-line warnings about the machine and unstable timings."""
    plan = meta.get("plan")
    if plan is not None:
        df = df[df["config_id"].isin(plan)]
        n = len(plan)
    else:  # written before plans were recorded
        n = (meta.get("sessions") or [{}])[-1].get("configs_planned", 0)
    k = sum(_complete(g) for g in _config_groups(df.to_dict("records")).values())
    lines = [f"incomplete ({k} of {n} configurations); run the same command again to finish it"] if k < n else []
    lines += [w for w in (runs.machine_warning(meta),
                          # only rows whose interval is a 95% CI: the warning says "95% interval"
                          runs.unstable_warning(df[df["timing_interval"] == CI] if "timing_interval" in df else df,
                                                "train_step_s", "train_step_lo", "train_step_hi",
                                                "the training step time")) if w]
    return lines
