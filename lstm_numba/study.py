"""``python -m lstm_numba accuracy``: does the activation pair change what an LSTM learns?

The sweep times variants over a fixed, short training; this study asks the quality question on
models trained as a user would train them. For every shape (task x layers x hidden x dtype) and
every seed, each variant is trained by ``train.train`` from the same initial weights (the model's
seed) on the same batches (the LM's streams are fixed; classify draws its order from the seed) to
its validation optimum: validation every ``val_every`` steps on the end of the training data,
stopping after ``patience`` validations without a lower loss (or at ``iterations``), the best
checkpoint restored, the test part scored once. One (shape, seed) is a *unit*: its rows, one per
variant, are written together, so every written seed is a complete pairing and an interrupted run
resumes at unit granularity. Units run in ``--jobs`` worker processes (serial kernels, one thread
each), or on a Dask cluster (``--scheduler``/``--workers``, ``lstm_numba.cluster``); the rows do not
depend on which process or machine ran them, and each row names the machine that trained it.

The comparison (``comparisons``, read from the CSV) pairs each candidate with the baseline by seed,
over the seeds where both trained past the trivial baseline (unigram / majority class) and did not
diverge: the median of the differences (candidate - baseline) with the distribution-free
order-statistic 95% interval for a median (its coverage holds at any n >= 6 for continuous
differences; below that the range is given and labelled so), the two-sided Wilcoxon signed-rank
and sign tests, and Holm's adjustment of the Wilcoxon p-values over every comparison in the run.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from mathbench import runs, stats, threads
from mathbench import UsageError

from . import baselines as BL
from . import sweep, tasks

KIND = "lstm-accuracy"
SUMMARY = "summary.csv"
#: the metrics compared, with the direction that is better
METRICS = {"loss": "lower", "accuracy": "higher", "f1": "higher"}

COLUMNS = [
    "unit_id", "task", "layers", "hidden", "dtype", "variant", "cell", "gate", "role", "seed",
    "seq_len", "batch", "iterations", "lr", "clip", "val_every", "patience",
    "data", "data_fingerprint", "parameters",
    # training to the validation optimum
    "steps", "best_step", "stopped_early", "diverged", "val_loss",
    # the test part, scored once at the chosen checkpoint
    "loss", "perplexity", "accuracy", "f1",
    # trivial baselines on the same test data, and this row's state against them
    "ref_unigram", "ref_bigram", "ref_majority_acc", "ref_majority_f1", "ref_threshold_acc", "ref_threshold_f1",
    "quality_flag",
    # bookkeeping (train_seconds: not a speed measurement; units share the machine); where the unit
    # trained: the process, its machine, and how many units that process trains at once
    "train_seconds", "unit_rows", "worker_pid", "worker_host", "worker_cpu", "worker_cores", "worker_threads",
    "finished", "code_version",
]


@dataclass
class Settings:
    tasks: list = field(default_factory=lambda: ["lm", "classify"])
    layers: list = field(default_factory=lambda: [1])
    hidden: list = field(default_factory=lambda: [32, 64, 128])
    pairs: list = field(default_factory=lambda: list(sweep.DEFAULT_PAIRS))  # baseline first
    dtypes: list = field(default_factory=lambda: ["float32"])
    seeds: int = 10
    seed: int = 0
    iterations: int = 12000  # at most; training stops at the validation optimum (at 4000 most hidden-32
    # language models were still improving)
    seq_len: int = 32
    batch: int = 16
    lr: float = 1e-2
    clip: float = 5.0
    val_every: int = 100
    patience: int = 5
    jobs: int = 1
    scheduler: Optional[str] = None  # a Dask scheduler's address, or
    workers: int = 0  # ... Dask workers of a LocalCluster started for the run (0: neither, run locally)
    data: Optional[str] = None
    occupancy_train: Optional[str] = None
    occupancy_test: Optional[str] = None

    def to_dict(self) -> dict:
        return sweep.settings_dict(self)


def quick_settings() -> Settings:
    """A smoke study: tiny shapes, few steps, the minimum seeds for an interval."""
    return Settings(layers=[1], hidden=[16], seeds=6, iterations=60, seq_len=16, batch=8, val_every=20,
                    patience=2, pairs=[sweep.BASELINE, ("isru", "sigmoid:numba_simd")])


@dataclass(frozen=True)
class Unit:
    task: str
    layers: int
    hidden: int
    dtype: str
    seed: int


def validate(s: Settings) -> None:
    if not s.pairs or s.pairs[0] != sweep.BASELINE:
        raise UsageError(f"the first pair must be the baseline {'/'.join(sweep.BASELINE)}")
    for cell, gate in s.pairs:
        sweep.check_activation(cell, "cell")
        sweep.check_activation(gate, "gate")
    if s.seeds < 1:
        raise UsageError(f"--seeds {s.seeds}: must be >= 1")
    if s.jobs < 1:
        raise UsageError(f"--jobs {s.jobs}: must be >= 1")
    if s.workers < 0:
        raise UsageError(f"--workers {s.workers}: must be positive")
    if s.scheduler is not None and s.workers:
        raise UsageError("--scheduler and --workers exclude each other (a scheduler's workers are its own)")
    if s.jobs > 1 and on_cluster(s):
        raise UsageError("--jobs is for local worker processes; on Dask each worker thread trains one unit at a time")
    if (s.occupancy_train is None) != (s.occupancy_test is None):
        raise UsageError("--occupancy-train and --occupancy-test go together")


def on_cluster(s: Settings) -> bool:
    return s.scheduler is not None or s.workers > 0


def units(s: Settings) -> list[Unit]:
    return [Unit(t, L, H, dt, s.seed + k) for t in s.tasks for dt in s.dtypes for L in s.layers for H in s.hidden
            for k in range(s.seeds)]


def unit_id(s: Settings, u: Unit, ds) -> str:
    """The resume key: every setting that changes the unit's rows (``code_version`` is checked per
    folder)."""
    return "|".join([u.task, f"L{u.layers}", f"H{u.hidden}", u.dtype, f"T{s.seq_len}", f"B{s.batch}",
                     f"N{s.iterations}", f"adam{s.lr:g}c{s.clip:g}", f"V{s.val_every}p{s.patience}",
                     ",".join(f"{a}/{b}" for a, b in s.pairs), ds.fingerprint, f"seed{u.seed}"])


def code_version(s: Settings) -> str:
    """The sweep's code version (model, data, activations of the pairs...) with this module and the
    training loop added."""
    import importlib

    train_mod = importlib.import_module(f"{__package__}.train")
    return sweep.code_version(s, (__file__, train_mod.__file__))


# ============================================================================================
# one unit: every variant of one shape and seed


def _model_config(u: Unit, cell: str, gate: str, ds):
    """The sweep's model configuration of this shape and pair, serial (one thread per unit)."""
    return sweep.model_config(sweep.Config(u.task, u.layers, u.hidden, u.dtype, 1), sweep.Variant("numba", cell, gate),
                              ds, u.seed)


