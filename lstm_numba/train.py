"""Training, evaluation, prediction, sampling, save/load and thread control for ``network.Model``.

Public API (stable; the sweep and CLI call these)
------------------------------------------------
Data: the language model takes a 1-D array of int token ids (< vocab_size); classification takes
``(X, y)`` with X (N, T, n_features) float and y (N,) in {0, 1} (batch-major, as stored).

``TrainConfig(iterations=100, seq_len=25, batch=1, lr=2e-3, clip=5.0, beta1=0.9, beta2=0.999,
eps=1e-8, seed=0, threads=None, blas_threads=1, eval_every=0, patience=0)``
    ``seq_len``: TBPTT chunk length (LM only; a classification sample is one whole sequence).
    ``seed``: data order (classification minibatches); weights come from ``ModelConfig.seed``, so
    two activations with equal seeds see the same initial weights and the same data.
    ``threads``: Numba threads for a parallel model (None: all of ``NUMBA_NUM_THREADS``); a
    serial model never touches Numba's pool. ``blas_threads``: BLAS threads during training
    (default 1; the parallel variant requires 1).
    ``eval_every``: with ``validation`` data, evaluate on it every that many steps and at the end
    (0: never). ``patience``: stop after that many evaluations in a row without a lower
    validation loss (0: never stop early).
``train(model, data, cfg, on_iteration=None, validation=None, on_validation=None) -> TrainResult``
    Compiles first (``TrainResult.compile_seconds``, never inside timings), then per iteration
    times forward, backward and optimizer separately (one njit call each, ``perf_counter``).
    LM: B parallel streams of the token array, consecutive chunks of ``seq_len`` with the hidden
    state carried across chunks (detached), wrapping to the start (fresh state) at the end.
    ``on_iteration(row)`` gets a dict (iteration, loss, grad_norm, t_forward, t_backward,
    t_optimizer) after each iteration; returning True stops training early.
    A NaN/inf loss or gradient norm raises ``NonFiniteLoss`` (``.result`` holds the finished
    iterations; the parameters are those after the last finished iteration).
    ``validation`` (same form as ``data``; the end of the training data, never the test part):
    evaluated every ``eval_every`` steps outside the timings; ``on_validation(step, metrics)``
    gets each result. At the end the parameters are restored to the checkpoint with the lowest
    validation loss (``TrainResult.best_iteration`` steps; ``val_history``).
``TrainResult``: arrays ``losses``, ``grad_norms``, ``t_forward``, ``t_backward``,
    ``t_optimizer`` (seconds, one per iteration), ``iterations``, ``compile_seconds``,
    ``wall_seconds``; ``.step_seconds`` = fwd + bwd + opt per iteration.
``evaluate(model, data, seq_len=100, batch=16) -> dict``
    LM: ``loss`` (mean cross-entropy per predicted token, nats), ``perplexity``, ``tokens``.
    Classify: ``loss`` (mean BCE), ``accuracy``, ``precision``, ``recall``, ``f1`` (positive
    class 1, threshold 0.5), ``n``.
``predict(model, X, batch=256) -> np.ndarray`` (N,) probabilities of class 1 (classify only).
``predict_proba_batch(model, X_tb) -> np.ndarray`` one time-major batch (T, B, F), no copies
    of the data: the call to time for latency (B = 1) and throughput.
``generate(model, prime, length, temperature=1.0, seed=0) -> np.ndarray`` sampled token ids
    (LM only) after feeding the ``prime`` ids.
``save(model, path, meta=None)`` one ``.npz``: the tensors under their ``Params.tensors()``
    names plus ``config.json`` (a JSON string: format, ModelConfig, meta). ``load(path) -> Model``
    (``model.meta`` restored). Bad files raise ``UsageError``.
``thread_limits(numba_threads=None, blas_threads=1)`` context manager setting (and restoring)
    Numba's thread count and every loaded BLAS's (threadpoolctl).
``NonFiniteLoss`` (RuntimeError): ``.iteration``, ``.what``, ``.value``, ``.result``.
"""
from __future__ import annotations

import json
import math
import os
import time
import tokenize
import zipfile
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numba
import numpy as np

from mathbench import UsageError

from .network import Model, ModelConfig, Params
from .optim import Adam
from .tasks.classify import classification_metrics  # noqa: F401  (public here since before the tasks)

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLoss", "train", "evaluate", "predict",
           "predict_proba_batch", "generate", "save", "load", "thread_limits"]

