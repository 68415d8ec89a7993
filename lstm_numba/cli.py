"""``python -m lstm_numba``: the LSTM activation sweep (default subcommand ``sweep``) and
``report`` for an earlier run folder."""
from __future__ import annotations

import argparse
import math
import sys
import time

from mathbench import registry, runs, threads
from mathbench.cliargs import choices, positive_ints, progress_factory, split_list
from mathbench.errors import ArgumentParser, UsageError, run_cli

from . import sweep

PROG = "lstm_numba"

DESCRIPTION = """\
Train and time a multi-layer LSTM in Numba with tanh/sigmoid against other activations in the
cell slot (CELL) and the gate slot (GATE), per task x layers x hidden x dtype x threads, paired:
every variant of one shape starts from the same initial weights, sees the same batches, and the
variants take turns chunk by chunk. Per row: JIT compile time (separate), seconds per training
step split into forward / backward / optimizer, prediction latency (one sequence at batch 1) and
throughput (--eval-batch sequences), held-out loss (+ perplexity for lm, accuracy and F1 for
classify) after --iterations steps, medians with bootstrap 95% intervals over --repeats seeds.
speedup = time(tanh/sigmoid) / time(variant) (> 1: faster), paired; loss and accuracy
differences (variant - baseline) pair by seed. With torch installed (the 'peers' extra) a
torch.nn.LSTM of the same shape, same weights and same batches runs in the same run at the same
thread count.

Output: results/lstm-TIMESTAMP/ (or --out DIR) with results.csv, one row per configuration x
variant written as each configuration finishes, and metadata.json. Running again with the same
--out resumes: finished configurations are skipped, an interrupted one is redone.

tasks:
  lm        character language model: embedded English-like corpus, or --data FILE (UTF-8 text;
            the last 10% is held out)
  classify  occupancy from 5 sensor series, label at the window's end: embedded synthetic office,
            or --occupancy-train/--occupancy-test (UCI Occupancy Detection CSV files)

subcommands:
  lstm_numba [sweep] [options]   the sweep (this help)
  lstm_numba report RUN          print the summary table of an earlier run folder
  lstm_numba train --save M.npz  train one model and save it (see train -h)
  lstm_numba generate M.npz      sample text from a saved language model
  lstm_numba predict M.npz       held-out metrics of a saved model (occupancy: --occupancy-test FILE)
"""

EPILOG = """\
examples:
  python -m lstm_numba                           default: lm, layers 1,2,3 x hidden 16..256,
                                                 tanh vs isru in the cell slot, 1 thread and all cores
  python -m lstm_numba --quick                   smoke sweep (well under a minute with warm caches)
  python -m lstm_numba --tasks classify --occupancy-train datatraining.txt --occupancy-test datatest.txt
  python -m lstm_numba --pairs isru,softsign/sigmoid,tanh/isru_sigmoid --dtypes float32,float64
  python -m lstm_numba --hidden 512 --layers 1 --threads 1 --out results/h512
  python -m lstm_numba --out results/lstm-run    (again: resumes that run)
"""


def _threads(text: str) -> list[int]:
    n = threads.max_threads()
    toks = [str(n) if t.lower() == "all" else t for t in split_list(text, "threads")]
    vals = positive_ints(",".join(toks), "threads")
    for t in vals:
        if t > n:
            raise UsageError(f"--threads {t}: out of range 1..{n} (this machine's cores)")
    return sorted(vals)


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
    g.add_argument("--tasks", help="comma-separated: lm, classify (default lm)")
    g.add_argument("--layers", help="stacked layers, comma-separated (default 1,2,3)")
    g.add_argument("--hidden", help="hidden sizes, comma-separated (default 16,32,64,128,256)")
    g.add_argument("--pairs", help="activation pairs to compare with tanh/sigmoid, comma-separated CELL/GATE "
                   "(CELL alone means CELL/sigmoid); names from the registry, optionally NAME:IMPL, e.g. "
                   "tanh:numba_rational; each needs a backprop form (see --list). The baseline "
                   "tanh/sigmoid is always included (default isru/sigmoid)")
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
    g = p.add_argument_group("data (default: embedded, generated offline)")
    g.add_argument("--data", metavar="FILE", help="UTF-8 text file for the lm task")
    g.add_argument("--occupancy-train", metavar="FILE", help="UCI Occupancy Detection training file "
                   "(e.g. datatraining.txt) for the classify task")
    g.add_argument("--occupancy-test", metavar="FILE", help="UCI Occupancy Detection test file (e.g. datatest.txt)")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="run folder (default results/lstm-TIMESTAMP); an existing "
                   "lstm run folder is resumed")
    g.add_argument("--quick", action="store_true", help="smoke sweep: lm and classify, 1 layer, hidden 16,32, "
                   "float32, 1 thread, 12 steps, 2 repeats")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    g.add_argument("--list", action="store_true", help="list the activations usable in the cell and gate slots")
    return p