def run_unit(s: Settings, u: Unit, ds, uid: str, code: str) -> list[dict]:
    """Train every variant of unit ``u`` to its validation optimum and score it on the test part."""
    import importlib

    from .network import Model

    T = importlib.import_module(f"{__package__}.train")
    td = tasks.get(u.task)
    # (train, validation, test) as train/evaluate take them; the trivial baselines on that test data
    train_data, val_data, test_data = td.study_parts(ds, s.seq_len)
    refs = td.test_baselines(ds, s.seq_len)
    cfg = T.TrainConfig(iterations=s.iterations, seq_len=s.seq_len, batch=s.batch, lr=s.lr, clip=s.clip,
                        seed=u.seed, eval_every=s.val_every, patience=s.patience)
    rows = []
    for k, (cell, gate) in enumerate(s.pairs):
        model = Model(_model_config(u, cell, gate, ds))
        t0 = time.perf_counter()
        q = {"loss": math.nan, "accuracy": math.nan, "f1": math.nan}
        diverged = False
        with np.errstate(all="ignore"):
            try:
                res = T.train(model, train_data, cfg, validation=val_data)
            except T.NonFiniteLoss as e:
                res, diverged = e.result, True
            if not diverged:
                q = T.evaluate(model, test_data, seq_len=s.seq_len)
        hist = dict(res.val_history or [])
        row = dict(
            unit_id=uid, task=u.task, layers=u.layers, hidden=u.hidden, dtype=u.dtype, variant=f"{cell}/{gate}",
            cell=cell, gate=gate, role="baseline" if k == 0 else sweep.Variant("numba", cell, gate).role,
            seed=u.seed, seq_len=s.seq_len, batch=s.batch, iterations=s.iterations, lr=s.lr, clip=s.clip,
            val_every=s.val_every, patience=s.patience, data=ds.source, data_fingerprint=ds.fingerprint,
            parameters=int(model.params.flat.size), steps=res.iterations,
            best_step=res.best_iteration if not diverged else None, stopped_early=bool(res.stopped_early),
            diverged=diverged, val_loss=hist.get(res.best_iteration, {}).get("loss") if not diverged else None,
            loss=float(q["loss"]), accuracy=float(q.get("accuracy", math.nan)), f1=q.get("f1"),
            perplexity=q.get("perplexity"), quality_flag=td.flag(q, refs) if not diverged else "diverged",
            train_seconds=time.perf_counter() - t0, unit_rows=len(s.pairs), **where(),
            finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), code_version=code,
            **td.ref_columns(refs))
        if "accuracy" not in td.EVAL_METRICS:
            row["accuracy"] = None  # train.evaluate reports none (the LM: no next-character accuracy)
        rows.append(row)
    return rows


