"""``python -m lstm_numba``: the LSTM activation sweep (default subcommand ``sweep``) and
``report`` for an earlier run folder."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from mathbench import registry
from mathbench import runs, threads
from mathbench import choices, positive_ints, progress_factory, split_list
from mathbench import ArgumentParser, UsageError

from . import data as D, study, sweep, tasks, versus

PROG = "lstm_numba"

DESCRIPTION = """\
Train and time a multi-layer LSTM in Numba with activation pairs in the cell slot (CELL) and the
gate slot (GATE), per task x layers x hidden x dtype x threads, paired: every variant of one shape
starts from the same initial weights, sees the same batches, and the variants take turns chunk by
chunk. The baseline is tanh:numba_simd/sigmoid:numba_simd (accurate and vectorized); the default
candidates are isru/sigmoid:numba_simd, isru/isru_sigmoid, isru:numba_rsqrt/sigmoid:numba_simd and
tanh/sigmoid, the seed project's configuration (scalar libm tanhf/expf, shown as such).
Per row: JIT compile time (separate), which loops vectorized (gate forward, cell forward,
backward, head; from the compiled assembly), seconds per training step split into forward /
backward / optimizer, prediction latency (one sequence at batch 1) and throughput (--eval-batch
sequences), and held-out quality (loss + perplexity for lm, accuracy and F1 for classify) on the
test part, scored once at the checkpoint chosen on validation data (the last 10% of the training
text or file, every --val-every steps, final after --patience validations without improvement),
beside trivial baselines of the same data (unigram/bigram cross-entropy, majority class and best
single-feature threshold): a model no better than unigram/majority is 'not trained' and left out
of the comparison, one no better than bigram/threshold is 'weak'. Medians with order-statistic 95%
intervals from at least 10 samples, else the range (min..max) and the count.
speedup = time(baseline) / time(variant) (> 1: faster), paired; loss and accuracy differences
(variant - baseline) pair by seed. With torch installed (the 'peers' extra) a torch.nn.LSTM of the
same shape, same weights and same batches runs in the same run at the same thread count.

Output: runs/lstm-TIMESTAMP/ (runs/ of the project checkout, ignored by git; or --out DIR) with
results.csv, one row per configuration x variant written as each configuration finishes, and
metadata.json. Running again with the same
--out resumes: finished configurations are skipped, an interrupted one is redone; a folder
measured by other code (sources or numeric library versions differ) is refused unless
--resume-anyway. metadata.json records every session (command, commit, dirty tree, code version,
machine load before and after).