def make_settings(args) -> sweep.Settings:
    s = sweep.quick_settings() if args.quick else sweep.Settings()
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
    if args.threads:
        s.threads = _threads(args.threads)
    for name in ("iterations", "repeats", "chunks", "seq_len", "batch", "eval_batch"):
        v = _positive(getattr(args, name), name.replace("_", "-"))
        if v is not None:
            setattr(s, name, v)
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
    if args.peers:
        s.peers = args.peers
    s.data = args.data
    s.occupancy_train, s.occupancy_test = args.occupancy_train, args.occupancy_test
    if (args.occupancy_train or args.occupancy_test) and "classify" not in s.tasks:
        if args.tasks:
            raise UsageError("--occupancy-train/--occupancy-test are for the classify task; add it to --tasks")
        s.tasks = ["classify"]
    if args.data and "lm" not in s.tasks:
        raise UsageError("--data is a text file for the lm task; add lm to --tasks")
    sweep.validate(s)
    return s


def list_activations() -> str:
    from mathbench.report import table

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
    run_dir, ids = sweep.run(s, args.out, argv, progress_factory(args.no_progress))
    df = runs.read_rows(run_dir)
    print(sweep.summary(df, ids))
    if not sweep.use_peer(s):
        why = "--peers off" if s.peers == "off" else "torch is not installed; pip install -e '.[peers]'"
        print(f"\n(no torch peer rows: {why})")
    print(f"\n{len(ids)} configurations in {time.perf_counter() - t0:.1f} s; "
          f"results: {run_dir}/{runs.RESULTS} and {runs.METADATA}")
    return 0


def main_report(argv: list[str]) -> int:
    p = ArgumentParser(prog=f"{PROG} report", description="Print the summary table of an LSTM run folder.")
    p.add_argument("run")
    args = p.parse_args(argv)
    df, meta = runs.load_run(args.run)
    if meta.get("kind") != sweep.KIND:
        raise UsageError(f"{args.run} is a {meta.get('kind')!r} run, not an {sweep.KIND} run")
    if "config_id" not in df.columns:
        raise UsageError(f"{args.run}/{runs.RESULTS} has no config_id column; not an LSTM sweep")
    print(sweep.summary(df))
    return 0


# --------------------------------------------------------------------------------------------
# train / generate / predict: one model at a time (lstm_numba.train does the work)


def _train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=f"{PROG} train", description="Train one LSTM on the embedded data (or --data / "
                       "--occupancy-* files), print held-out metrics and save it (.npz with the vocabulary or "
                       "the feature normalization, so generate/predict can use it).")
    p.add_argument("--task", choices=sweep.TASKS, default="lm")
    p.add_argument("--data", metavar="FILE", help="UTF-8 text for --task lm (default: embedded corpus)")
    p.add_argument("--occupancy-train", metavar="FILE", help="UCI Occupancy training file for --task classify")
    p.add_argument("--occupancy-test", metavar="FILE", help="UCI Occupancy test file for --task classify")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--cell", default="tanh", help="cell activation (registry name; see lstm_numba --list)")
    p.add_argument("--gate", default="sigmoid", help="gate activation")
    p.add_argument("--dtype", choices=sweep.DTYPES, default="float32")
    p.add_argument("--threads", type=int, default=1, help="1 = serial kernels, N > 1 = parallel on N threads")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", required=True, help="where to write the model (.npz)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _train_module():
    """``lstm_numba.train`` the module: the package's ``__init__`` re-exports the function
    ``train`` under the same name, so ``from . import train`` would give the function."""
    import importlib

    return importlib.import_module(f"{__package__}.train")