_WHERE: dict = {}


def where() -> dict:
    """The row's process and machine: pid, host name, CPU model, cores, and how many units this
    process trains at once (1 here and in --jobs workers; ``cluster`` sets a Dask worker's threads)."""
    if not _WHERE:
        from mathbench import cpu_info

        _WHERE.update(worker_host=platform.node(), worker_cpu=cpu_info()["model"], worker_cores=os.cpu_count())
    return dict(worker_pid=os.getpid(), **_WHERE, worker_threads=1)


# --------------------------------------------------------------------------------------------
# worker processes


_WORKER: dict = {}


def _worker_init(s: Settings, driver: int) -> None:
    """Each worker: one thread everywhere (the units of two workers must not share a core's
    threads), the datasets loaded once, and a watch on the driver: a driver killed outright
    (SIGKILL, or SIGTERM, which Python does not catch) cannot stop its workers, so each worker
    exits by itself once its parent is gone instead of training on for nobody."""
    import threading

    def watch() -> None:
        # ``driver`` comes from the driver itself: a worker whose initializer runs after the driver
        # died already has another parent, and must see that at once
        while os.getppid() == driver:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="driver-watch").start()
    os.environ["OMP_NUM_THREADS"] = "1"
    import numba

    numba.set_num_threads(1)
    _WORKER["s"] = s
    _WORKER["ds"] = sweep.load_datasets(_as_sweep_settings(s))


def _worker_unit(u: Unit, uid: str, code: str) -> list[dict]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return run_unit(_WORKER["s"], u, _WORKER["ds"][u.task], uid, code)


def _as_sweep_settings(s: Settings) -> sweep.Settings:
    return sweep.Settings(tasks=list(s.tasks), seq_len=s.seq_len, data=s.data, occupancy_train=s.occupancy_train,
                          occupancy_test=s.occupancy_test, pairs=list(s.pairs), peers="off")


# ============================================================================================
# the run


def run(s: Settings, out: Optional[str], argv: list[str], progress_factory=None,
        resume_anyway: bool = False) -> tuple[Path, list, dict]:
    """Run (or resume) the study into a run folder; returns (folder, unit ids of this plan, this
    session's metadata)."""
    validate(s)
    if not on_cluster(s):
        return _run(s, out, argv, progress_factory, resume_anyway, None)
    from . import cluster  # Dask is imported only here: the local study does not need it

    with cluster.connect(s) as client:  # before the run folder exists: a bad address writes nothing
        return _run(s, out, argv, progress_factory, resume_anyway, client)


