"""The LSTM model object: configuration, parameters, buffers, plans, and the calls into the kernels.

Public API (stable; the sweep and CLI call these)
------------------------------------------------
``ModelConfig(task, hidden, layers=1, vocab_size=0, n_features=0, cell="tanh", gate="sigmoid",
dtype="float32", parallel=False, seed=0, forget_bias=1.0)``
    ``task`` is ``"lm"`` (character language model: integer tokens in, softmax cross-entropy over
    ``vocab_size`` classes at every timestep) or ``"classify"`` (``n_features`` floats per timestep
    in, the last timestep's top hidden state -> one logit -> sigmoid binary cross-entropy).
    ``cell``/``gate`` are registry specs (``"tanh"``, ``"isru"``, ``"tanh:numba_rational"``) for the
    two activation slots. Bad values raise ``mathbench.UsageError`` (unknown names:
    ``mathbench.UnknownName``) when the config is built.
``init_params(config) -> Params``
    Glorot/Xavier-uniform weights, zero biases except ``forget_bias`` on the forget gate of
    ``bias_ih``. Depends only on ``seed``, the shapes and the dtype -- never on the activations, so
    two activations of one shape start from the same weights (float32 is float64 rounded).
``Params``: every tensor is a view into one flat buffer ``params.flat`` (Adam and clipping are one
    loop). ``params.tensors()`` -> ``{name: view}`` with torch.nn.LSTM names ``weight_ih_l{k}``
    (4H x I), ``weight_hh_l{k}`` (4H x H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H), gate order
    i, f, g, o, plus ``head_weight`` (O x H) and ``head_bias`` (O), O = vocab_size or 1.
    Both biases are kept (as in torch) so a torch model copies over directly.
``Model(config, params=None)``; attributes ``config``, ``params``, ``grads`` (a ``Params``),
``meta`` (a dict saved with the model)
    ``.forward(inputs, targets=None, state=None, validate=True) -> float | None`` mean loss
        (None without targets). Time-major: LM ``inputs``/``targets`` are int (T, B);
        classify ``inputs`` is (T, B, n_features) float, ``targets`` (B,) in {0, 1}.
        ``state=(h0, c0)``, each (L, B, H); None = zeros. One njit call. ``validate=False`` is
        the timed fast path: inputs must already be C-contiguous, writeable int64 (LM) or
        model-dtype (classify) arrays with ids in range, state None or model-dtype (L, B, H)
        arrays (a wrong dtype/layout raises UsageError rather than compiling inside a timing).
    ``.backward() -> Params`` gradients of the last forward's mean loss (one njit call).
    ``.loss_and_grads(inputs, targets, state=None) -> (loss, grads)``
    ``.outputs()`` probabilities of the last forward: LM (T, B, V) softmax, classify (B,)
        sigmoid (views, overwritten by the next call of the same shape).
    ``.predict(inputs, state=None, validate=True)`` probabilities by the forward-only route (no
        stored activations: one layer's buffers reused for every layer); ``outputs``,
        ``hidden`` and ``final_state`` then refer to it.
    ``.plan(T, B, train=True) -> Plan`` how batches of that shape run (``Plan``: tiled or BLAS
        per-timestep products, serial or parallel by hidden units or batch rows), measured once
        per machine by ``tune_plan`` and cached (``lstm-plans.json`` in the kernel cache);
        ``.use_plan(plan)`` fixes one for every shape (None: measure).
    ``.hidden()`` top-layer h of the last forward, (T, B, H).
    ``.final_state() -> (h, c)`` copies, each (L, B, H), to carry across TBPTT chunks.
    ``.prepare(T, B)`` allocates the buffers for that batch shape now (not inside a timing).
    ``.compile() -> float`` seconds to compile (or load from the disk cache) every kernel this
        config uses (forward, backward, Adam); call it before timing anything.
    ``.kernels`` the generated Numba module of the task's entry points (``variants.task_kernels``);
        ``.nchunks`` work chunks per parallel region.
``compile_model(config) -> float`` the same as ``Model(config).compile()``.
``loop_facts(config) -> {loop: {"vectorized", "simd_bits", "libm_calls"}}`` for the gate forward,

The math is in ``lstm_numba.model`` (cell and stack kernels), the activation-independent kernels in
``lstm_numba.ops``, the task heads in ``lstm_numba.tasks``; ``lstm_numba.variants`` generates their
disk-cached Numba modules per (task, cell, gate, parallel). What differs between tasks is asked of
the task object (``config.task_def``), never branched on here.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS now, so threadpoolctl sees it)

from mathbench import UsageError, codegen

from . import tasks, variants
from .variants import cell_fastmath, resolve_activation  # noqa: F401  (part of this module's API)

__all__ = ["ModelConfig", "Params", "Model", "Plan", "init_params", "compile_model", "loop_facts", "tune_plan",
           "LOOPS", "TASKS", "DTYPES"]

TASKS = tasks.NAMES
DTYPES = ("float32", "float64")

# ---------------------------------------------------------------------------------------------
# configuration and parameters


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")



@dataclass(frozen=True)
class ModelConfig:
    task: str
    hidden: int
    layers: int = 1
    vocab_size: int = 0  # task "lm"
    n_features: int = 0  # task "classify"
    cell: str = "tanh"
    gate: str = "sigmoid"
    dtype: str = "float32"
    parallel: bool = False
    seed: int = 0
    forget_bias: float = 1.0

    def __post_init__(self):
        task = tasks.get(self.task)
        _positive_int("hidden", self.hidden)
        _positive_int("layers", self.layers)
        task.check_config(self, _positive_int)
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.parallel, (bool, np.bool_)):
            raise UsageError(f"parallel must be true or false, got {self.parallel!r}")
        if not math.isfinite(float(self.forget_bias)):
            raise UsageError(f"forget_bias must be finite, got {self.forget_bias!r}")
        resolve_activation(self.cell, "cell")
        resolve_activation(self.gate, "gate")

    @property
    def task_def(self) -> tasks.Task:
        """The task object (``lstm_numba.tasks``): everything that differs per task."""
        return tasks.get(self.task)

    @property
    def n_in(self) -> int:
        return self.task_def.input_size(self)

    @property
    def n_out(self) -> int:
        return self.task_def.output_size(self)

    @property
    def np_dtype(self):
        return np.dtype(self.dtype)

    def params_key(self) -> tuple:
        """What the initial weights depend on (activations and threading excluded)."""
        return (self.task, self.n_in, self.hidden, self.layers, self.dtype, self.seed, self.forget_bias)

    def to_dict(self) -> dict:
        """JSON-ready (plain Python types)."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise UsageError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