FORMAT = "lstm_numba/1"


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN/inf loss or gradient norm. ``result`` holds finished iterations."""

    def __init__(self, message: str, iteration: int, what: str, value: float, result: "TrainResult"):
        super().__init__(message)
        self.iteration, self.what, self.value, self.result = iteration, what, value, result


def _check_number(name, v, lo=None, positive=False, integer=False, allow_none=False):
    if v is None and allow_none:
        return
    if integer:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (1 if positive else 0):
            raise UsageError(f"{name} must be a {'positive' if positive else 'non-negative'} integer, got {v!r}")
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
        raise UsageError(f"{name} must be a finite number, got {v!r}")
    if positive and v <= 0:
        raise UsageError(f"{name} must be positive, got {v!r}")
    if lo is not None and v < lo:
        raise UsageError(f"{name} must be >= {lo}, got {v!r}")


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 100
    seq_len: int = 25
    batch: int = 1
    lr: float = 2e-3
    clip: float = 5.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    threads: Optional[int] = None
    blas_threads: int = 1
    eval_every: int = 0
    patience: int = 0

    def __post_init__(self):
        _check_number("iterations", self.iterations, integer=True)
        _check_number("seq_len", self.seq_len, integer=True, positive=True)
        _check_number("batch", self.batch, integer=True, positive=True)
        _check_number("lr", self.lr, positive=True)
        _check_number("clip", self.clip, lo=0)
        _check_number("eps", self.eps, positive=True)
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            _check_number(name, v)
            if not 0 <= v < 1:
                raise UsageError(f"{name} must be in [0, 1), got {v!r}")
        _check_number("seed", self.seed, integer=True)
        _check_number("threads", self.threads, integer=True, positive=True, allow_none=True)
        _check_number("blas_threads", self.blas_threads, integer=True, positive=True)
        _check_number("eval_every", self.eval_every, integer=True)
        _check_number("patience", self.patience, integer=True)


@dataclass
class TrainResult:
    losses: np.ndarray
    grad_norms: np.ndarray
    t_forward: np.ndarray
    t_backward: np.ndarray
    t_optimizer: np.ndarray
    compile_seconds: float = 0.0
    wall_seconds: float = 0.0
    stopped_early: bool = False
    best_iteration: Optional[int] = None  # steps at the restored checkpoint (None: no validation)
    val_history: list = None  # [(steps, metrics)] of every validation


    @property
    def iterations(self) -> int:
        return int(self.losses.size)

    @property
    def step_seconds(self) -> np.ndarray:
        return self.t_forward + self.t_backward + self.t_optimizer


# ---------------------------------------------------------------------------------------------
# threads


@contextmanager
def thread_limits(numba_threads: Optional[int] = None, blas_threads: Optional[int] = 1):
    """Set Numba's thread count (None: leave it, and never start Numba's pool) and every loaded
    BLAS library's (None: leave it) for the duration of the block; restores both after."""
    old = None
    if numba_threads is not None:
        top = numba.config.NUMBA_NUM_THREADS
        if isinstance(numba_threads, bool) or not isinstance(numba_threads, (int, np.integer)) \
                or not 1 <= numba_threads <= top:
            raise UsageError(f"threads must be an integer in 1..{top} (NUMBA_NUM_THREADS), got {numba_threads!r}")
        old = numba.get_num_threads()
        numba.set_num_threads(int(numba_threads))
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits

        ctl = threadpool_limits(limits=int(blas_threads), user_api="blas")
    else:
        ctl = nullcontext()
    try:
        with ctl:
            yield
    finally:
        if old is not None:
            numba.set_num_threads(old)


def _run_threads(model: Model, threads: Optional[int], blas_threads: int = 1):
    if model.config.parallel:
        if blas_threads != 1:
            raise UsageError("the parallel variant calls BLAS from its worker threads: blas_threads must be 1")
        return thread_limits(threads or numba.config.NUMBA_NUM_THREADS, 1)
    return thread_limits(None, blas_threads)


# ---------------------------------------------------------------------------------------------
# data


def _data(model: Model, data):
    """``data`` checked and converted by the model's task (``Task.train_data``)."""
    return model.task.train_data(model, data)


# ---------------------------------------------------------------------------------------------
# training


class _Checkpoints:
    """Validation (the caller says when), the best parameters so far, and the patience count."""

    def __init__(self, model: Model, validation, patience: int, seq_len: int, on_validation):
        self.model, self.validation, self.patience = model, validation, patience
        self.seq_len, self.on_validation = seq_len, on_validation
        self.best_loss, self.best_step, self.best = math.inf, 0, model.params.flat.copy()
        self.bad, self.history = 0, []

    def check(self, step: int) -> bool:
        """Evaluate after ``step`` steps; True when patience has run out."""
        metrics = _evaluate_data(self.model, self.validation, self.seq_len, 16)
        self.history.append((step, metrics))
        if self.on_validation is not None:
            self.on_validation(step, metrics)
        if metrics["loss"] < self.best_loss:  # NaN never counts as better
            self.best_loss, self.best_step, self.bad = metrics["loss"], step, 0
            self.best[:] = self.model.params.flat
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def restore(self) -> None:
        self.model.params.flat[:] = self.best