def _run(s: Settings, out: Optional[str], argv: list[str], progress_factory, resume_anyway: bool,
         client) -> tuple[Path, list, dict]:
    datasets = sweep.load_datasets(_as_sweep_settings(s))
    plan = [(u, unit_id(s, u, datasets[u.task])) for u in units(s)]
    code = code_version(s)
    command = "python -m lstm_numba accuracy " + " ".join(argv)
    run_dir, meta, session, resumed = sweep.open_run(KIND, out, argv, command, code, s.to_dict(), resume_anyway,
                                                     meta_argv=["accuracy", *argv])
    meta_path = run_dir / runs.METADATA
    done = sweep.prepare_resume(run_dir, COLUMNS, "unit_id", "unit_rows", "accuracy study") if resumed else set()
    session.update(units_planned=len(plan), units_already_done=sum(uid in done for _, uid in plan))
    meta["plan"] = [uid for _, uid in plan]
    meta["data"] = {t: sweep.data_info(ds, t) for t, ds in datasets.items()}
    meta["variants"] = [f"{c}/{g}" for c, g in s.pairs]
    meta["threads_per_unit"] = 1
    if client is not None:
        from . import cluster

        session["cluster"] = cluster.describe(client)
    runs.write_json(meta_path, meta)

    todo = [(u, uid) for u, uid in plan if uid not in done]
    t0 = time.perf_counter()
    compile_s = _compile(s, todo, datasets)
    bar = progress_factory(total=len(plan), initial=len(plan) - len(todo), desc="accuracy study",
                           unit="seed") if progress_factory else None
    written = set(done)
    with runs.ResultsWriter(run_dir, COLUMNS) as writer:
        def write(u: Unit, rows: list[dict]) -> None:
            if rows[0]["unit_id"] in written:  # e.g. a Dask task run again after its worker died: once only
                return
            written.add(rows[0]["unit_id"])
            for row in rows:  # a unit's rows together, each flushed
                writer.write(row)
            if bar:
                bar.update(1)
                bar.set_postfix_str(f"{u.task} L{u.layers} H{u.hidden} seed {u.seed}")

        try:
            if client is not None:
                from . import cluster

                cluster.run_units(client, s, todo, datasets, code, write)
            elif s.jobs == 1 or len(todo) <= 1:
                with threads.limit(1, blas=1):
                    for u, uid in todo:
                        write(u, run_unit(s, u, datasets[u.task], uid, code))
            else:
                _run_pool(s, todo, code, write)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted; the finished seeds are in {run_dir}: run again with "
                                    f"--out {run_dir} to resume") from None
    if bar:
        bar.close()
    sess = meta["sessions"][-1]
    sess["wall_seconds"] = time.perf_counter() - t0
    sess["units_measured"] = len(todo)
    sess["compile_seconds"] = compile_s
    meta["finished"] = True
    runs.record_end_state(meta)
    runs.write_json(meta_path, meta)
    write_summary(run_dir)
    return run_dir, meta["plan"], sess


def _compile(s: Settings, todo: list, datasets: dict) -> dict:
    """Compile (or load from the disk cache) every kernel set before any worker starts, so that
    workers only load: seconds per (task, dtype, variant)."""
    from .network import Model

    out = {}
    for u, _ in todo:
        for cell, gate in s.pairs:
            key = f"{u.task} {u.dtype} {cell}/{gate}"
            if key not in out:
                out[key] = Model(_model_config(u, cell, gate, datasets[u.task])).compile()
    return out