_ALIGN = 16  # elements: every tensor starts on a 64-byte boundary for float32


def _layout(config: ModelConfig) -> dict:
    """name -> (offset, shape) of each stacked array inside the flat buffer."""
    L, H, I, O = config.layers, config.hidden, config.n_in, config.n_out
    shapes = {
        "W_ih0": (4 * H, I), "W_ihR": (L - 1, 4 * H, H), "W_hh": (L, 4 * H, H),
        "b_ih": (L, 4 * H), "b_hh": (L, 4 * H), "W_out": (O, H), "b_out": (O,),
    }
    out, off = {}, 0
    for name, shape in shapes.items():
        out[name] = (off, shape)
        off += -(-int(np.prod(shape)) // _ALIGN) * _ALIGN
    out["_size"] = off
    return out


class Params:
    """Parameters (or gradients) of one model: views into one flat buffer.

    Stacked arrays used by the kernels: ``W_ih0`` (4H, I), ``W_ihR`` (L-1, 4H, H), ``W_hh``
    (L, 4H, H), ``b_ih``/``b_hh`` (L, 4H), ``W_out`` (O, H), ``b_out`` (O,).
    """

    STACKED = ("W_ih0", "W_ihR", "W_hh", "b_ih", "b_hh", "W_out", "b_out")

    def __init__(self, config: ModelConfig, flat: np.ndarray | None = None):
        self.config = config
        lay = _layout(config)
        if flat is None:
            flat = np.zeros(lay["_size"], dtype=config.np_dtype)
        if flat.shape != (lay["_size"],) or flat.dtype != config.np_dtype or not flat.flags.c_contiguous:
            raise ValueError("flat buffer does not match the config")
        self.flat = flat
        for name in self.STACKED:
            off, shape = lay[name]
            setattr(self, name, flat[off:off + int(np.prod(shape))].reshape(shape))

    def tensors(self) -> dict:
        """torch.nn.LSTM-named views, in canonical order."""
        out = {}
        for k in range(self.config.layers):
            out[f"weight_ih_l{k}"] = self.W_ih0 if k == 0 else self.W_ihR[k - 1]
            out[f"weight_hh_l{k}"] = self.W_hh[k]
            out[f"bias_ih_l{k}"] = self.b_ih[k]
            out[f"bias_hh_l{k}"] = self.b_hh[k]
        out["head_weight"] = self.W_out
        out["head_bias"] = self.b_out
        return out

    def copy(self) -> "Params":
        return Params(self.config, self.flat.copy())

    def astype(self, config: ModelConfig) -> "Params":
        """The same values in another config of the same shapes (e.g. another dtype)."""
        p = Params(config)
        for (n, a), b in zip(self.tensors().items(), p.tensors().values()):
            b[...] = a
        return p

    def load_tensors(self, tensors: dict) -> None:
        """Copy ``{name: array}`` (as from ``tensors()`` or a torch state_dict) into this buffer."""
        mine = self.tensors()
        missing = set(mine) - set(tensors)
        if missing:
            raise UsageError(f"missing parameter tensors: {', '.join(sorted(missing))}")
        for name, view in mine.items():
            a = np.asarray(tensors[name])
            if a.shape != view.shape:
                raise UsageError(f"parameter {name}: shape {a.shape}, expected {view.shape}")
            view[...] = a


def init_params(config: ModelConfig) -> Params:
    """Glorot/Xavier-uniform init from ``config.seed`` and the shapes only (see module doc).

    Each tensor draws from its own stream ``default_rng([seed, k])`` (k = position in
    ``tensors()``) in float64, then rounds to the model dtype."""
    p = Params(config)
    H = config.hidden
    for k, (name, view) in enumerate(p.tensors().items()):
        rng = np.random.default_rng([int(config.seed), k])
        if view.ndim == 2:
            fan_out, fan_in = view.shape
            a = math.sqrt(6.0 / (fan_in + fan_out))
            view[...] = rng.uniform(-a, a, size=view.shape)
        else:
            view[...] = 0
            if name.startswith("bias_ih"):
                view[H:2 * H] = config.forget_bias
    return p


# ---------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class Plan:
    """How the recurrence of one batch shape runs. ``fwd``/``bwd``: the per-timestep recurrent
    products by the tiled kernels (``rec_rows``, ``rec_axpy``) or by BLAS; ``parallel``: the
    prange kernels (else serial, even in a parallel model), chunked by hidden units (tiled products
    only) or by batch rows (``split``). ``tune_plan`` measures which is fastest for a shape."""
    parallel: bool = False
    fwd: str = "tiled"
    bwd: str = "tiled"
    split: str = "units"

    def __post_init__(self):
        if self.fwd not in ("tiled", "blas") or self.bwd not in ("tiled", "blas"):
            raise UsageError("Plan fwd/bwd must be 'tiled' or 'blas'")
        if self.split not in ("units", "batch"):
            raise UsageError("Plan split must be 'units' or 'batch'")
        if self.parallel and self.split == "units" and (self.fwd, self.bwd) != ("tiled", "tiled"):
            raise UsageError("a parallel plan split by hidden units uses the tiled products")

    @cached_property  # built once: the kernels read it on every forward and backward
    def codes(self) -> np.ndarray:
        """What the kernels read: (forward by BLAS, backward by BLAS, chunks of batch rows)."""
        return np.array([self.fwd == "blas", self.bwd == "blas", self.split == "batch"], np.int64)

    @property
    def label(self) -> str:
        how = f"parallel/{self.split}" if self.parallel else "serial"
        return f"{how} fwd={self.fwd} bwd={self.bwd}"


class _Buffers:
    """What both routes need for one (T, B) shape: the per-timestep recurrent product, the zero
    state and the task's buffers (``Task.alloc``: outputs ``P``, placeholder targets, its own
    scratch); and its plan."""

    def __init__(self, cfg: ModelConfig, T: int, B: int, train: bool):
        L, H, dt = cfg.layers, cfg.hidden, cfg.np_dtype
        self.T, self.B = T, B
        self.R = np.zeros((B, 4 * H), dt)
        self.zeros_state = np.zeros((L, B, H), dt)
        self.__dict__.update(cfg.task_def.alloc(cfg, T, B, train))
        self.plan: Plan | None = None


class _Workspace(_Buffers):
    """Preallocated buffers of training for one (T, B) shape: nothing is allocated per timestep."""

    def __init__(self, cfg: ModelConfig, T: int, B: int, max_chunks: int):
        super().__init__(cfg, T, B, True)
        L, H, O, dt = cfg.layers, cfg.hidden, cfg.n_out, cfg.np_dtype
        self.Z = np.zeros((L, T, B, 4 * H), dt)
        self.Hs = np.zeros((L, T + 1, B, H), dt)
        self.Cs = np.zeros((L, T + 1, B, H), dt)
        self.TC = np.zeros((L, T, B, H), dt)
        self.dG = np.zeros((T, B, 4 * H), dt)
        self.dH = np.zeros((T, B, H), dt)
        self.tmp = np.zeros((B, H), dt)
        self.dc = np.zeros((B, H), dt)
        self._big = max(4 * H * max(cfg.n_in, H), O * H)  # largest weight-gradient matrix
        self.scratch = np.zeros(1, dt)
        self.ensure_scratch(cfg, max_chunks)
        self.inputs = self.targets = None

    def ensure_scratch(self, cfg: ModelConfig, nchunks: int) -> None:
        """Parallel weight gradients need one partial matrix per chunk."""
        if cfg.parallel and self.scratch.size < nchunks * self._big:
            self.scratch = np.zeros(nchunks * self._big, cfg.np_dtype)

    def final_state(self):
        return self.Hs[:, -1].copy(), self.Cs[:, -1].copy()

    def hidden(self):
        return self.Hs[-1, 1:]


class _InferSpace(_Buffers):
    """Buffers of the forward-only route for one (T, B) shape (``infer_stack``): one layer's
    pre-activations and two layers' hidden sequences, whatever the depth."""

    def __init__(self, cfg: ModelConfig, T: int, B: int):
        super().__init__(cfg, T, B, False)
        L, H, dt = cfg.layers, cfg.hidden, cfg.np_dtype
        self.Z = np.zeros((T, B, 4 * H), dt)
        self.Ha = np.zeros((T + 1, B, H), dt)
        self.Hb = np.zeros((T + 1, B, H), dt)
        self.C2 = np.zeros((2, B, H), dt)
        self.tc = np.zeros((B, H), dt)
        self.hT = np.zeros((L, B, H), dt)
        self.cT = np.zeros((L, B, H), dt)
        self.top = 0

    def final_state(self):
        return self.hT.copy(), self.cT.copy()

    def hidden(self):
        return (self.Ha if self.top == 0 else self.Hb)[1:]


class Model:
    """An LSTM with its parameters, gradient buffer and compiled kernels (see module doc)."""

    def __init__(self, config: ModelConfig, params: Params | None = None):
        if not isinstance(config, ModelConfig):
            raise UsageError("Model needs a ModelConfig")
        self.config = config
        if params is None:
            params = init_params(config)
        elif params.flat.shape != Params(config).flat.shape or params.flat.dtype != config.np_dtype:
            raise UsageError("params do not match the model config")
        self.params = params
        self.grads = Params(config)
        self.meta: dict = {}
        dt = config.np_dtype
        ca, _ = resolve_activation(config.cell, "cell")
        ga, _ = resolve_activation(config.gate, "gate")
        self.cell_param = dt.type(ca.param_default)
        self.gate_param = dt.type(ga.param_default)
        self._ws: dict = {}
        self._last = None
        self._plan: Plan | None = None  # None: measured per batch shape (tune_plan, cached)
        self.task = config.task_def
        self._kernels = None  # a module to run instead of the generated ones (tests: the template)

    # -- plumbing
    @property
    def kernels(self):
        """The generated module of the task's entry points for the config's variant (parallel
        when ``config.parallel``)."""
        return self.kernels_for(bool(self.config.parallel))

    def kernels_for(self, parallel: bool):
        if self._kernels is not None:
            return self._kernels
        return variants.task_kernels(self.config.task, self.config.cell, self.config.gate, bool(parallel))

    @property
    def ops(self):
        """The generated activation-independent kernels (``adam_update``) of the config's variant."""
        return variants.ops(bool(self.config.parallel))

    @property
    def nchunks(self) -> int:
        """Work chunks per parallel region of the config's variant: Numba's current thread count
        (1 when serial)."""
        return numba.get_num_threads() if self.config.parallel else 1

    def use_plan(self, plan: Plan | None) -> None:
        """Run every batch shape with ``plan`` (None: measure one per shape, the default)."""
        if plan is not None and plan.parallel and not self.config.parallel:
            raise UsageError("a parallel plan needs a model built with parallel=True")
        self._plan = plan
        for ws in self._ws.values():
            ws.plan = plan

    def plan(self, T: int, B: int, train: bool = True) -> Plan:
        """The plan batches of shape (T, B) run with (measured now if not yet): for training
        steps, or for the forward-only route (``train=False``)."""
        ws = self._space(T, B, train)
        if ws.plan is None:
            ws.plan = self._plan or planned(self, T, B, train)
        return ws.plan

    def _space(self, T: int, B: int, train: bool):
        key = (T, B, train)
        ws = self._ws.get(key)
        if ws is None:
            if len(self._ws) >= 8:
                self._ws.clear()
            ws = self._ws[key] = _Workspace(self.config, T, B, self.nchunks) if train else _InferSpace(self.config, T, B)
            ws.plan = self._plan
        return ws

    def _workspace(self, T: int, B: int) -> _Workspace:
        ws = self._space(T, B, True)
        ws.ensure_scratch(self.config, self.nchunks)
        return ws

    def _state(self, state, ws: _Buffers):
        if state is None:
            return ws.zeros_state, ws.zeros_state
        h0, c0 = state
        shape = ws.zeros_state.shape
        dt = self.config.np_dtype
        h0 = np.ascontiguousarray(h0, dtype=dt)
        c0 = np.ascontiguousarray(c0, dtype=dt)
        if h0.shape != shape or c0.shape != shape:
            raise UsageError(f"state arrays must have shape {shape}, got {h0.shape} and {c0.shape}")
        return h0, c0

    def _check_inputs(self, inputs, targets):
        return self.task.check_batch(self.config, inputs, targets)

    def _check_types(self, x, y):
        """The cheap part of validation, kept on the fast path: another dtype or layout would
        silently compile a new specialization inside a timed call."""
        xt, yt = self.task.batch_dtypes(self.config)
        if x.dtype != xt or not x.flags.c_contiguous or not x.flags.writeable or (
                y is not None and (y.dtype != yt or not y.flags.c_contiguous or not y.flags.writeable)):
            raise UsageError(f"forward(validate=False) needs C-contiguous writeable {np.dtype(xt).name} inputs "
                             f"and {np.dtype(yt).name} targets")

    # -- the public calls
    def prepare(self, T: int, B: int) -> None:
        """Allocate the buffers for batches of shape (T, B) and settle their plans (training and
        forward-only) now, not inside a timed call."""
        self.plan(T, B, True)
        self.plan(T, B, False)

    def _run_forward(self, x, y, h0, c0, ws: _Workspace, plan: Plan) -> float:
        return self.task.forward(self.kernels_for(plan.parallel), self, x, ws.dummy_targets if y is None else y,
                                 h0, c0, ws, plan.codes, self._chunks(plan))

    def _run_backward(self, ws: _Workspace, plan: Plan, g: Params) -> None:
        nch = self._chunks(plan)
        ws.ensure_scratch(self.config, nch)
        self.task.backward(self.kernels_for(plan.parallel), self, ws, g, plan.codes, nch)

    def _run_infer(self, x, h0, c0, ws: _InferSpace, plan: Plan) -> None:
        ws.top = self.task.infer(self.kernels_for(plan.parallel), self, x, h0, c0, ws, plan.codes,
                                 self._chunks(plan))

    def _chunks(self, plan: Plan) -> int:
        return numba.get_num_threads() if plan.parallel else 1

    def forward(self, inputs, targets=None, state=None, validate: bool = True):
        """Mean loss of one batch (None without targets); keeps what backward() needs.
        ``validate=False`` skips the checks and conversions (the caller guarantees C-contiguous,
        writeable int64 / model-dtype arrays of the right shapes and ranges): the hot path of
        ``train``, which validates its data once."""
        if validate:
            x, y = self._check_inputs(inputs, targets)
        else:
            x, y = inputs, targets
            self._check_types(x, y)
        T, B = x.shape[0], x.shape[1]
        ws = self._workspace(T, B)
        h0, c0 = self._state(state, ws) if validate or state is None else state
        loss = self._run_forward(x, y, h0, c0, ws, self.plan(T, B, True))
        ws.inputs, ws.targets = x, y
        self._last = ws
        return None if y is None else float(loss)

    def backward(self) -> Params:
        """Gradients of the last forward's mean loss (overwrites and returns ``self.grads``)."""
        ws = self._last
        if not isinstance(ws, _Workspace) or ws.targets is None:
            raise UsageError("backward() needs a forward() with targets first")
        self._run_backward(ws, ws.plan, self.grads)
        return self.grads

    def loss_and_grads(self, inputs, targets, state=None):
        loss = self.forward(inputs, targets, state)
        return loss, self.backward()

    def predict(self, inputs, state=None, validate: bool = True) -> np.ndarray:
        """Probabilities of one batch by the forward-only route (nothing kept for a backward
        pass): LM (T, B, V) softmax, classify (B,) sigmoid -- a view, overwritten by the next
        call with the same shape; ``final_state()``/``hidden()`` then refer to this call.
        ``validate`` as in ``forward``."""
        if validate:
            x, _ = self._check_inputs(inputs, None)
        else:
            x = inputs
            self._check_types(x, None)
        T, B = x.shape[0], x.shape[1]
        ws = self._space(T, B, False)
        h0, c0 = self._state(state, ws) if validate or state is None else state
        self._run_infer(x, h0, c0, ws, self.plan(T, B, False))
        self._last = ws
        return self.outputs()

    def outputs(self) -> np.ndarray:
        """Probabilities of the last forward or predict (a view, overwritten by the next call
        with the same shape): LM (T, B, V) softmax; classify (B,) sigmoid of the logit."""
        ws = self._last
        if ws is None:
            raise UsageError("outputs() needs a forward() first")
        return self.task.probabilities(self.config, ws)

    def hidden(self) -> np.ndarray:
        """Top layer hidden states of the last forward or predict, (T, B, H) (a view)."""
        if self._last is None:
            raise UsageError("hidden() needs a forward() first")
        return self._last.hidden()

    def final_state(self):
        """(h, c) after the last timestep of the last forward or predict, copies of shape (L, B, H)."""
        if self._last is None:
            raise UsageError("final_state() needs a forward() first")
        return self._last.final_state()

    def compile(self) -> float:
        """Compile (or load from the disk cache) every kernel of this config; seconds taken.
        Runs the kernels once on a tiny batch with the same argument types as real calls."""
        import time

        t0 = time.perf_counter()
        self.kernels  # generate/import the module (part of the compile cost)
        cfg = self.config
        scratch = Model(cfg, self.params.copy())
        x, y = self.task.example_batch(cfg, 2, 1, None)
        for parallel in sorted({False, bool(cfg.parallel)}):  # every plan's kernels: one module each
            scratch.use_plan(Plan(parallel=parallel))
            scratch.loss_and_grads(x, y)
            scratch.predict(x)
        from .optim import Adam

        Adam(scratch).step()
        return time.perf_counter() - t0


def _tuning_batch(cfg: ModelConfig, T: int, B: int):
    """Random inputs and targets of shape (T, B) for ``tune_plan`` (the products' speed does not
    depend on the values)."""
    return cfg.task_def.example_batch(cfg, T, B, np.random.default_rng(0))


def _fastest(runs: dict, rounds: int) -> object:
    """The key of ``runs`` (key -> callable) with the lowest minimum time over ``rounds``
    interleaved rounds after one warm-up call each (a minimum: the choice needs the achievable
    speed, and interleaving spreads drift over all candidates)."""
    import time

    best = {k: math.inf for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(rounds):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return min(best, key=best.get)


def tune_plan(model: "Model", T: int, B: int, train: bool = True, rounds: int = 3) -> Plan:
    """The fastest ``Plan`` for batches of shape (T, B), measured now with the model's weights on
    random data, at the current thread settings (FFTW's "measure" planning):

    1. serial forward product: tiled or BLAS, by the time of the forward pass (the forward-only
       route for ``train=False``); for training, then the backward product by the backward's time;
    2. a parallel model with more than one Numba thread: that serial plan against the parallel
       plans (chunks of hidden units with tiled products; chunks of batch rows with the serial
       plan's products, when B > 1), by the time of a whole step (forward + backward, or
       forward only). Serial wins below the crossover where a parallel region's start-up costs
       more than the split saves.

    Leaves the model's gradients, outputs and last batch as they were."""
    cfg = model.config
    x, y = _tuning_batch(cfg, T, B)
    x, y = model._check_inputs(x, y)
    last, grads = model._last, Params(cfg)
    if train:
        ws = model._workspace(T, B)
        ws.inputs, ws.targets = x, y
        h0 = c0 = ws.zeros_state

        def step(plan, fwd=True, bwd=True):
            def run():
                if fwd:
                    model._run_forward(x, y, h0, c0, ws, plan)
                if bwd:
                    model._run_backward(ws, plan, grads)
            return run
    else:
        ws = model._space(T, B, False)
        h0 = c0 = ws.zeros_state

        def step(plan, fwd=True, bwd=True):
            return lambda: model._run_infer(x, h0, c0, ws, plan)
    try:
        fwd = _fastest({m: step(Plan(fwd=m), bwd=False) for m in ("tiled", "blas")}, rounds)
        bwd = "tiled"
        if train:
            model._run_forward(x, y, h0, c0, ws, Plan(fwd=fwd))
            bwd = _fastest({m: step(Plan(fwd=fwd, bwd=m), fwd=False) for m in ("tiled", "blas")}, rounds)
        best = Plan(fwd=fwd, bwd=bwd)
        if cfg.parallel and numba.get_num_threads() > 1:
            cands = [best, Plan(parallel=True)]
            if B > 1:
                cands.append(Plan(parallel=True, fwd=fwd, bwd=bwd, split="batch"))
            best = _fastest({pl: step(pl) for pl in cands}, rounds)
    finally:
        model._last = last
        if train:
            ws.inputs = ws.targets = None
    return best


_PLANS: dict = {}  # plan key -> Plan, this process (and, through the file, earlier ones)


def _plans_path() -> Path:
    return codegen.cache_dir() / "lstm-plans.json"


@lru_cache(maxsize=None)
def _source_hash() -> str:
    """Hash of this file (the plan logic). The kernels are in the key by their generated modules'
    names, which hash every template and source they are made of."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _plan_key(model: "Model", T: int, B: int, train: bool) -> str:
    """Everything a measured plan depends on: the machine, the kernels' source, the shape, the
    activations, the thread count."""
    from mathbench import cpu_info as _cpu

    cfg = model.config
    # the generated modules' names hash their text and every source they depend on (scalars, JIT
    # options, fastmath flags); a parallel model may run the serial kernels, so both count
    generated = ",".join(sorted(variants.task_kernels(cfg.task, cfg.cell, cfg.gate, p).__name__
                                for p in {False, bool(cfg.parallel)}))
    return "|".join(map(str, (_cpu()["model"], _source_hash(), generated, numba.__version__, cfg.task, cfg.layers,
                              cfg.hidden, cfg.n_in,
                              cfg.n_out, cfg.dtype, cfg.cell, cfg.gate, bool(cfg.parallel),
                              numba.get_num_threads() if cfg.parallel else 1, T, B, "train" if train else "infer")))


def _load_plans() -> dict:
    """The plan file, or nothing when it is missing or unreadable (a corrupt cache is measured
    over, never an error)."""
    try:
        raw = json.loads(_plans_path().read_text())
        return {k: Plan(**v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    except (OSError, ValueError, TypeError, UsageError):
        return {}


def planned(model: "Model", T: int, B: int, train: bool = True) -> Plan:
    """The plan for this shape: measured once per machine (``tune_plan``) and kept in the cache
    folder beside the compiled kernels, so a model runs the same arithmetic every time it meets
    a shape (results are reproducible run to run) and nothing is measured twice."""
    key = _plan_key(model, T, B, train)
    if key not in _PLANS:
        _PLANS.update(_load_plans())
    if key not in _PLANS:
        _PLANS[key] = tune_plan(model, T, B, train)
        codegen.save_json(_plans_path(), {k: asdict(v) for k, v in {**_load_plans(), key: _PLANS[key]}.items()})
    return _PLANS[key]


def matmul_flops(config: ModelConfig, T: int, B: int) -> dict:
    """Floating-point operations (2 per multiply-add) of the matrix products the kernels run
    for a batch of shape (T, B): ``{"forward": ..., "train": forward + backward}``. The element-wise
    loops, the LM's embedding gather/scatter and the optimizer are not counted: this is the work a
    GEMM library could do, the figure an efficiency against plain sgemm is about."""
    H, L = config.hidden, config.layers
    G = 4 * H
    seq = 2 * T * B * G * H  # one (T*B) x H by H x 4H product: recurrent, or a layer-above input
    fwd = L * seq + (L - 1) * seq  # recurrence per layer; input projections of layers above 0
    bwd = L * (2 * (T - 1) * B * G * H + seq)  # dh_{t-1} = da_t W_hh (t >= 1), dW_hh
    bwd += (L - 1) * 2 * seq  # dW_ih and the gradient for the layer below, layers above 0
    io_fwd, io_bwd = config.task_def.io_flops(config, T, B)  # layer 0's input and the head
    return {"forward": fwd + io_fwd, "train": fwd + io_fwd + bwd + io_bwd}


def compile_model(config: ModelConfig) -> float:
    """Seconds to compile (or load from cache) every kernel ``config`` uses."""
    return Model(config).compile()


# ---------------------------------------------------------------------------------------------
# per-loop vectorization facts

#: The loops whose vectorization a sweep row reports: name -> (kernel in ``lstm_numba.model``, its
#: 1-D array arguments, then scalars of the dtype); "head" is the task's (``Task.HEAD_LOOP``).
LOOPS = {"gate_fwd": ("gate_forward_loop", 6, 1), "cell_fwd": ("cell_forward_loop", 9, 1),
         "backward": ("cell_backward_loop", 12, 2), "head": None}
_FUNC = re.compile(r"^\s*\.type\s+([^,\s]+),@function\s*$", re.M)
_CALL = re.compile(r"^\s*(?:call|jmp)\w*\s+\*?([\w.$]+?)(?:@PLT)?\s*$", re.M)


def function_asm(asm: str, py_name: str) -> str:
    """The assembly of the Numba function ``py_name`` and of every function it calls that is
    defined in the same listing (a scalar LLVM did not inline): ``inspect_asm`` lists the whole
    linked library, i.e. also the CPython/cfunc wrappers and the callees' standalone copies, and
    a wrapper or an unused copy must not decide the loop's facts. Functions are cut at their
    ``.type NAME,@function`` lines; Numba's mangled names carry ``<len><py_name>`` after the
    module, and the wrappers start with ``cpython``/``cfunc``."""
    starts = [(m.start(), m.group(1)) for m in _FUNC.finditer(asm)]
    blocks = {name: asm[pos:(starts[k + 1][0] if k + 1 < len(starts) else len(asm))]
              for k, (pos, name) in enumerate(starts)}
    tag = f"{len(py_name)}{py_name}"
    todo = [n for n in blocks if tag in n and not n.startswith(("_ZN7cpython", "cfunc", "_ZN5cfunc"))]
    seen: set = set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo += [c for c in _CALL.findall(blocks[n]) if c in blocks]
    return "".join(blocks[n] for n in sorted(seen))


def loop_facts(config: ModelConfig) -> dict:
    """``{loop: {"vectorized", "simd_bits", "libm_calls"}}`` for the loops in ``LOOPS`` as
    compiled for ``config`` (its pair, dtype and threading), from their assembly
    (``mathbench.simd_info``). Numba cannot show the assembly of code loaded from its
    disk cache, so each loop is compiled once more uncached with the same options and types,
    and the facts are saved beside the cache (keyed by the generated module's hashed name)."""
    from mathbench import compiled_asm, load_simd_facts as _load_simd_cache, simd_info

    mod = variants.task_kernels(config.task, config.cell, config.gate, bool(config.parallel))
    cells = variants.cell_kernels(config.cell, config.gate, bool(config.parallel))
    path = codegen.cache_dir() / f"simd-{mod.__name__}.json"
    saved = _load_simd_cache(path)
    nt = numba.from_dtype(config.np_dtype)
    arr = numba.types.Array(nt, 1, "C")
    out, changed = {}, False
    for loop, spec in LOOPS.items():
        fname, n_arr, n_sc = spec or config.task_def.HEAD_LOOP
        key = f"{fname}|{config.dtype}"
        if not (isinstance(saved.get(key), dict) and set(saved[key]) == {"vectorized", "simd_bits", "libm_calls"}):
            disp = getattr(mod if spec is None else cells, fname)
            sig = (arr,) * n_arr + (nt,) * n_sc
            saved[key] = simd_info(function_asm(compiled_asm(disp, sig), fname))
            changed = True
        out[loop] = saved[key]
    if changed:
        codegen.save_json(path, saved)
    return out