tasks:
  lm        character language model: embedded English-like corpus, or --data FILE (UTF-8 text;
            the last 10% is held out for the test, the last 10% of the rest for validation)
  classify  occupancy from 5 sensor series, label at the window's end: embedded synthetic office,
            or --occupancy-train/--occupancy-test (UCI Occupancy Detection CSV files; the last
            10% of the training file's rows label the validation windows)

The options below are those of the default subcommand, sweep; the others are listed after them
(lstm_numba COMMAND -h for each).
"""

EPILOG = """\
examples:
  python -m lstm_numba                           default: lm, layers 1,2,3 x hidden 16..256,
                                                 the five default pairs, 1 thread and all cores
  python -m lstm_numba --quick                   smoke sweep (well under a minute with warm caches)
  python -m lstm_numba --tasks classify --occupancy-train datatraining.txt --occupancy-test datatest.txt
  python -m lstm_numba --pairs isru,softsign/sigmoid:numba_simd,tanh/isru_sigmoid --dtypes float32,float64
  python -m lstm_numba --hidden 512 --layers 1 --threads 1 --out runs/h512
  python -m lstm_numba --out runs/lstm-run       (again: resumes that run)
"""


def _threads(text: str) -> list[int]:
    n = threads.max_threads()
    toks = [str(n) if t.lower() == "all" else t for t in split_list(text, "threads")]
    vals = positive_ints(",".join(toks), "threads")
    for t in vals:
        if t > n:
            raise UsageError(f"--threads {t}: out of range 1..{n} ({_thread_cap(n)})")
    return sorted(vals)


def _thread_cap(n: int) -> str:
    """What caps the thread count: always Numba's NUMBA_NUM_THREADS, which defaults to the cores
    Numba sees but may have been set (lower or higher) in the environment."""
    if "NUMBA_NUM_THREADS" in os.environ:
        return f"NUMBA_NUM_THREADS={n} in the environment caps Numba's threads"
    return f"NUMBA_NUM_THREADS caps Numba's threads; it defaults to the {n} cores Numba sees"


def _positive(v, name: str, kind=int):
    if v is None:
        return None
    if kind is int and v < 1:
        raise UsageError(f"--{name} {v}: must be positive")
    if kind is float and not (v > 0 and math.isfinite(v)):
        raise UsageError(f"--{name} {v}: must be a positive number")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d = sweep.Settings()
    g = p.add_argument_group("what to sweep")
    g.add_argument("--tasks", help=f"comma-separated: {', '.join(tasks.NAMES)} (default {','.join(d.tasks)})")
    g.add_argument("--layers", help="stacked layers, comma-separated (default 1,2,3)")
    g.add_argument("--hidden", help="hidden sizes, comma-separated (default 16,32,64,128,256)")
    g.add_argument("--pairs", help="activation pairs to compare with the baseline "
                   f"{'/'.join(sweep.BASELINE)}, comma-separated CELL/GATE (CELL alone means "
                   f"CELL/{sweep.BASELINE[1]}); names from the registry, optionally NAME:IMPL, e.g. "
                   "tanh:numba_rational; each needs a backprop form (see --list). The baseline is always "
                   "included (default " + ",".join("/".join(p) for p in sweep.DEFAULT_PAIRS[1:]) + ")")
    g.add_argument("--dtypes", help="float32, float64 (default float32)")
    g.add_argument("--threads", help="thread counts, comma-separated; 1 = serial kernels, N > 1 = parallel "
                   f"kernels on N threads; 'all' = {threads.max_threads()} (default 1,all)")
    g.add_argument("--peers", choices=("auto", "on", "off"), default=None,
                   help="torch.nn.LSTM peer rows: auto = when torch is installed (default), on = required, off")
    g = p.add_argument_group("how much")
    g.add_argument("--iterations", type=int, help=f"training steps per variant and repeat (default {d.iterations})")
    g.add_argument("--repeats", type=int, help=f"repeats, each with its own seed, weights and batches "
                   f"(default {d.repeats})")
    g.add_argument("--chunks", type=int, help=f"turns per repeat: the variants alternate every "
                   f"iterations/chunks steps; one paired timing sample per chunk (default {d.chunks})")
    g.add_argument("--seq-len", type=int, help=f"sequence length T (default {d.seq_len})")
    g.add_argument("--batch", type=int, help=f"training batch size (default {d.batch})")
    g.add_argument("--eval-batch", type=int, help=f"batch for the throughput timing and held-out evaluation "
                   f"(default {d.eval_batch})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    g.add_argument("--clip", type=float, help=f"global gradient-norm clip, 0 = none (default {d.clip:g})")
    g.add_argument("--seed", type=int, help="first seed; repeat r uses seed + r (default 0)")
    g.add_argument("--val-every", type=int, help="validate every this many steps on the end of the training data "
                   "(default: iterations/8); the test part is scored once, at the best validation checkpoint")
    g.add_argument("--patience", type=int, help=f"validations without a lower loss after which the checkpoint "
                   f"is final, as early stopping would keep it; 0 = never (default {d.patience})")
    _data_args(p.add_argument_group("data (default: embedded, generated offline)"), "sweep")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/lstm-TIMESTAMP); an existing "
                   "lstm run folder is resumed")
    g.add_argument("--resume-anyway", action="store_true", help="resume an --out folder measured by another "
                   "code version (sources or library versions differ); without it that is refused")
    g.add_argument("--quick", action="store_true", help="smoke sweep: lm and classify, 1 layer, hidden 16,32, "
                   "float32, 1 thread, 12 steps, 2 repeats, the baseline, isru/sigmoid:numba_simd and tanh/sigmoid")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    g.add_argument("--list", action="store_true", help="list the activations usable in the cell and gate slots")
    return p


def _common_settings(args, s, counts: tuple):
    """The options the sweep and the accuracy study share, applied to settings ``s``."""
    if args.tasks:
        s.tasks = choices(args.tasks, "tasks", sweep.TASKS, "task")
    if args.layers:
        s.layers = positive_ints(args.layers, "layers")
    if args.hidden:
        s.hidden = positive_ints(args.hidden, "hidden")
    if args.pairs is not None:
        pairs = [sweep.parse_pair(t) for t in split_list(args.pairs, "pairs")]
        s.pairs = [sweep.BASELINE] + [pq for pq in dict.fromkeys(pairs) if pq != sweep.BASELINE]
    if args.dtypes:
        s.dtypes = choices(args.dtypes, "dtypes", sweep.DTYPES, "dtype")
    for name in counts:
        v = _positive(getattr(args, name), name.replace("_", "-"))
        if v is not None:
            setattr(s, name, v)
    if args.patience is not None:
        if args.patience < 0:
            raise UsageError(f"--patience {args.patience}: must be >= 0 (0: no early stopping)")
        s.patience = args.patience
    if args.lr is not None:
        s.lr = _positive(args.lr, "lr", float)
    if args.clip is not None:
        if not (args.clip >= 0 and math.isfinite(args.clip)):
            raise UsageError(f"--clip {args.clip}: must be >= 0 (0: no clipping)")
        s.clip = args.clip
    if args.seed is not None:
        if args.seed < 0:
            raise UsageError(f"--seed {args.seed}: must be non-negative")
        s.seed = args.seed
    for t in tasks.TASKS.values():
        for flag in t.DATA_OPTIONS:
            setattr(s, tasks.dest(flag), getattr(args, tasks.dest(flag), None))
    # data files name the data: without --tasks only their tasks run (the embedded data of the
    # other tasks would be another experiment)
    given = [t for t in tasks.TASKS.values() if t.data_given(args)]
    if args.tasks:
        for t in given:
            if t.name not in s.tasks:
                raise UsageError(t.DATA_MISUSE["tasks"])
    elif given:
        s.tasks = [t.name for t in given]
    return s


def _data_args(group, command: str) -> None:
    """Every task's data file options that ``command`` has, in the tasks' order."""
    for t in tasks.TASKS.values():
        t.add_data_args(group, command)


def make_settings(args) -> sweep.Settings:
    s = _common_settings(args, sweep.quick_settings() if args.quick else sweep.Settings(),
                         ("iterations", "repeats", "chunks", "seq_len", "batch", "eval_batch", "val_every"))
    if args.threads:
        s.threads = _threads(args.threads)
    if args.peers:
        s.peers = args.peers
    sweep.validate(s)
    return s


def list_activations() -> str:
    from mathbench import table

    rows = []
    for a in registry.REGISTRY.values():
        for im in a.impls.values():
            if im.backend != "numba":
                continue
            ok = a.has_backprop_form and im.dfdy is not None
            spec = a.name if im.name == "numba" else f"{a.name}:{im.name}"
            lo, hi = a.out_range
            rows.append([spec, a.group, "yes" if ok else "no", f"({lo}, {hi})", im.note or a.description])
    return ("Activations for --pairs CELL/GATE (a gate should map into (0, 1); the cell slot usually "
            "into (-1, 1)):\n" + table(rows, ["spec", "group", "backprop form", "range", "note"]))


def main_sweep(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(list_activations())
        return 0
    s = make_settings(args)
    t0 = time.perf_counter()
    run_dir, ids, session = sweep.run(s, args.out, argv, progress_factory(args.no_progress), args.resume_anyway)
    df, meta = runs.load_run(run_dir)
    print(sweep.summary(df, ids))
    if not sweep.use_peer(s):
        why = "--peers off" if s.peers == "off" else "torch is not installed; pip install -e '.[peers]'"
        print(f"\n(no torch peer rows: {why})")
    for line in sweep.status(df, meta):
        print(line)
    skipped = session["configs_already_done"]
    print(f"\n{len(ids)} configurations: {session['configs_measured']} measured in {time.perf_counter() - t0:.1f} s"
          + (f", {skipped} already finished in this folder (skipped)" if skipped else "")
          + f"; results: {run_dir}/{runs.RESULTS} and {runs.METADATA}")
    return 0


def main_report(argv: list[str]) -> int:
    p = ArgumentParser(prog=f"{PROG} report", description="Print the summary of an LSTM run folder (a sweep, "
                       "an accuracy study or a vs-torch run).")
    p.add_argument("run")
    p.add_argument("--html", metavar="FILE", help="write the report as one self-contained web page (machine, "
                   "settings, findings, figures, summary tables, command) to FILE, which must not exist")
    args = p.parse_args(argv)
    if args.html:
        from mathbench import htmlpage

        htmlpage.check_target(args.html)  # refuse before reading or drawing anything
    df, meta = runs.load_run(args.run)
    # kind -> (the column its rows are keyed by, what it is called, what prints its summary)
    kinds = {sweep.KIND: ("config_id", "an LSTM sweep", lambda: [sweep.summary(df), *sweep.status(df, meta)]),
             study.KIND: ("unit_id", "an LSTM accuracy study", lambda: [study.summary(df), *study.status(df, meta)]),
             versus.KIND: ("train_ratio", "a vs-torch run", lambda: [versus.report(Path(args.run), df, meta)])}
    kind = meta.get("kind")
    if kind not in kinds:
        raise UsageError(f"{args.run} is a {kind!r} run, not an {sweep.KIND}, {study.KIND} or {versus.KIND} run")
    column, what, lines = kinds[kind]
    if column not in df.columns:
        raise UsageError(f"{args.run}/{runs.RESULTS} has no {column} column; not {what}")
    if args.html:
        from . import report_html

        print(f"wrote {htmlpage.write_page(args.html, report_html.build(args.run, df, meta))}")
        return 0
    print("\n".join(lines()))
    return 0


# --------------------------------------------------------------------------------------------
# accuracy: the quality question on models trained to their validation optimum


ACCURACY_DESCRIPTION = """\
Does the activation pair change what the LSTM learns? For every shape (task x layers x hidden x
dtype) and seed, every pair is trained from the same initial weights on the same batches to its
validation optimum (validation every --val-every steps on the last 10% of the training data, stop
after --patience validations without a lower loss or at --iterations, best checkpoint restored),
then scored once on the test part, beside trivial baselines of the same data (unigram/bigram
cross-entropy, majority class and best single-feature threshold). Each candidate is compared with
the baseline tanh:numba_simd/sigmoid:numba_simd paired by seed, over the seeds where both trained
past the unigram/majority baseline: the median difference (candidate - baseline) with the
distribution-free order-statistic 95% interval of a median (from 6 seeds; fewer: the range, so
labelled), the two-sided Wilcoxon signed-rank and sign tests, and Holm's adjustment over every
test of the run. No timing: --jobs runs seeds in that many worker processes (serial kernels, one
thread each).

On Dask (pip install 'mathbench[dask]'): --scheduler ADDR trains each seed on a worker of a running
scheduler, --workers N on a local cluster started for the run; this process writes the rows as
seeds finish, so resuming and Ctrl-C work as locally, and each row names the machine that trained
it. Only training leaves this machine: timings from a shared cluster are not comparable, so the
timing commands (sweep, vs-torch) stay local, and the study's train_seconds is bookkeeping.

Output: runs/lstm-accuracy-TIMESTAMP/ (or --out DIR): results.csv, one row per shape x seed x pair
(written a seed at a time), summary.csv (the comparison, derived from results.csv) and
metadata.json. The same --out resumes; a folder measured by other code is refused unless
--resume-anyway.
"""


def _accuracy_parser() -> argparse.ArgumentParser:
    d = study.Settings()
    p = ArgumentParser(prog=f"{PROG} accuracy", description=ACCURACY_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""\
examples:
  python -m lstm_numba accuracy                          lm and classify, 1 layer, hidden 32,64,128, 10 seeds
  python -m lstm_numba accuracy --quick                  smoke study (tiny, 6 seeds)
  python -m lstm_numba accuracy --occupancy-train datatraining.txt --occupancy-test datatest.txt --jobs 2
  python -m lstm_numba accuracy --scheduler tcp://10.0.0.5:8786   each seed on a worker of that scheduler
""")
    g = p.add_argument_group("what to compare")
    g.add_argument("--tasks", help=f"comma-separated: {', '.join(tasks.NAMES)} (default {','.join(d.tasks)})")
    g.add_argument("--layers", help=f"stacked layers, comma-separated (default {','.join(map(str, d.layers))})")
    g.add_argument("--hidden", help=f"hidden sizes, comma-separated (default {','.join(map(str, d.hidden))})")
    g.add_argument("--pairs", help="activation pairs to compare with the baseline (CELL/GATE, comma-separated; "
                   "default: the sweep's candidates)")
    g.add_argument("--dtypes", help="float32, float64 (default float32)")
    g = p.add_argument_group("how much")
    g.add_argument("--seeds", type=int, help=f"paired seeds per shape (default {d.seeds}; an interval needs 6)")
    g.add_argument("--seed", type=int, help="first seed; seed k is seed + k (default 0)")
    g.add_argument("--iterations", type=int, help=f"most training steps (default {d.iterations})")
    g.add_argument("--seq-len", type=int, help=f"sequence length T (default {d.seq_len})")
    g.add_argument("--batch", type=int, help=f"training batch size (default {d.batch})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    g.add_argument("--clip", type=float, help=f"global gradient-norm clip, 0 = none (default {d.clip:g})")
    g.add_argument("--val-every", type=int, help=f"validate every this many steps (default {d.val_every})")
    g.add_argument("--patience", type=int, help=f"validations without a lower loss before stopping (default "
                   f"{d.patience}; 0: train all --iterations)")
    g.add_argument("--jobs", type=int, help=f"worker processes (default {d.jobs}; at most the cores)")
    g = p.add_argument_group("on Dask instead of --jobs (pip install 'mathbench[dask]')")
    g.add_argument("--scheduler", metavar="ADDR", help="a running Dask scheduler (tcp://HOST:PORT); every worker "
                   "needs this project at the driver's code version (checked per seed)")
    g.add_argument("--workers", type=int, help="start a local Dask cluster of this many worker processes (one "
                   "thread each; at most the cores) for the run")
    _data_args(p.add_argument_group("data (default: embedded, generated offline)"), "accuracy")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="run folder (default runs/lstm-accuracy-TIMESTAMP); an existing "
                   "study folder is resumed")
    g.add_argument("--resume-anyway", action="store_true", help="resume an --out folder measured by other code")
    g.add_argument("--quick", action="store_true", help="smoke study: both tasks, 1 layer, hidden 16, 6 seeds, "
                   "at most 60 steps, the baseline and isru/sigmoid:numba_simd")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def accuracy_settings(args) -> study.Settings:
    s = _common_settings(args, study.quick_settings() if args.quick else study.Settings(),
                         ("seeds", "iterations", "seq_len", "batch", "val_every", "jobs", "workers"))
    for name in ("jobs", "workers"):
        if getattr(s, name) > (os.cpu_count() or 1):
            raise UsageError(f"--{name} {getattr(s, name)}: more than the {os.cpu_count()} cores of this machine "
                             "(workers beyond that only slow each other down)")
    s.scheduler = args.scheduler
    study.validate(s)
    return s