def _run_pool(s: Settings, todo: list, code: str, write) -> None:
    """Units on ``s.jobs`` worker processes; rows are written by this process as units finish. On
    an interrupt the finished units stay written and the workers are stopped."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited Numba or BLAS thread pools
    pool = ProcessPoolExecutor(max_workers=min(s.jobs, len(todo)), mp_context=ctx, initializer=_worker_init,
                               initargs=(s, os.getpid()))
    try:
        futures = {pool.submit(_worker_unit, u, uid, code): u for u, uid in todo}
        for f in as_completed(futures):
            try:
                rows = f.result()
            except BrokenProcessPool:
                raise UsageError("a worker process died (killed, or out of memory); the finished seeds are kept: "
                                 "run the same command with the same --out to resume") from None
            write(futures[f], rows)
    except BaseException:
        for p in list(getattr(pool, "_processes", {}).values()):
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


# ============================================================================================
# the comparison (reads results.csv only)


def median_interval(d: np.ndarray) -> tuple[float, float, float, str]:
    """(median, lo, hi, kind) of paired differences: the order-statistic 95% interval of the
    median (sign-test inversion, distribution-free), or the range when n < 6 (too few for 95%)."""
    d = np.sort(d)
    n = d.size
    if n == 0:
        return (math.nan, math.nan, math.nan, "")
    k = stats.order_rank(n)
    if k == 0:
        return (float(np.median(d)), float(d[0]), float(d[-1]), sweep.RANGE)
    return (float(np.median(d)), float(d[k - 1]), float(d[n - k]), "95% order-statistic")


def paired_tests(d: np.ndarray) -> tuple[float, float, int]:
    """Two-sided (Wilcoxon signed-rank p, sign-test p, non-zero differences). Zero differences
    carry no sign and are dropped (Wilcoxon's original treatment); all zero: p = 1."""
    from scipy.stats import binomtest, wilcoxon

    nz = d[d != 0]
    if nz.size == 0:
        return (1.0, 1.0, 0)
    w = float(wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)
    s = float(binomtest(int((nz > 0).sum()), int(nz.size), 0.5).pvalue)
    return (w, s, int(nz.size))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error over every test given)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = order.size, 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def comparisons(df) -> "pd.DataFrame":
    """One row per (shape, candidate, metric): candidate - baseline paired by seed over the seeds
    where both trained (not diverged, better than the unigram / majority baseline)."""
    import pandas as pd

    df = df.copy()
    df["ok"] = (~df["diverged"].astype(bool)) & df["quality_flag"].isin([BL.TRAINED, BL.WEAK])
    keys = ["task", "layers", "hidden", "dtype"]
    out = []
    for shape, g in df.groupby(keys, sort=True):
        base = g[g["role"] == "baseline"].set_index("seed")
        for variant, c in g[g["role"] != "baseline"].groupby("variant", sort=False):
            c = c.set_index("seed")
            seeds = base.index.intersection(c.index)
            both = seeds[(base.loc[seeds, "ok"] & c.loc[seeds, "ok"]).to_numpy()]
            for metric, better in METRICS.items():
                if metric not in g or g[metric].isna().all():
                    continue
                b = np.asarray(base.loc[both, metric], dtype=float)
                v = np.asarray(c.loc[both, metric], dtype=float)
                keep = np.isfinite(b) & np.isfinite(v)
                d = v[keep] - b[keep]
                mid, lo, hi, kind = median_interval(d)
                p_w, p_s, nz = paired_tests(d) if d.size else (math.nan, math.nan, 0)
                worse = int((d > 0).sum() if better == "lower" else (d < 0).sum())
                out.append(dict(zip(keys, shape), variant=variant, role=c["role"].iloc[0], metric=metric,
                                better=better, seeds=int(len(seeds)), n=int(d.size), nonzero=nz,
                                excluded=int(len(seeds) - d.size), baseline_median=float(np.median(b[keep]))
                                if keep.any() else math.nan, variant_median=float(np.median(v[keep]))
                                if keep.any() else math.nan, diff=mid, diff_lo=lo, diff_hi=hi, interval=kind,
                                worse_seeds=worse, p_wilcoxon=p_w, p_sign=p_s,
                                baseline_flags=_flags(base.loc[seeds]), variant_flags=_flags(c.loc[seeds])))
    res = pd.DataFrame(out)
    if len(res):
        res["p_holm"] = holm(res["p_wilcoxon"].to_numpy())
    return res


def _flags(g) -> str:
    """How many seeds are trained / weak / not trained / diverged, and how many stopped at the step
    limit rather than at their validation optimum, e.g. "10 trained" or "9 trained, 1 weak; 3 at
    the step limit"."""
    counts = g["quality_flag"].fillna("").value_counts()
    text = ", ".join(f"{n} {k}" for k, n in counts.items() if k)
    limit = int(_at_limit(g).sum())
    return text + (f"; {limit} at the step limit" if limit else "")


def _at_limit(g):
    """Rows whose training ran to --iterations without validation stopping it: the checkpoint is
    the best seen, but the model may still have been improving."""
    if "stopped_early" not in g:
        return g.index.to_series().map(lambda _: False)
    return (~g["stopped_early"].astype(bool)) & (~g["diverged"].astype(bool))


def write_summary(run_dir: Path) -> Path:
    """``summary.csv`` next to the results: the comparison table, derived from results.csv only
    (rewritten whole, atomically, after every session)."""
    df, _ = runs.load_run(run_dir)
    path = Path(run_dir) / SUMMARY
    tmp = path.with_name(path.name + ".tmp")
    comparisons(df).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _p(v: float) -> str:
    return "-" if not math.isfinite(v) else (f"{v:.3f}" if v >= 0.001 else "<0.001")


