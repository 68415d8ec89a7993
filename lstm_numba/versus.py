"""``python -m lstm_numba vs-torch``: the Numba LSTM against ``torch.nn.LSTM`` (oneDNN's fused RNN
kernels), training step and inference, over a grid of shapes.

Per shape (layers x hidden x batch x threads; character LM on the embedded text, T = --seq-len,
float32, the baseline pair ``sweep.BASELINE``, tanh and sigmoid vectorized): both models start from
the same weights (torch gets a copy), run at the same thread count (Numba and torch N threads, BLAS
1: the parallel kernels call BLAS from Numba's workers) and are timed on the same batch by
``mathbench.harness.measure_interleaved``: the training step (forward, backward, Adam) of both, then
inference (the Numba forward-only route ``Model.predict`` against torch under
``inference_mode``), each pair in rotating rounds; the ratio time(torch) / time(Numba) (> 1: Numba
faster) is paired by round. The Numba model's plan (``network.Plan``: tiled or BLAS recurrent
products, serial or parallel) is measured for each shape before timing and recorded per row.

Repetition across processes: the grid is measured ``--passes`` times, each pass in a fresh
process, because one process's rounds understate run-to-run spread. The summary gives, per
shape, the median of the passes' ratios and their range (min..max, n = passes; not a confidence
interval). JIT compile time is measured once per process before any timing, in its own column.

Per row also: which loops vectorized (``network.loop_facts``, as the sweep reports them), the
training step's achieved GFLOP/s (``network.matmul_flops`` / time) for both, and
the GFLOP/s of one plain square sgemm with the same FLOPs at the same thread count measured in the
same process (``sweep.sgemm_reference``), so ``gemm_efficiency`` = Numba's / sgemm's.

Rows are appended as each shape finishes; running again with the same --out resumes (finished
(shape, pass) units are skipped, a half-written one is redone).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mathbench import harness, runs, threads
from mathbench import UsageError

from . import data as D, peers, sweep
from .network import LOOPS, Model, ModelConfig, loop_facts, matmul_flops
from .optim import Adam

KIND = "lstm-vs-torch"
SUMMARY = "summary.csv"

COLUMNS = [
    "unit_id", "shape_id", "pass", "task", "layers", "hidden", "batch", "threads", "seq_len", "vocab", "dtype",
    "variant", "plan_train", "plan_infer",
    # what vectorized: per loop of the compiled kernels (network.LOOPS), as in the sweep
    *[f"{loop}_{k}" for loop in LOOPS for k in ("vectorized", "simd_bits", "libm")],
    # seconds per call (median of rounds) and the paired ratio time(torch) / time(Numba), its
    # bootstrap interval over this process's rounds ("rounds" column says how many)
    "numba_train_s", "torch_train_s", "train_ratio", "train_ratio_lo", "train_ratio_hi",
    "numba_infer_s", "torch_infer_s", "infer_ratio", "infer_ratio_lo", "infer_ratio_hi", "rounds",
    # matrix-product FLOPs of one training step and the GFLOP/s reached
    "train_flops", "numba_train_gflops", "torch_train_gflops", "sgemm_gflops", "sgemm_n", "gemm_efficiency",
    "compile_s", "numba_threads", "blas_threads", "torch_threads", "threading_layer",
    "unit_rows", "wall_s", "code_version",
]


@dataclass
class Settings:
    hidden: list = field(default_factory=lambda: [64, 128, 256, 512])
    batch: list = field(default_factory=lambda: [1, 4, 16, 64])
    layers: list = field(default_factory=lambda: [1, 2])
    threads: list = field(default_factory=lambda: [1, 2])
    seq_len: int = 32
    passes: int = 3
    rounds: int = 7
    sample_time: float = 0.05  # seconds per candidate per round (at least one call)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def validate(s: Settings) -> None:
    for name in ("hidden", "batch", "layers", "threads"):
        v = getattr(s, name)
        if not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in v):
            raise UsageError(f"--{name} needs positive integers")
    if max(s.threads) > threads.max_threads():
        raise UsageError(f"--threads at most {threads.max_threads()} (NUMBA_NUM_THREADS)")
    for name in ("seq_len", "passes", "rounds"):
        v = getattr(s, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer")
    if not (s.sample_time > 0 and np.isfinite(s.sample_time)):
        raise UsageError("--sample-time must be a positive number of seconds")
    peers.require()


def shapes(s: Settings) -> list[tuple]:
    """(layers, hidden, batch, threads), threads outermost so each thread count's kernels warm once."""
    return [(L, H, B, t) for t in s.threads for L in s.layers for H in s.hidden for B in s.batch]