def main_accuracy(argv: list[str]) -> int:
    args = _accuracy_parser().parse_args(argv)
    s = accuracy_settings(args)
    t0 = time.perf_counter()
    run_dir, ids, session = study.run(s, args.out, argv, progress_factory(args.no_progress), args.resume_anyway)
    df, meta = runs.load_run(run_dir)
    print(study.summary(df, ids))
    for line in study.status(df, meta):
        print(line)
    skipped = session["units_already_done"]
    print(f"\n{len(ids)} units (shape x seed): {session['units_measured']} trained in "
          f"{time.perf_counter() - t0:.1f} s" + (f", {skipped} already finished in this folder (skipped)"
                                                 if skipped else "")
          + f"; results: {run_dir}/{runs.RESULTS}, {study.SUMMARY} and {runs.METADATA}")
    return 0


# --------------------------------------------------------------------------------------------
# train / generate / predict: one model at a time (lstm_numba.train does the work)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag's False) or
    the help text already states it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=f"{PROG} train", formatter_class=_DefaultsFormatter,
                       description="Train one LSTM on the embedded data (or --data / --occupancy-* files) and save "
                       "it (.npz with the vocabulary or the feature normalization and the data's path and content "
                       "hash, so generate/predict can use it). The last 10% of the training text or file is kept "
                       "for validation: its metrics are printed every --eval-every steps, training stops after "
                       "--patience validations without improvement, and the best checkpoint is saved. The test part "
                       "is scored once, at that checkpoint, beside trivial baselines of the same data.")
    p.add_argument("--task", choices=sweep.TASKS, default=tasks.NAMES[0],
                   help="; ".join(f"{t.name}: {t.SUMMARY}" for t in tasks.TASKS.values()))
    _data_args(p, "train")
    p.add_argument("--layers", type=int, default=1, help="stacked LSTM layers")
    p.add_argument("--hidden", type=int, default=64, help="hidden units per layer")
    p.add_argument("--cell", default=sweep.BASELINE[0], help="cell activation (registry name; see lstm_numba "
                   "--list; tanh is the scalar libm tanh)")
    p.add_argument("--gate", default=sweep.BASELINE[1], help="gate activation (sigmoid: scalar libm exp)")
    p.add_argument("--dtype", choices=sweep.DTYPES, default="float32", help="floating-point type")
    p.add_argument("--threads", type=int, default=1, help="1 = serial kernels, N > 1 = parallel on N threads")
    p.add_argument("--iterations", type=int, default=300, help="training steps")
    p.add_argument("--batch", type=int, default=16, help="training batch size")
    p.add_argument("--seq-len", type=int, default=32, help="sequence length T")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=5.0, help="global gradient-norm clip, 0 = none")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order")
    p.add_argument("--eval-every", type=int, default=50, help="evaluate on the validation part (the last "
                   f"{D.VALIDATION_FRACTION * 100:.0f}%% of the training text or file) every this many steps")
    p.add_argument("--patience", type=int, default=5, help="stop after this many validations in a row without a "
                   "lower validation loss (0: never stop early); the best checkpoint is kept either way")
    p.add_argument("--save", metavar="PATH", required=True, help="where to write the model (.npz; never "
                   "overwrites a file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def _train_module():
    """``lstm_numba.train`` the module: the package's ``__init__`` re-exports the function
    ``train`` under the same name, so ``from . import train`` would give the function."""
    import importlib

    return importlib.import_module(f"{__package__}.train")


def main_train(argv: list[str]) -> int:
    import numpy as np

    T = _train_module()
    from .network import Model, ModelConfig

    args = _train_parser().parse_args(argv)
    for name in ("layers", "hidden", "iterations", "batch", "seq_len", "eval_every"):
        _positive(getattr(args, name), name.replace("_", "-"))
    if args.patience < 0:
        raise UsageError(f"--patience {args.patience}: must be >= 0 (0: never stop early)")
    _positive(args.lr, "lr", float)
    _threads(str(args.threads))
    sweep.check_activation(args.cell, "cell")
    sweep.check_activation(args.gate, "gate")
    save_path = _check_save_path(args.save)
    task = tasks.get(args.task)
    _refuse_others_data(task, args, "train")
    ds = task.load_data(args)  # the embedded data set when no file is given
    ds.check_seq_len(args.seq_len)
    cfg = ModelConfig(task.name, args.hidden, args.layers, **task.model_kwargs(ds), cell=args.cell, gate=args.gate,
                      dtype=args.dtype, parallel=args.threads > 1, seed=args.seed)
    train_data, val_data, test_data = task.study_parts(ds, args.seq_len)
    meta = task.saved_meta(ds, args.seq_len)
    model = Model(cfg)
    tcfg = T.TrainConfig(iterations=args.iterations, seq_len=args.seq_len, batch=args.batch, lr=args.lr,
                         clip=args.clip, seed=args.seed, threads=args.threads if args.threads > 1 else None,
                         eval_every=args.eval_every, patience=args.patience)
    bar = progress_factory(args.no_progress)(total=args.iterations, desc="train", unit="step")

    def tick(row):
        bar.update(1)
        bar.set_postfix_str(f"loss {row['loss']:.3f}")

    def validated(step, metrics):  # stdout, one line each: the numbers a user may tune on
        from tqdm import tqdm  # its write() keeps a terminal bar intact; otherwise a plain print

        tqdm.write(f"validation after {step:,} steps: " + _metrics_text(metrics), file=sys.stdout)

    try:
        result = T.train(model, train_data, tcfg, on_iteration=tick, validation=val_data, on_validation=validated)
    except T.NonFiniteLoss as e:
        raise UsageError(str(e)) from None
    finally:
        bar.close()
    # the test part is scored once, here, at the checkpoint validation chose
    metrics = T.evaluate(model, test_data, seq_len=args.seq_len)
    refs = task.test_baselines(ds, args.seq_len)
    meta["metrics"] = {k: float(v) for k, v in metrics.items()}
    best_val = dict(result.val_history)[result.best_iteration]
    meta["train"] = {"iterations": result.iterations, "batch": args.batch, "lr": args.lr, "clip": args.clip,
                     "chosen_step": result.best_iteration, "validation": {k: float(v) for k, v in best_val.items()},
                     "stopped_early": result.stopped_early, "eval_every": args.eval_every, "patience": args.patience}
    path = T.save(model, save_path, meta)
    step = result.step_seconds
    print(f"{cfg.task} L{cfg.layers} H{cfg.hidden} {cfg.cell}/{cfg.gate} {cfg.dtype} threads {args.threads}: "
          f"compile {result.compile_seconds:.1f} s, {result.iterations} steps"
          f"{' (stopped early: validation loss stopped improving)' if result.stopped_early else ''}, median step "
          f"{np.median(step) * 1e3:.3f} ms (forward {np.median(result.t_forward) * 1e3:.3f}, backward "
          f"{np.median(result.t_backward) * 1e3:.3f}, optimizer {np.median(result.t_optimizer) * 1e3:.3f})")
    print(_data_line(meta["data_source"], task))
    print(f"chosen checkpoint: step {result.best_iteration:,} (lowest validation loss); validation: "
          + _metrics_text(best_val))
    print("test (held-out, scored once at the chosen checkpoint): " + _metrics_text(metrics))
    print(_baseline_text(task, refs, metrics))
    print(f"saved: {path}")
    return 0


def _refuse_others_data(task, args, command: str, prefix: str = "") -> None:
    """Data files of another task than ``task``: its DATA_MISUSE error for ``command``."""
    for other in tasks.TASKS.values():
        if other is not task and other.data_given(args):
            raise UsageError(prefix + other.DATA_MISUSE[command])


def _baseline_text(task, refs: dict, metrics: dict) -> str:
    return f"baselines on the same test data: {task.baselines_text(refs)}; this model: {task.flag(metrics, refs)}"


def _metrics_text(metrics: dict) -> str:
    """Counts as whole numbers with thousands separators, the rest to 4 significant digits."""
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:.4g}" for k, v in metrics.items())