def train(model: Model, data, cfg: TrainConfig = TrainConfig(),
          on_iteration: Optional[Callable[[dict], Optional[bool]]] = None, validation=None,
          on_validation: Optional[Callable[[int, dict], None]] = None) -> TrainResult:
    """Train ``model`` in place (see module doc)."""
    if not isinstance(model, Model):
        raise UsageError("train needs a lstm_numba Model")
    if not isinstance(cfg, TrainConfig):
        raise UsageError("train needs a TrainConfig")
    B = cfg.batch
    T, feed = model.task.train_feed(model, _data(model, data), cfg)
    opt = Adam(model, lr=cfg.lr, clip=cfg.clip, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.eps)
    n_it = cfg.iterations
    losses = np.full(n_it, np.nan)
    norms = np.full(n_it, np.nan)
    tf, tb, to = np.zeros(n_it), np.zeros(n_it), np.zeros(n_it)
    ckpt = None
    if validation is not None and cfg.eval_every > 0:
        ckpt = _Checkpoints(model, _data(model, validation), cfg.patience, cfg.seq_len, on_validation)

    def result(done: int, wall: float, early=False, final=True) -> TrainResult:
        best, hist = None, None
        if ckpt is not None and final:  # a divergence keeps the last finished parameters (NonFiniteLoss)
            if not ckpt.history or ckpt.history[-1][0] != done:
                ckpt.check(done)  # the last state is a candidate too
            ckpt.restore()
            best, hist = ckpt.best_step, ckpt.history
        return TrainResult(losses[:done].copy(), norms[:done].copy(), tf[:done].copy(), tb[:done].copy(),
                           to[:done].copy(), compile_s, wall, early, best, hist)

    with _run_threads(model, cfg.threads, cfg.blas_threads):
        compile_s = model.compile()
        model.prepare(T, B)
        clock = time.perf_counter
        t_start = clock()
        done = 0
        batch = next(feed)
        for it in range(n_it):
            x, tgt, state = batch
            t0 = clock()
            loss = model.forward(x, tgt, state, validate=False)
            t1 = clock()
            if not math.isfinite(loss):
                raise NonFiniteLoss(_diverged(model, cfg, it, "loss", loss, done), it, "loss", loss,
                                    result(done, clock() - t_start, final=False))
            model.backward()
            t2 = clock()
            norm = opt.step()
            t3 = clock()
            if not math.isfinite(norm):
                raise NonFiniteLoss(_diverged(model, cfg, it, "gradient norm", norm, done), it,
                                    "gradient norm", norm, result(done, clock() - t_start, final=False))
            losses[it], norms[it] = loss, norm
            tf[it], tb[it], to[it] = t1 - t0, t2 - t1, t3 - t2
            done = it + 1
            batch = next(feed)  # now: a carried state is this step's, before a validation replaces it
            if on_iteration is not None:
                stop = on_iteration(dict(iteration=it, loss=loss, grad_norm=norm, t_forward=tf[it],
                                         t_backward=tb[it], t_optimizer=to[it]))
                if stop is True:
                    return result(done, clock() - t_start, early=True)
            if ckpt is not None and done % cfg.eval_every == 0 and done < n_it and ckpt.check(done):
                return result(done, clock() - t_start, early=True)
        return result(done, clock() - t_start)


def _diverged(model, cfg, it, what, value, done) -> str:
    c = model.config
    return (f"training diverged: {what} is {value} at iteration {it} ({c.task}, hidden {c.hidden}, "
            f"layers {c.layers}, cell {c.cell}, gate {c.gate}, {c.dtype}, lr {cfg.lr}); "
            f"stopped, {done} finished iterations kept")


# ---------------------------------------------------------------------------------------------
# evaluation and inference


def evaluate(model: Model, data, seq_len: int = 100, batch: int = 16) -> dict:
    """Held-out metrics (see module doc). Runs with BLAS limited to 1 thread."""
    _check_number("seq_len", seq_len, integer=True, positive=True)
    _check_number("batch", batch, integer=True, positive=True)
    with _run_threads(model, None):
        return _evaluate_data(model, _data(model, data), seq_len, batch)


def _evaluate_data(model, data, seq_len, batch) -> dict:
    """``evaluate`` on data already checked and converted (``_data``), at the caller's thread
    settings."""
    return model.task.evaluate(model, data, seq_len, batch)


