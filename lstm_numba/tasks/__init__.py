"""LSTM tasks: what differs between a character language model and a sequence classifier.

One module per task, each defining one ``Task`` subclass instance ``TASK``; ``TASKS`` maps the
task's name to it (``get(name)`` with a one-line UsageError for unknown names). Adding a task =
one module here plus its line in ``_MODULES``.

A task module is also a kernel template (``lstm_numba.templating``): its marked functions (the
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
Not yet behind the interface: the command line's per-task data options and loading (``cli``:
``--data`` / ``--occupancy-*``, the data of the train and evaluate commands and their metadata)
still branch on the task name. ``reference.py`` does on purpose: the tests' NumPy reference stays
independent of the code under test. ``tests/test_lstm_task_extension.py`` checks both.
"""
from __future__ import annotations

import importlib

import numpy as np

from mathbench import UsageError


class Task:
    """Base of the task objects (see module doc); subclasses fill in every method."""

    name = ""
    template = None  # the task's module (its kernel template)
    QUALITY = "loss"  # the summary's headline metric
    TRIVIAL = STRONG = ""  # the trivial baselines' names ("not trained" / "weak" below them)
    SCORES: tuple = ()  # held-out metrics besides the loss
    PERPLEXITY = False  # report exp(loss)
    HEAD_LOOP: tuple = ()
    PREDICTS = GENERATES = False  # train.predict / train.generate accept the task's models

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def c_writable(a, dtype) -> np.ndarray:
    """C-contiguous, writeable array of dtype (read-only arrays would be a new Numba type)."""
    out = np.ascontiguousarray(a, dtype=dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


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