def _data_line(records: dict, task) -> str:
    """Names the data a command used: each part's source and content hash (data.data_record)."""
    held = task.HELD_OUT
    return "data: " + "; ".join(f"{part} {D.describe_record(r)}{held.get(part, '')}" for part, r in records.items())


def _check_save_path(text: str) -> Path:
    path = Path(text)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists():
        raise UsageError(f"{path} exists; a saved model is never overwritten, choose a new --save path")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: {parent} is not writable")
    return path


def _load(path: str):
    """A saved model (train.load rejects broken files and non-finite weights)."""
    return _train_module().load(path)


def _seq_len(path: str, meta: dict) -> int:
    seq_len = meta.get("seq_len")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise UsageError(f"{path}: seq_len in its metadata is {tasks.short(seq_len)}, not a positive whole number; "
                         "was it saved by lstm_numba train?")
    return seq_len


def main_generate(argv: list[str]) -> int:
    import numpy as np

    T = _train_module()

    p = ArgumentParser(prog=f"{PROG} generate", formatter_class=_DefaultsFormatter,
                       description="Sample text from a language model saved by 'lstm_numba train --task lm'.")
    p.add_argument("model")
    p.add_argument("--prime", default="The ", help="text to start from (default 'The ')")
    p.add_argument("--length", type=int, default=300, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    args = p.parse_args(argv)
    _positive(args.length, "length")
    _positive(args.temperature, "temperature", float)
    model = _load(args.model)
    if not model.task.GENERATES:
        names = " or ".join(repr(t.name) for t in tasks.TASKS.values() if t.GENERATES)
        raise UsageError(f"{args.model} is a {model.config.task!r} model; this needs a {names} model")
    vocab = model.task.vocabulary(args.model, model)
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted({c for c in args.prime if c not in index})
    if not args.prime or missing:
        raise UsageError("--prime must be non-empty text in the model's vocabulary"
                         + (f"; not in it: {''.join(missing)!r}" if missing else ""))
    ids = T.generate(model, np.array([index[c] for c in args.prime], dtype=np.int64), args.length,
                     temperature=args.temperature, seed=args.seed)
    print(args.prime + "".join(vocab[i] for i in ids))
    return 0


def main_predict(argv: list[str]) -> int:
    T = _train_module()

    p = ArgumentParser(prog=f"{PROG} predict", formatter_class=_DefaultsFormatter,
                       description="Held-out metrics of a saved model, by default on the data it was trained on "
                       "(its path and content hash are in the model; a changed or missing file stops): lm on the "
                       "held-out last 10% of the text, classify on the test series, normalized with the model's "
                       "training statistics.")
    p.add_argument("model", help="a .npz written by lstm_numba train")
    _data_args(p, "predict")
    args = p.parse_args(argv)
    model = _load(args.model)
    meta = model.meta
    seq_len = _seq_len(args.model, meta)
    task = model.task
    _refuse_others_data(task, args, "predict", f"{args.model} is {task.A_MODEL}; ")
    data, records, fitted = task.scored_data(args.model, model, args, seq_len)
    metrics = T.evaluate(model, data, seq_len=seq_len)
    # the baselines of the scored test data, fit on its own training part (None: not at hand)
    refs = None if fitted is None else task.test_baselines(fitted, seq_len)
    if not math.isfinite(metrics["loss"]):  # finite weights can still overflow in the forward pass
        raise UsageError(f"{args.model}: held-out loss is {metrics['loss']} on that data; its weights overflow "
                         f"{model.config.dtype}, not a usable model")
    print(f"{args.model}: " + _metrics_text(metrics))
    print(_data_line(records, task))
    print(_baseline_text(task, refs, metrics) if refs else
          "baselines: not computed (the training file the model records is not at hand with its recorded content)")
    return 0


# --------------------------------------------------------------------------------------------
# vs-torch: the Numba LSTM against torch.nn.LSTM over a grid of shapes (lstm_numba.versus)


def _versus_parser() -> argparse.ArgumentParser:
    d = versus.Settings()
    p = ArgumentParser(prog=f"{PROG} vs-torch", formatter_class=_DefaultsFormatter,
                       description=versus.__doc__.split("\n\n")[0].replace("``", "") + " " +
                       "Training step (forward, backward, Adam) and inference, paired and interleaved at equal "
                       "thread counts and weights; each pass over the grid runs in its own process; the summary "
                       "gives the median of the passes and their range. Needs the peers extra (torch).")
    def ints(what):
        return lambda text: positive_ints(text, what)

    p.add_argument("--hidden", type=ints("hidden"), default=d.hidden, help="hidden sizes, comma-separated (default 64,128,256,512)")
    p.add_argument("--batch", type=ints("batch"), default=d.batch, help="batch sizes, comma-separated (default 1,4,16,64)")
    p.add_argument("--layers", type=ints("layers"), default=d.layers, help="layer counts, comma-separated (default 1,2)")
    p.add_argument("--threads", type=ints("threads"), default=d.threads, help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="sequence length T")
    p.add_argument("--passes", type=int, default=d.passes, help="passes over the grid, each in a fresh process")
    p.add_argument("--rounds", type=int, default=d.rounds, help="interleaved timing rounds per pair and pass")
    p.add_argument("--sample-time", type=float, default=d.sample_time, help="seconds per candidate per round "
                   "(at least one call)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: a new one under results/runs); an unfinished "
                   "one resumes")
    p.add_argument("--resume-anyway", action="store_true", help="resume a folder measured by other code")
    return p


def main_versus(argv: list[str]) -> int:
    args = _versus_parser().parse_args(argv)
    s = versus.Settings(hidden=args.hidden, batch=args.batch, layers=args.layers, threads=args.threads,
                        seq_len=args.seq_len, passes=args.passes, rounds=args.rounds, sample_time=args.sample_time)
    run_dir, session = versus.run(s, args.out, argv, args.resume_anyway)
    print(versus.report(run_dir))
    print(f"\n{session['wall_seconds']:.0f} s; results: {run_dir}/{runs.RESULTS}, {versus.SUMMARY} and {runs.METADATA}")
    return 0


# name -> (summary for --help, main); sweep is the default
COMMANDS = {
    "sweep": ("the sweep (the default: 'lstm_numba [options]' = 'lstm_numba sweep [options]')", main_sweep),
    "report": ("print the summary of an earlier run folder (sweep, accuracy, vs-torch)", main_report),
    "accuracy": ("the accuracy study: trained to the validation optimum, >= 10 paired seeds, paired tests",
                 main_accuracy),
    "vs-torch": ("Numba LSTM against torch.nn.LSTM, training step and inference (needs torch)", main_versus),
    "train": ("train one model and save it (--save M.npz)", main_train),
    "generate": ("sample text from a saved language model", main_generate),
    "predict": ("held-out metrics of a saved model on the data it was trained on", main_predict),
}


def main(argv: list[str] | None = None) -> int:
    return build_parser().run_subcommands(COMMANDS, "sweep", argv)
