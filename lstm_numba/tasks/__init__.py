"""LSTM tasks: what differs between a character language model and a sequence classifier.

One module per task, each defining one ``Task`` subclass instance ``TASK``; ``TASKS`` maps the
task's name to it (``get(name)`` with a one-line UsageError for unknown names). Adding a task =
one module here plus its line in ``_MODULES``.

A task module is also a kernel template (``mathbench.templating``): its marked functions (the
input projection, the head and loss, and the three entry points ``forward``/``backward``/
``infer`` that run a whole batch in one Numba call) are generated per activation pair next to the
cell kernels of ``lstm_numba.model`` (``variants.task_kernels``).

The interface (what ``network.Model``, ``sweep``, ``train``, ``study``, ``baselines``,
``findings``, ``cli`` and the peers call):

model side
    ``input_size(cfg)``, ``output_size(cfg)``, ``check_config(cfg)``; ``check_batch(cfg, x, y)``
    -> validated (x, y); ``batch_dtypes(cfg)``; ``example_batch(cfg, T, B, rng)``;
    ``alloc(cfg, T, B, train)`` -> the task's own buffers; ``forward/backward/infer(k, m, ...)``
    call the generated module ``k``; ``probabilities(cfg, ws)``; ``io_flops(cfg, T, B)``;
    ``HEAD_LOOP`` (kernel name, 1-D arrays, scalars) for ``network.loop_facts``.
sweep
    ``load_data(settings)``, ``data_info(ds)``, ``model_kwargs(ds)``, ``train_batch``,
    ``eval_batches``, ``reference_scores``, ``labels(probabilities)``, ``scores(ys, preds)``,
    ``ref_columns(refs)``, and the summary's wording (``HEADERS``, ``TRIVIAL``, ``STRONG``,
    ``REF_KEY``, ``refs_text``, ``quality_cell``); ``SCORES``/``PERPLEXITY`` say which quality
    columns a row fills.
train (``lstm_numba.train``)
    ``train_data(model, data)`` -> the data checked and converted (one-line UsageError otherwise);
    ``train_feed(model, data, cfg)`` -> (T, an endless iterator of (x, targets, state)),
    advanced right after each finished step, so it may carry ``model.final_state()`` (LM: TBPTT);
    ``evaluate(model, data, seq_len, batch)`` -> held-out metrics with a ``loss``;
    capabilities ``PREDICTS`` (``predict(model, X, batch)`` -> (N,) probabilities) and
    ``GENERATES`` (``train.generate`` samples from ``probabilities`` of the last step).
baselines and findings
    ``flag(metrics, refs)`` -> ``baselines.NOT_TRAINED``/``WEAK``/``TRAINED`` or "" (what
    ``baselines.flag(name, ...)`` answers); ``QUALITY`` (its column), ``QUALITY_TEXT``,
    ``REF_MEDIANS`` ((name, column) of the trivial and the strong baseline), ``STRONG_TEXT``.
accuracy study and commands (``lstm_numba.study``, ``lstm_numba.cli``)
    ``study_parts(ds, seq_len)`` -> (train, validation, test) data for ``train``;
    ``test_baselines(ds, seq_len)`` -> the trivial baselines on that test data (``flag``'s refs);
    ``baselines_text(refs)``; ``EVAL_METRICS`` (``evaluate``'s keys); ``REF_UNIT``,
    ``REF_FORMAT``; ``HELD_OUT`` (data record -> a note on the held-out part).
peers
    ``INPUT`` ("tokens" | "features") and ``OUTPUT`` ("softmax_every_step" | "sigmoid_last_step"):
    kinds each peer module maps to its own layers (``lstm_numba.peers``).
command line (``lstm_numba.cli``: its data options, ``train``, ``predict``, ``generate``)
    ``SUMMARY`` (``train --task``'s help); ``DATA_OPTIONS`` ("--flag" -> {command: its help}, for
    the commands "sweep", "accuracy", "train", "predict"; the value lands in ``args.flag_name``
    and, for sweep and accuracy, in the settings' field of that name, which ``load_data`` reads)
    added by ``add_data_args(group, command)``; ``data_given(args)``; ``DATA_MISUSE`` (the error
    when its files are given but it does not run: "tasks" for --tasks, "train", and "predict"
    after "MODEL is ``A_MODEL``; "). ``train``: ``load_data(args)`` (the embedded data set when no
    file is given), ``ds.check_seq_len``, ``model_kwargs(ds)``, ``study_parts`` and
    ``saved_meta(ds, seq_len)`` (the saved model's metadata before its metrics). ``predict``:
    ``scored_data(path, model, args, seq_len)`` -> (``evaluate``'s data, the data records it
    names, the data set whose ``test_baselines`` apply or None); ``recorded_data`` reads the
    data a model records. ``generate`` (``GENERATES``): ``vocabulary(path, model)``. Helpers:
    ``dest(flag)`` (its ``args`` attribute), ``short(value)`` (a file's value in an error).
No module outside ``tasks/`` branches on a task name, except ``reference.py``, on purpose: the
tests' NumPy reference stays independent of the code under test. ``tests/test_lstm_task_extension.py``
checks both.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from mathbench import UsageError
from lstm_numba import data as D


class Task:
    """Base of the task objects (see module doc); subclasses fill in every method."""

    name = ""
    template = None  # the task's module (its kernel template)
    QUALITY = "loss"  # the summary's headline metric
    TRIVIAL = STRONG = ""  # the trivial baselines' names ("not trained" / "weak" below them)
    SCORES: tuple = ()  # held-out metrics besides the loss
    PERPLEXITY = False  # report exp(loss)
    HEAD_LOOP: tuple = ()

    @property
    def REF_KEY(self) -> str:  # noqa: N802 (read like the other summary constants)
        """The strong baseline's column: the summary prints the baselines when a row has it."""
        return self.REF_MEDIANS[-1][1]
    PREDICTS = GENERATES = False  # train.predict / train.generate accept the task's models
    SUMMARY = ""  # train --task's help
    DATA_OPTIONS: dict = {}  # "--flag" -> {command: help}; a command missing there has no such option
    DATA_MISUSE: dict = {}  # "tasks" / "train" / "predict" -> the error when its files are given for another task
    A_MODEL = ""  # "a language model": names a saved model of the task in errors

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def add_data_args(self, group, command: str) -> None:
        """The task's data file options that ``command`` has, added to argparse ``group``."""
        for flag, helps in self.DATA_OPTIONS.items():
            if command in helps:
                group.add_argument(flag, metavar="FILE", help=helps[command])

    def data_given(self, args) -> bool:
        """Whether the command line names any of the task's data files."""
        return any(getattr(args, dest(flag), None) for flag in self.DATA_OPTIONS)