def _sensor_from(args):
    from . import data as D

    if (args.occupancy_train is None) != (args.occupancy_test is None):
        raise UsageError("--occupancy-train and --occupancy-test go together")
    return D.occupancy_data(args.occupancy_train, args.occupancy_test) if args.occupancy_train else D.default_sensor()


def main_train(argv: list[str]) -> int:
    import numpy as np

    from . import data as D
    T = _train_module()
    from .model import Model, ModelConfig

    args = _train_parser().parse_args(argv)
    for name in ("layers", "hidden", "iterations", "batch", "seq_len"):
        _positive(getattr(args, name), name.replace("_", "-"))
    _positive(args.lr, "lr", float)
    _threads(str(args.threads))
    sweep.check_activation(args.cell, "cell")
    sweep.check_activation(args.gate, "gate")
    save_path = _check_save_path(args.save)
    if args.task == "lm":
        if args.occupancy_train or args.occupancy_test:
            raise UsageError("--occupancy-* files are for --task classify")
        ds = D.load_text(args.data) if args.data else D.default_text()
        ds.check_seq_len(args.seq_len)
        cfg = ModelConfig("lm", args.hidden, args.layers, vocab_size=ds.n_vocab, cell=args.cell, gate=args.gate,
                          dtype=args.dtype, parallel=args.threads > 1, seed=args.seed)
        train_data, test_data = ds.train, ds.test
        meta = {"task": "lm", "vocab": ds.vocab, "data": ds.source, "fingerprint": ds.fingerprint,
                "seq_len": args.seq_len}
    else:
        if args.data:
            raise UsageError("--data is a text file for --task lm")
        ds = _sensor_from(args)
        ds.check_seq_len(args.seq_len)
        cfg = ModelConfig("classify", args.hidden, args.layers, n_features=D.SensorData.n_features, cell=args.cell,
                          gate=args.gate, dtype=args.dtype, parallel=args.threads > 1, seed=args.seed)
        train_data = ds.windows("train", args.seq_len)
        test_data = ds.windows("test", args.seq_len)
        meta = {"task": "classify", "data": ds.source, "fingerprint": ds.fingerprint, "seq_len": args.seq_len,
                "feature_mean": ds.mean.tolist(), "feature_std": ds.std.tolist()}
    model = Model(cfg)
    tcfg = T.TrainConfig(iterations=args.iterations, seq_len=args.seq_len, batch=args.batch, lr=args.lr,
                         clip=args.clip, seed=args.seed, threads=args.threads if args.threads > 1 else None)
    bar = progress_factory(args.no_progress)(total=args.iterations, desc="train", unit="step")

    def tick(row):
        bar.update(1)
        bar.set_postfix_str(f"loss {row['loss']:.3f}")

    try:
        result = T.train(model, train_data, tcfg, on_iteration=tick)
    except T.NonFiniteLoss as e:
        raise UsageError(str(e)) from None
    finally:
        bar.close()
    metrics = T.evaluate(model, test_data, seq_len=args.seq_len)
    meta["metrics"] = {k: float(v) for k, v in metrics.items()}
    meta["train"] = {"iterations": result.iterations, "batch": args.batch, "lr": args.lr, "clip": args.clip}
    path = T.save(model, save_path, meta)
    step = result.step_seconds
    print(f"{cfg.task} L{cfg.layers} H{cfg.hidden} {cfg.cell}/{cfg.gate} {cfg.dtype} threads {args.threads}: "
          f"compile {result.compile_seconds:.1f} s, {result.iterations} steps, median step "
          f"{np.median(step) * 1e3:.3f} ms (forward {np.median(result.t_forward) * 1e3:.3f}, backward "
          f"{np.median(result.t_backward) * 1e3:.3f}, optimizer {np.median(result.t_optimizer) * 1e3:.3f})")
    print("held-out: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    print(f"saved: {path}")
    return 0


def _check_save_path(text: str):
    from pathlib import Path

    path = Path(text)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists():
        raise UsageError(f"{path} exists; a saved model is never overwritten, choose a new --save path")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: {parent} is not writable")
    return path


def _load(path: str, task: str | None = None):
    T = _train_module()

    model = T.load(path)
    if task and model.config.task != task:
        raise UsageError(f"{path} is a {model.config.task!r} model; this needs a {task!r} model")
    return model


def main_generate(argv: list[str]) -> int:
    import numpy as np

    T = _train_module()

    p = ArgumentParser(prog=f"{PROG} generate", description="Sample text from a language model saved by "
                       "'lstm_numba train --task lm'.")
    p.add_argument("model")
    p.add_argument("--prime", default="The ", help="text to start from (default 'The ')")
    p.add_argument("--length", type=int, default=300, help="characters to generate (default 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _positive(args.length, "length")
    _positive(args.temperature, "temperature", float)
    model = _load(args.model, "lm")
    vocab = model.meta.get("vocab")
    if not isinstance(vocab, str) or len(vocab) != model.config.vocab_size:
        raise UsageError(f"{args.model} has no vocabulary in its metadata; was it saved by lstm_numba train?")
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
    import numpy as np

    from . import data as D
    T = _train_module()

    p = ArgumentParser(prog=f"{PROG} predict", description="Held-out metrics of a saved model: classify on the "
                       "embedded test series or --occupancy-test FILE (normalized with the model's training "
                       "statistics); lm on the embedded held-out text or the held-out tail of --data FILE.")
    p.add_argument("model")
    p.add_argument("--occupancy-test", metavar="FILE")
    p.add_argument("--data", metavar="FILE")
    args = p.parse_args(argv)
    model = _load(args.model)
    meta = model.meta
    seq_len = int(meta.get("seq_len") or 32)
    if model.config.task == "lm":
        if args.occupancy_test:
            raise UsageError(f"{args.model} is a language model; --occupancy-test is for classify models")
        vocab = meta.get("vocab")
        if not isinstance(vocab, str):
            raise UsageError(f"{args.model} has no vocabulary in its metadata; was it saved by lstm_numba train?")
        text = D.load_text(args.data) if args.data else D.default_text()
        in_vocab = D.TextData(f"{text.source} (held-out part) with the vocabulary of {args.model}", vocab,
                              text.train[:0], text.test[:0])
        held = in_vocab.encode(text.decode(text.test))
        if held.size < 2:
            raise UsageError(f"{text.source}: held-out part too short")
        metrics = T.evaluate(model, held, seq_len=seq_len)
    else:
        if args.data:
            raise UsageError(f"{args.model} is a classify model; --data is for language models")
        mean, std = meta.get("feature_mean"), meta.get("feature_std")
        if mean is None or std is None:
            raise UsageError(f"{args.model} has no feature normalization in its metadata")
        if args.occupancy_test:
            series = D.load_occupancy(args.occupancy_test)
            raw_x, y, source = series.x, series.y, series.source
        else:
            emb = D.default_sensor()
            raw_x, y, source = emb.test_x * emb.std + emb.mean, emb.test_y, "embedded test series"
        if y.size < seq_len:
            raise UsageError(f"{source} has {y.size} rows, fewer than the model's sequence length {seq_len}")
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        sd = D.SensorData(source, raw_x[:0], y[:0], (raw_x - mean) / std, y, mean, std)
        metrics = T.evaluate(model, sd.windows("test", seq_len))
    print(f"{args.model}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    sub = {"report": main_report, "train": main_train, "generate": main_generate, "predict": main_predict}
    if argv and argv[0] in sub:
        return run_cli(sub[argv[0]], argv[1:], prog=f"{PROG} {argv[0]}")
    if argv and argv[0] == "sweep":
        argv = argv[1:]
    return run_cli(main_sweep, argv, prog=PROG)