def summary(df, unit_ids: Optional[list] = None) -> str:
    """The comparison as text: absolute quality and baselines per shape, then the paired
    differences."""
    from mathbench import table

    if unit_ids is not None:
        df = df[df["unit_id"].isin(unit_ids)]
    if df.empty:
        return "(no finished units)"
    lines = []
    for task, g in df.groupby("task", sort=True):
        td = tasks.get(task)
        refs = ", ".join(f"{name} {td.REF_FORMAT.format(g[col].iloc[0])}" for name, col in td.REF_MEDIANS)
        refs += f" {td.REF_UNIT}"
        lines.append(f"{task} (data: {g['data'].iloc[0]}); trivial baselines on the test data: {refs}")
        rows = []
        order = {v: i for i, v in enumerate(g.sort_values("role", key=lambda r: r != "baseline", kind="stable")
                                            ["variant"].unique())}
        for (L, H, dt, _, var), v in g.assign(_o=g["variant"].map(order)).groupby(
                ["layers", "hidden", "dtype", "_o", "variant"], sort=True):
            metric = v[td.QUALITY]
            rows.append([L, H, dt, var, len(v), f"{np.nanmedian(metric):.4f}" if metric.notna().any() else "-",
                         f"{np.median(v['best_step']):.0f}" if v["best_step"].notna().any() else "-",
                         _flags(v)])
        lines.append(table(rows, ["layers", "hidden", "dtype", "variant", "seeds",
                                  f"median test {td.QUALITY}",
                                  "median chosen step", "state"]))
        lines.append("")
    comp = comparisons(df)
    if comp.empty:
        return "\n".join(lines + ["(no candidate with a paired baseline yet)"])
    lines.append("candidate - baseline, paired by seed (seeds where both trained): median "
                 "[order-statistic 95% interval] or {range} below 6 seeds; Wilcoxon signed-rank and sign "
                 "test p (two-sided), Holm-adjusted over all tests; 'worse': seeds where the candidate was worse")
    rows = []
    for _, r in comp.iterrows():
        spec = "{:+.4f}"
        mid = "-" if not math.isfinite(r["diff"]) else spec.format(r["diff"])
        if math.isfinite(r["diff"]):
            a, b = spec.format(r["diff_lo"]), spec.format(r["diff_hi"])
            mid += f" {{{a}..{b}}}" if r["interval"] == sweep.RANGE else f" [{a}, {b}]"
        rows.append([r["task"], r["layers"], r["hidden"], r["variant"], r["metric"], f"{r['n']}",
                     mid, f"{r['worse_seeds']}/{r['n']}", _p(r["p_wilcoxon"]), _p(r["p_sign"]), _p(r["p_holm"])])
    lines.append(table(rows, ["task", "layers", "hidden", "variant", "metric", "n", "difference",
                              "worse", "p Wilcoxon", "p sign", "p Holm"]))
    return "\n".join(lines)


def status(df, meta: dict) -> list[str]:
    out = []
    if "stopped_early" in df and len(df):
        k = int(_at_limit(df).sum())
        if k:
            out.append(f"note: {k} of {len(df)} trainings ran to the step limit (--iterations) without validation "
                       "stopping them, so they may not be at their validation optimum; raise --iterations")
    if "worker_host" in df and df["worker_host"].nunique() > 1:  # older folders have no such column
        per_host = df.groupby("worker_host")["unit_id"].nunique()
        out.append(f"trained on {len(per_host)} machines: "
                   + ", ".join(f"{h} ({n} unit{'s' * (n != 1)})" for h, n in per_host.items()))
    return out + _incomplete(df, meta)


def _incomplete(df, meta: dict) -> list[str]:
    plan = meta.get("plan") or []
    groups = sweep._config_groups(df.to_dict("records"), "unit_id") if "unit_id" in df else {}
    done = {uid for uid, g in groups.items() if sweep._complete(g, "unit_rows")}
    k = sum(uid in done for uid in plan)
    if plan and k < len(plan):
        return [f"incomplete: {k} of {len(plan)} units (shape x seed) finished; run the same command with the "
                "same --out to resume"]
    return []