def shape_id(s: Settings, shape: tuple) -> str:
    L, H, B, t = shape
    return f"L{L}-H{H}-B{B}-t{t}-T{s.seq_len}-r{s.rounds}-st{s.sample_time:g}-seed{s.seed}"


def code_version() -> str:
    return sweep.code_version(sweep.Settings(pairs=[sweep.BASELINE]), (__file__,))


# ---------------------------------------------------------------------------------------------
# one process: one pass over the shapes it still has to do


def _config(ds, shape, seed) -> ModelConfig:
    L, H, B, t = shape
    return sweep.model_config(sweep.Config("lm", L, H, "float32", t), sweep.Variant("numba", *sweep.BASELINE), ds, seed)


def measure_shape(s: Settings, shape: tuple, ds, compile_s: dict, facts: dict | None = None) -> dict:
    """One row: the interleaved training-step and inference pairs of one shape. ``compile_s`` and
    ``facts`` keep this process's compile times and loop facts (read once per kernel variant)."""
    facts = {} if facts is None else facts
    L, H, B, t = shape
    t_start = time.perf_counter()
    T = s.seq_len
    rng = np.random.default_rng([s.seed, B])
    tok = ds.train
    starts = rng.integers(0, len(tok) - T - 1, B)
    x = np.ascontiguousarray(np.stack([tok[i:i + T] for i in starts], axis=1).astype(np.int64))
    y = np.ascontiguousarray(np.stack([tok[i + 1:i + T + 1] for i in starts], axis=1).astype(np.int64))
    cfg = _config(ds, shape, s.seed)
    with sweep.config_threads(t):
        key = (L, t > 1)
        if key not in compile_s:
            compile_s[key] = Model(cfg).compile()
        if cfg.parallel not in facts:
            facts[cfg.parallel] = loop_facts(cfg)  # from the assembly, not timed
        m = Model(cfg)
        opt = Adam(m, lr=1e-3)
        m.prepare(T, B)  # allocates and settles the plans before any timing
        te = peers.engine(cfg, lr=1e-3, init_weights={k: np.array(a) for k, a in m.params.tensors().items()})

        def numba_train():
            m.forward(x, y, None, validate=False)
            m.backward()
            opt.step()

        cands = [harness.Candidate("numba", numba_train), harness.Candidate("torch", lambda: te.train_step(x, y))]
        tr = harness.measure_interleaved(cands, sample_time=s.sample_time, samples=s.rounds,
                                         min_samples=s.rounds, warmup=2, seed=s.seed)
        cands = [harness.Candidate("numba", lambda: m.predict(x, None, validate=False)),
                 harness.Candidate("torch", lambda: te.predict(x))]
        inf = harness.measure_interleaved(cands, sample_time=s.sample_time, samples=s.rounds,
                                          min_samples=s.rounds, warmup=2, seed=s.seed)
        flops = matmul_flops(cfg, T, B)["train"]
        sg, sg_n = sweep.sgemm_reference(flops, "float32", t)
        info = sweep._thread_columns()
    rt = harness.ratio(tr["torch"], tr["numba"], seed=s.seed)
    ri = harness.ratio(inf["torch"], inf["numba"], seed=s.seed)
    row = dict(shape_id=shape_id(s, shape), task="lm", layers=L, hidden=H, batch=B, threads=t, seq_len=T,
               vocab=ds.n_vocab, dtype="float32", variant="/".join(sweep.BASELINE),
               plan_train=m.plan(T, B).label, plan_infer=m.plan(T, B, train=False).label,
               numba_train_s=tr["numba"].median, torch_train_s=tr["torch"].median,
               train_ratio=rt.median, train_ratio_lo=rt.lo, train_ratio_hi=rt.hi,
               numba_infer_s=inf["numba"].median, torch_infer_s=inf["torch"].median,
               infer_ratio=ri.median, infer_ratio_lo=ri.lo, infer_ratio_hi=ri.hi, rounds=s.rounds,
               train_flops=flops, numba_train_gflops=flops / tr["numba"].median / 1e9,
               torch_train_gflops=flops / tr["torch"].median / 1e9, sgemm_gflops=sg, sgemm_n=sg_n,
               gemm_efficiency=flops / tr["numba"].median / 1e9 / sg, compile_s=compile_s[(L, t > 1)],
               unit_rows=1, wall_s=time.perf_counter() - t_start, **info,
               **sweep.loop_columns(facts[cfg.parallel]))
    return row