def predict_proba_batch(model: Model, X_tb: np.ndarray) -> np.ndarray:
    """Probabilities for one time-major batch X_tb (T, B, n_features) of the model dtype (no
    conversion if it already is C-contiguous and writeable), by the forward-only route: the call
    to time for latency."""
    return model.predict(X_tb)


def predict(model: Model, X, batch: int = 256) -> np.ndarray:
    """(N,) probabilities of class 1 for X (N, T, n_features) (classification only)."""
    if not model.task.PREDICTS:
        raise UsageError("predict is for classification models; use generate for a language model")
    _check_number("batch", batch, integer=True, positive=True)
    with _run_threads(model, None):
        return model.task.predict(model, X, batch)


def generate(model: Model, prime, length: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Sample ``length`` token ids after feeding ``prime`` (a non-empty sequence of ids)."""
    if not model.task.GENERATES:
        raise UsageError("generate needs a language model (task 'lm')")
    _check_number("length", length, integer=True)
    _check_number("temperature", temperature, positive=True)
    ids = _data(model, np.asarray(list(prime), dtype=np.int64) if not isinstance(prime, np.ndarray) else prime)
    if ids.size == 0:
        raise UsageError("generate needs at least one prime token")
    rng = np.random.default_rng(seed)
    out = np.empty(length, dtype=np.int64)
    V = model.config.vocab_size
    with _run_threads(model, None):
        p_all = model.predict(ids.reshape(-1, 1), None, validate=False)
        step = np.zeros((1, 1), np.int64)
        for k in range(length):
            p = p_all[-1, 0].astype(np.float64)
            if temperature != 1.0:
                logp = np.log(np.maximum(p, 1e-300)) / temperature
                p = np.exp(logp - logp.max())
            p /= p.sum()
            tok = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), V - 1))
            out[k] = tok
            if k + 1 < length:
                state = model.final_state()
                step[0, 0] = tok
                p_all = model.predict(step, state, validate=False)
    return out


# ---------------------------------------------------------------------------------------------
# save / load


def save(model: Model, path, meta: Optional[dict] = None) -> Path:
    """Write ``path`` (.npz added if missing) atomically; returns the path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    info = {"format": FORMAT, "config": model.config.to_dict(),
            "meta": model.meta if meta is None else meta}
    try:
        text = json.dumps(info)
    except TypeError as e:
        raise UsageError(f"model meta must be JSON-serialisable: {e}") from None
    arrays = {name: np.asarray(v) for name, v in model.params.tensors().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **{"config.json": np.array(text)}, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path) -> Model:
    """The model saved at ``path``. Anything but an intact model file written by ``save`` (a
    truncated, bit-flipped, empty or foreign file; a bad config; weights of the wrong shape or with
    NaN/inf, which would only surface later as 'loss nan') is a one-line UsageError."""
    path = Path(path)
    if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    if not path.exists():
        raise UsageError(f"no such model file: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder, not a saved lstm_numba model")
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is empty (0 bytes), not a saved lstm_numba model")
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["config.json"]))
            tensors = {k: z[k] for k in z.files if k != "config.json"}
    except PermissionError:
        raise UsageError(f"cannot read {path}: permission denied") from None
    # A damaged file fails wherever the damage is read: in the zip directory or a member's CRC
    # check (BadZipFile), in decompression (zlib.error), in an .npy header or the JSON (ValueError,
    # including UnicodeDecodeError), at an early end of data (EOFError, OSError), or in flags of a
    # zip entry that now claim encryption or an unknown compression (RuntimeError, which includes
    # NotImplementedError).
    # A flipped bit inside an .npy header reaches numpy's literal parser: SyntaxError, TokenError.
    except (OSError, EOFError, ValueError, KeyError, RuntimeError, SyntaxError, tokenize.TokenError,
            zipfile.BadZipFile, zlib.error) as e:
        detail = str(e).splitlines()[0] if str(e) else "no detail"
        raise UsageError(f"{path} is not an intact lstm_numba model file ({type(e).__name__}: {detail}); "
                         "truncated or damaged?") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise UsageError(f"{path}: unknown model format {info.get('format') if isinstance(info, dict) else info!r}")
    try:
        config = ModelConfig.from_dict(info["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # KeyError: also an unknown activation name
        raise UsageError(f"{path}: bad model config ({e})") from None
    params = Params(config)
    try:
        params.load_tensors(tensors)
    except (TypeError, ValueError) as e:  # e.g. a tensor of strings
        raise UsageError(f"{path}: unusable parameter tensor ({e})") from None
    for name, t in params.tensors().items():
        if not np.isfinite(t).all():
            raise UsageError(f"{path}: parameter {name} has NaN or infinite values; the model cannot be used")
    model = Model(config, params)
    meta = info.get("meta")
    model.meta = meta if isinstance(meta, dict) else {}
    return model