def c_writable(a, dtype) -> np.ndarray:
    """C-contiguous, writeable array of dtype (read-only arrays would be a new Numba type)."""
    out = np.ascontiguousarray(a, dtype=dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


def dest(flag: str) -> str:
    """The attribute argparse stores option ``flag`` in ("--occupancy-test" -> "occupancy_test")."""
    return flag[2:].replace("-", "_")


def recorded_data(model_path: str, meta: dict, part: str, flag: str, embedded, load):
    """The data part ``part`` a model was trained on, from the record ``train`` saved in its metadata
    (data.data_record): the embedded set, or the file if it still has the recorded content. A
    missing record, a vanished file or changed content stops with what to pass instead; scoring
    other data than the model's silently is what this prevents."""
    records = meta.get("data_source")
    rec = records.get(part) if isinstance(records, dict) else None
    if not (isinstance(rec, dict) and isinstance(rec.get("source"), str) and isinstance(rec.get("sha256"), str)):
        raise UsageError(f"{model_path} does not record the data it was trained on (saved by an older version?); "
                         f"pass {flag} FILE")
    source = rec["source"]
    if source != D.EMBEDDED and not Path(source).is_file():
        raise UsageError(f"{model_path} was trained on {source}, which no longer exists; pass {flag} FILE")
    ds = embedded() if source == D.EMBEDDED else load(source)
    if ds.sha256 != rec["sha256"]:
        raise UsageError(f"{source} has changed since {model_path} was trained on it (sha256 now "
                         f"{ds.sha256[:12]}, recorded {rec['sha256'][:12]}); pass {flag} FILE to score it anyway")
    return ds


def short(value) -> str:
    """repr of a value read from a file, cut to one readable piece of a line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_MODULES = {"lm": "lstm_numba.tasks.lm", "classify": "lstm_numba.tasks.classify"}
NAMES = tuple(_MODULES)
TASKS: dict = {}


def get(name) -> Task:
    """The task called ``name`` (UsageError listing the valid ones otherwise)."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise UsageError(f"task must be one of {', '.join(NAMES)}, got {name!r}") from None


for _name, _mod in _MODULES.items():
    TASKS[_name] = importlib.import_module(_mod).TASK