def worker(run_dir: Path, k: int) -> None:
    """Pass ``k`` (1-based) in this process: every shape without a row of this pass."""
    meta = runs.read_metadata(run_dir)
    s = Settings(**meta["settings"])
    done = sweep.prepare_resume(run_dir, COLUMNS, "unit_id", "unit_rows", what="vs-torch run")
    ds = D.default_text()
    code = code_version()
    compile_s: dict = {}
    facts: dict = {}
    todo = [sh for sh in shapes(s) if f"{shape_id(s, sh)}-p{k}" not in done]
    with runs.ResultsWriter(run_dir, COLUMNS) as writer:
        for n, sh in enumerate(todo, 1):
            row = measure_shape(s, sh, ds, compile_s, facts)
            row.update(unit_id=f"{row['shape_id']}-p{k}", code_version=code, **{"pass": k})
            writer.write(row)
            L, H, B, t = sh
            print(f"pass {k}/{s.passes} [{n}/{len(todo)}] L{L} H{H} B{B} t{t}: time(torch)/time(numba) train "
                  f"{row['train_ratio']:.2f} inference {row['infer_ratio']:.2f} ({row['plan_train']})",
                  file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the driver


def run(s: Settings, out, argv: list[str], resume_anyway: bool = False) -> tuple[Path, dict]:
    """Measure (or resume) the grid into a run folder, one process per pass."""
    validate(s)
    code = code_version()
    command = "python -m lstm_numba vs-torch " + " ".join(argv)
    run_dir, meta, session, resumed = sweep.open_run(KIND, out, argv, command, code, s.to_dict(), resume_anyway,
                                                     meta_argv=["vs-torch", *argv])
    if resumed and meta.get("settings") != s.to_dict():
        raise UsageError(f"{run_dir} holds a vs-torch run with other settings; choose a new --out")
    meta_path = run_dir / runs.METADATA
    meta["peer"] = {"torch": peers.version()}
    meta["plan"] = [shape_id(s, sh) for sh in shapes(s)]
    runs.write_json(meta_path, meta)
    t0 = time.perf_counter()
    for k in range(1, s.passes + 1):
        proc = subprocess.run([sys.executable, "-m", "lstm_numba.versus", str(run_dir), str(k)],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0:
            raise UsageError(f"pass {k} stopped (exit {proc.returncode}); the finished shapes are in {run_dir}: "
                             f"run again with --out {run_dir} to resume")
    session["wall_seconds"] = time.perf_counter() - t0
    meta["finished"] = True
    meta["threads"] = threads.thread_info()
    runs.record_end_state(meta)
    runs.write_json(meta_path, meta)
    df, _ = runs.load_run(run_dir)
    summarize(df).to_csv(run_dir / SUMMARY, index=False)
    return run_dir, session


# ---------------------------------------------------------------------------------------------
# summary (reads the rows only)


def summarize(df):
    """Per shape: the median over passes of each ratio and their range, the passes' plans, the
    GEMM efficiency."""
    import pandas as pd

    out = []
    for (L, H, B, t), g in df.groupby(["layers", "hidden", "batch", "threads"], sort=True):
        rec = dict(layers=L, hidden=H, batch=B, threads=t, passes=len(g))
        for what in ("train", "infer"):
            r = g[f"{what}_ratio"].astype(float)
            rec.update({f"{what}_ratio": float(np.median(r)), f"{what}_min": float(r.min()),
                        f"{what}_max": float(r.max())})
        rec["gemm_efficiency"] = float(np.median(g["gemm_efficiency"].astype(float)))
        rec["numba_train_gflops"] = float(np.median(g["numba_train_gflops"].astype(float)))
        rec["sgemm_gflops"] = float(np.median(g["sgemm_gflops"].astype(float)))
        rec["plan_train"] = " | ".join(sorted(set(g["plan_train"])))
        rec["plan_infer"] = " | ".join(sorted(set(g["plan_infer"])))
        out.append(rec)
    return pd.DataFrame(out)


def table(summary, what: str = "train") -> str:
    """Markdown: hidden x batch per (layers, threads), 'train (inference)' median ratios with the
    passes' range."""
    lines = []
    for (L, t), g in summary.groupby(["layers", "threads"], sort=True):
        batches = sorted(g["batch"].unique())
        lines += [f"\nlayers {L}, {t} thread{'s' if t > 1 else ''}: time(torch) / time(Numba), training step "
                  f"(inference); > 1: Numba faster; median of {int(g['passes'].min())} processes [min-max]",
                  "| hidden \\ batch | " + " | ".join(map(str, batches)) + " |",
                  "|---|" + "---|" * len(batches)]
        for H, gh in g.groupby("hidden", sort=True):
            cells = []
            for B in batches:
                r = gh[gh["batch"] == B]
                if r.empty:
                    cells.append("-")
                    continue
                r = r.iloc[0]
                cells.append(f"{r.train_ratio:.2f} [{r.train_min:.2f}-{r.train_max:.2f}] "
                             f"({r.infer_ratio:.2f} [{r.infer_min:.2f}-{r.infer_max:.2f}])")
            lines.append(f"| {H} | " + " | ".join(cells) + " |")
    return "\n".join(lines).lstrip("\n")


def crossover(summary) -> list[str]:
    """Where the measured plans chose parallel kernels at more than one thread."""
    out = []
    for t, g in summary[summary["threads"] > 1].groupby("threads"):
        for what in ("train", "infer"):
            par = g[g[f"plan_{what}"].str.contains("parallel")]
            ser = g[~g[f"plan_{what}"].str.contains("parallel")]
            shapes_ = ", ".join(f"L{r.layers} H{r.hidden} B{r.batch}" for r in par.itertuples()) or "none"
            out.append(f"{t} threads, {'training' if what == 'train' else 'inference'}: parallel chosen in "
                       f"{len(par)} of {len(g)} shapes ({shapes_}); serial in {len(ser)}")
    return out


def efficiency_line(summary) -> list[str]:
    big = summary[(summary["batch"] == summary["batch"].max()) & (summary["hidden"] == summary["hidden"].max())]
    return [f"L{r.layers} H{r.hidden} B{r.batch} t{r.threads}: training step {r.numba_train_gflops:.1f} GFLOP/s = "
            f"{100 * r.gemm_efficiency:.0f}% of one sgemm with the same FLOPs ({r.sgemm_gflops:.1f} GFLOP/s)"
            for r in big.itertuples()]


def report(run_dir: Path, df=None, meta=None) -> str:
    """The printed report of a vs-torch folder (``df``/``meta``: already loaded by the caller)."""
    if df is None or meta is None:
        df, meta = runs.load_run(run_dir)
    summ = summarize(df)
    lines = [table(summ), "", f"Numba: {df['variant'].iloc[0]}; loops ({', '.join(LOOPS)}): "
             + ", ".join(sorted({", ".join(sweep._loops(r)) for r in df.to_dict("records")})),
             "", "plans (measured per shape):", *crossover(summ), "", "GEMM efficiency:", *efficiency_line(summ)]
    if not meta.get("finished"):
        lines.append(f"\nunfinished: {len(df)} of {len(meta.get('plan', [])) * meta['settings']['passes']} "
                     "(shape, pass) units; run again with the same --out to resume")
    return "\n".join(lines)


if __name__ == "__main__":  # one pass in its own process (``run`` starts it)
    from mathbench import run_cli

    sys.exit(run_cli(lambda a: worker(Path(a[0]), int(a[1])) or 0, sys.argv[1:], prog="lstm_numba vs-torch pass"))
