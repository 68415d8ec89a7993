"""A multi-layer LSTM in Numba with pluggable activations: the math, forward and backward.

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
    ``.kernels`` the generated Numba module; ``.nchunks`` work chunks per parallel region.
``compile_model(config) -> float`` the same as ``Model(config).compile()``.
``loop_facts(config) -> {loop: {"vectorized", "simd_bits", "libm_calls"}}`` for the gate forward,
    cell forward, backward and head loops (``LOOPS``), read from their compiled assembly.

The parallel variant (``parallel=True``) splits every timestep's hidden units (or batch rows, as
the measured plan says; below the measured crossover a parallel model runs the serial kernels),
the big matrix products and the optimizer into ``numba.get_num_threads()`` chunks inside
``prange``; it calls
BLAS from worker threads, so the caller must limit BLAS to one thread (``train.thread_limits``;
``train.train`` does it). The serial variant never starts Numba's thread pool.

How activations plug in (see ``mathbench.core.codegen``): the code between the ``numba cell``
markers below is plain Python that reads the globals CELL_F, CELL_DY, GATE_F, GATE_DY (the
registry's forward and backprop-form scalars). For a (cell, gate, parallel) choice its source text
is copied into a generated module whose header imports the chosen scalars under those names and
defines ``kernel``/``pkernel`` as ``njit`` (with the fastmath flags of the scalars that Numba
inlines at IR level, ``cell_fastmath``: a ``numba_simd`` scalar takes its caller's flags),
``headkernel``/``dotkernel`` with fixed flags, and PARALLEL as a constant; that module is
disk-cached (``cache=True``) and its name hashes its text and the scalars' source files, so edits recompile.
The activation-independent kernels (``numba helpers`` markers: GEMM wrappers, heads, Adam) go
into one generated module per variant that every pair imports, so they compile once; the heads'
per-element loops use ``mathbench.functions.simd``'s exp (and log1p), so they vectorize. The
backward pass uses the registry's backprop forms ``dfdy`` on stored outputs, so a new activation
needs no edits here. Read outside a generated module, the kernels run as (slow) plain Python with
tanh/sigmoid.

The math (per layer, per timestep; x = layer input, h/c = previous state):
    a = W_ih x + b_ih + W_hh h + b_hh                      (4H, gate order i f g o)
    i = GATE(a_i), f = GATE(a_f), g = CELL(a_g), o = GATE(a_o)
    c' = f c + i g,  h' = o CELL(c')
Backward (dh, dc from above / the future):
    do = dh CELL(c');  dc += dh o CELL'(c');  di = dc g;  dg = dc i;  df = dc c;  dc_prev = dc f
    da = (di GATE'(i), df GATE'(f), dg CELL'(g), do GATE'(o)) with X'(y) = X_DY(y) from outputs
    dW_hh += da^T h, dW_ih += da^T x, db += da, dh_prev = da W_hh, dx = da W_ih
All input projections and weight gradients are batched over the whole sequence (one GEMM per
layer); only h @ W_hh^T (forward) and da @ W_hh (backward) run per timestep.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS now, so threadpoolctl sees it)
from numba import prange

from mathbench import UsageError, c, codegen, exp_core, log1p_unit, registry

# Defaults for reading/running the kernel section as plain Python (the seed's tanh/sigmoid);
# generated modules rebind them.
CELL_F, CELL_DY = (lambda i: (i.forward, i.dfdy))(registry.resolve("tanh")[1])
GATE_F, GATE_DY = (lambda i: (i.forward, i.dfdy))(registry.resolve("sigmoid")[1])

__all__ = ["ModelConfig", "Params", "Model", "Plan", "init_params", "compile_model", "loop_facts", "tune_plan",
           "LOOPS", "TASKS", "DTYPES"]

TASKS = ("lm", "classify")
DTYPES = ("float32", "float64")


PARALLEL = False  # generated modules: the variant, a compile-time constant


def kernel(fn):  # generated modules: njit(**JIT_OPTIONS)
    return fn


def pkernel(fn):  # generated modules: njit(parallel=<variant>, **JIT_OPTIONS)
    return fn


def dotkernel(fn):  # generated modules: njit(fastmath=DOT_FASTMATH, **JIT_OPTIONS)
    return fn


def headkernel(fn):  # generated modules: njit(fastmath=HEAD_FASTMATH, **JIT_OPTIONS)
    return fn


# The heads' loops inline mathbench.functions.simd's exp/log1p at Numba IR level, where they take the
# loop's flags: FMA contraction is what their accuracy bounds were measured with.
HEAD_FASTMATH = frozenset({"contract"})
# The tiled recurrent products sum in registers: reassociation lets each dot product use SIMD
# partial sums (as any BLAS does), contraction makes them FMAs.
DOT_FASTMATH = frozenset({"contract", "nsz", "reassoc"})


# ---------------------------------------------------------------------------------------------
# configuration and parameters


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def resolve_activation(spec: str, slot: str):
    """(Activation, Impl) for a Numba implementation with a backprop form, else UsageError."""
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"{slot} activation must be a registry name, got {spec!r}")
    act, impl = registry.resolve(spec)  # UnknownName for unknown names
    if impl.backend != "numba":
        raise UsageError(f"{slot} activation {spec!r}: the LSTM needs a numba implementation, "
                         f"not {impl.backend}")
    if not act.has_backprop_form or impl.dfdy is None:
        raise UsageError(f"{slot} activation {spec!r} has no backprop form f'(x) = g(f(x)); "
                         "the LSTM backward pass needs one")
    return act, impl


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
        if self.task not in TASKS:
            raise UsageError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        _positive_int("hidden", self.hidden)
        _positive_int("layers", self.layers)
        if self.task == "lm":
            _positive_int("vocab_size", self.vocab_size)
        else:
            _positive_int("n_features", self.n_features)
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
    def n_in(self) -> int:
        return self.vocab_size if self.task == "lm" else self.n_features

    @property
    def n_out(self) -> int:
        return self.vocab_size if self.task == "lm" else 1

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
# >>> numba helpers  (activation-independent; copied into one generated module per variant)
#
# Conventions: arrays are C-contiguous and time-major. PARALLEL is a compile-time constant of
# the generated module: Numba prunes the other branch, so the serial variant contains no chunked
# code at all. ``nchunks`` is the number of work chunks of a parallel region (1 in the serial
# variant, where prange is range). Per layer l:
#   Z[l]  (T, B, 4H)  before the recurrence: input projection + biases; after it: the gate
#                     outputs i, f, g, o (what the backward pass differentiates via *_DY)
#   Hs[l] (T+1, B, H) Hs[l][0] = initial h, Hs[l][t+1] = h_t;  Cs[l] likewise for c
#   TC[l] (T, B, H)   CELL(c_t)
# R (B, 4H) holds the forward's per-timestep h_{t-1} @ W_hh^T, gate pre-activations contiguous
# per batch row like Z; tmp (B, H) the BLAS backward's da_{t+1} @ W_hh before it is added.


@kernel
def chunk(n, nchunks, ch):
    """Bounds [lo, hi) of chunk ``ch`` when splitting ``n`` items into ``nchunks`` parts."""
    return ch * n // nchunks, (ch + 1) * n // nchunks


@pkernel
def mm_nt(A, W, out, nchunks):
    """out = A @ W.T  (A: N x K, W: M x K, out: N x M), rows of A split across chunks."""
    if not PARALLEL:
        np.dot(A, W.T, out)
        return
    N = A.shape[0]
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1], W.T, out[r0:r1])


@pkernel
def mm_nn(A, W, out, nchunks):
    """out = A @ W  (A: N x M, W: M x K, out: N x K), rows of A split across chunks."""
    if not PARALLEL:
        np.dot(A, W, out)
        return
    N = A.shape[0]
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1], W, out[r0:r1])


@pkernel
def mm_tn(A, X, out, scratch, nchunks):
    """out = A.T @ X  (A: N x M, X: N x K, out: M x K): weight gradients summed over the
    N = T*B rows. Parallel: each chunk of rows into its own slice of ``scratch``, then a fixed-
    order sum (deterministic for a given thread count)."""
    if not PARALLEL:
        np.dot(A.T, X, out)
        return
    N = A.shape[0]
    M, K = out.shape
    parts = scratch[:nchunks * M * K].reshape((nchunks, M, K))
    for ch in prange(nchunks):
        r0, r1 = chunk(N, nchunks, ch)
        if r1 > r0:
            np.dot(A[r0:r1].T, X[r0:r1], parts[ch])
        else:
            for i in range(M):
                for k in range(K):
                    parts[ch, i, k] = 0
    for ch in prange(nchunks):
        i0, i1 = chunk(M, nchunks, ch)
        for i in range(i0, i1):
            for k in range(K):
                s = parts[0, i, k]
                for q in range(1, nchunks):
                    s += parts[q, i, k]
                out[i, k] = s


# Elementwise helpers are serial in both variants: they cost O(T*B*4H) against the GEMMs'
# O(T*B*4H*H), and every parallel region costs compile time and a thread wake-up.


@kernel
def add_bias(Z2, b1, b2):
    """Z2[n, :] += b1 + b2 for every row."""
    N, M = Z2.shape
    for n in range(N):
        row = Z2[n]
        for m in range(M):
            row[m] += b1[m] + b2[m]


@kernel
def column_sums(A, out):
    """out[m] = sum_n A[n, m] (bias gradients)."""
    N, M = A.shape
    for m in range(M):
        out[m] = 0
    for n in range(N):
        row = A[n]
        for m in range(M):
            out[m] += row[m]


@kernel
def gather_input(idx, W_ih0, b1, b2, Z0, emb):
    """LM layer 0: Z0[t, b] = W_ih0[:, idx[t, b]] + (b1 + b2) (one-hot input as a column lookup).
    With at least V lookups the columns plus biases are packed first as the rows of ``emb``
    (V, 4H), so every lookup is a contiguous row copy (a column of W_ih0 strides by V); with fewer
    (generating one token at a time) packing would cost more than it saves, and the columns are
    read directly. Both give the same values."""
    T, B, M = Z0.shape
    V = W_ih0.shape[1]
    if T * B < V:
        for t in range(T):
            for b in range(B):
                col = idx[t, b]
                z = Z0[t, b]
                for m in range(M):
                    z[m] = W_ih0[m, col] + (b1[m] + b2[m])
        return
    for m in range(M):
        w = W_ih0[m]
        bias = b1[m] + b2[m]
        for v in range(V):
            emb[v, m] = w[v] + bias
    for t in range(T):
        for b in range(B):
            src = emb[idx[t, b]]
            z = Z0[t, b]
            for m in range(M):
                z[m] = src[m]


@kernel
def scatter_input(idx, dG, gW_ih0, emb):
    """LM layer 0 weight gradient: gW_ih0[:, idx[t, b]] += dG[t, b] (zeroed first). With at least
    V lookups summed as the rows of ``emb`` (V, 4H) (contiguous adds) and transposed once at the
    end, with fewer into the columns directly (as ``gather_input``; the same sums in the same
    order)."""
    T, B, M = dG.shape
    V = gW_ih0.shape[1]
    if T * B < V:
        for m in range(M):
            for v in range(V):
                gW_ih0[m, v] = 0
        for t in range(T):
            for b in range(B):
                col = idx[t, b]
                d = dG[t, b]
                for m in range(M):
                    gW_ih0[m, col] += d[m]
        return
    for v in range(V):
        for m in range(M):
            emb[v, m] = 0
    for t in range(T):
        for b in range(B):
            d = dG[t, b]
            e = emb[idx[t, b]]
            for m in range(M):
                e[m] += d[m]
    for m in range(M):
        g = gW_ih0[m]
        for v in range(V):
            g[v] = emb[v, m]


@kernel
def copy2(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


# The per-timestep recurrent products are thin: (B x H) by (H x 4H) with B = the batch. OpenBLAS
# runs such shapes at a fraction of its speed for some (H, B) (about 20 GFLOP/s at H 512, B 4, one
# core, against 90 for the same FLOPs as one big GEMM), so each product has a tiled kernel beside
# the BLAS call, and the model's plan (``Plan``, measured per batch shape by ``tune_plan``) picks.


@dotkernel
def rec_rows(W, X, out, r0, r1):
    """out[b, j] = sum_k W[j, k] X[b, k] for the rows j in [r0, r1) of W and every row b of X
    (forward: W = W_hh (4H x H), X = h (B x H), out (B x 4H) gate pre-activations per batch row).
    Register tiles of 4 batch rows x 2 weight rows (then 2 x 4, 1 x 4): each weight row is read
    once per 4 batch rows and every inner loop is a set of independent contiguous dot products."""
    B, K = X.shape
    zero = W.dtype.type(0)
    b0 = 0
    while b0 + 4 <= B:
        x0, x1, x2, x3 = X[b0], X[b0 + 1], X[b0 + 2], X[b0 + 3]
        o0, o1, o2, o3 = out[b0], out[b0 + 1], out[b0 + 2], out[b0 + 3]
        j = r0
        while j < r1:
            w = W[j]
            v = W[j + 1] if j + 1 < r1 else W[j]  # an odd last row is computed twice, stored once
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = zero
            for k in range(K):
                wk, vk = w[k], v[k]
                e0, e1, e2, e3 = x0[k], x1[k], x2[k], x3[k]
                a0 += wk * e0
                a1 += wk * e1
                a2 += wk * e2
                a3 += wk * e3
                c0 += vk * e0
                c1 += vk * e1
                c2 += vk * e2
                c3 += vk * e3
            o0[j], o1[j], o2[j], o3[j] = a0, a1, a2, a3
            if j + 1 < r1:
                o0[j + 1], o1[j + 1], o2[j + 1], o3[j + 1] = c0, c1, c2, c3
            j += 2
        b0 += 4
    while b0 < B:  # 1 or 2 rows at a time, 4 weight rows
        n = 2 if b0 + 2 <= B else 1
        x0, x1 = X[b0], X[b0 + n - 1]
        o0, o1 = out[b0], out[b0 + n - 1]
        for j in range(r0, r1, 4):
            q = min(4, r1 - j)
            w0, w1, w2, w3 = W[j], W[j + min(1, q - 1)], W[j + min(2, q - 1)], W[j + q - 1]
            a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = zero
            for k in range(K):
                e0, e1 = x0[k], x1[k]
                u0, u1, u2, u3 = w0[k], w1[k], w2[k], w3[k]
                a0 += u0 * e0
                a1 += u1 * e0
                a2 += u2 * e0
                a3 += u3 * e0
                c0 += u0 * e1
                c1 += u1 * e1
                c2 += u2 * e1
                c3 += u3 * e1
            # rows past r1 repeat the last one and are not stored; the second batch row may be
            # the first again (n == 1) and is then stored over it with the same values
            o1[j] = c0
            o0[j] = a0
            if q > 1:
                o1[j + 1] = c1
                o0[j + 1] = a1
            if q > 2:
                o1[j + 2] = c2
                o0[j + 2] = a2
            if q > 3:
                o1[j + 3] = c3
                o0[j + 3] = a3
        b0 += n


@dotkernel
def rec_axpy(W, D, out, c0, c1):
    """out[b, c] += sum_r D[b, r] W[r, c] for the columns c in [c0, c1) (backward: W = W_hh
    (4H x H), D = da (B x 4H), out = dL/dh (B x H)). Row-by-row axpys over contiguous slices of W,
    4 weight rows x 4 batch rows per pass (then 4 x 1): each weight row is read once per 4 batch
    rows, each output element is loaded and stored once per 4 weight rows, and no transposed copy
    of W is needed. The summation order within an element is fixed (no reassociation needed)."""
    B = D.shape[0]
    G = W.shape[0]
    n = c1 - c0
    G4 = G - G % 4
    b0 = 0
    while b0 + 4 <= B:
        d0, d1, d2, d3 = D[b0], D[b0 + 1], D[b0 + 2], D[b0 + 3]
        o0, o1, o2, o3 = out[b0][c0:c1], out[b0 + 1][c0:c1], out[b0 + 2][c0:c1], out[b0 + 3][c0:c1]
        for j in range(0, G4, 4):
            w0, w1, w2, w3 = W[j][c0:c1], W[j + 1][c0:c1], W[j + 2][c0:c1], W[j + 3][c0:c1]
            p0, p1, p2, p3 = d0[j], d0[j + 1], d0[j + 2], d0[j + 3]
            q0, q1, q2, q3 = d1[j], d1[j + 1], d1[j + 2], d1[j + 3]
            r0, r1, r2, r3 = d2[j], d2[j + 1], d2[j + 2], d2[j + 3]
            s0, s1, s2, s3 = d3[j], d3[j + 1], d3[j + 2], d3[j + 3]
            for k in range(n):
                u0, u1, u2, u3 = w0[k], w1[k], w2[k], w3[k]
                o0[k] += p0 * u0 + p1 * u1 + p2 * u2 + p3 * u3
                o1[k] += q0 * u0 + q1 * u1 + q2 * u2 + q3 * u3
                o2[k] += r0 * u0 + r1 * u1 + r2 * u2 + r3 * u3
                o3[k] += s0 * u0 + s1 * u1 + s2 * u2 + s3 * u3
        for j in range(G4, G):
            w = W[j][c0:c1]
            p0, q0, r0, s0 = d0[j], d1[j], d2[j], d3[j]
            for k in range(n):
                o0[k] += p0 * w[k]
                o1[k] += q0 * w[k]
                o2[k] += r0 * w[k]
                o3[k] += s0 * w[k]
        b0 += 4
    for b in range(b0, B):
        d = D[b]
        o = out[b][c0:c1]
        for j in range(0, G4, 4):
            w0, w1, w2, w3 = W[j][c0:c1], W[j + 1][c0:c1], W[j + 2][c0:c1], W[j + 3][c0:c1]
            p0, p1, p2, p3 = d[j], d[j + 1], d[j + 2], d[j + 3]
            for k in range(n):
                o[k] += p0 * w0[k] + p1 * w1[k] + p2 * w2[k] + p3 * w3[k]
        for j in range(G4, G):
            w = W[j][c0:c1]
            p0 = d[j]
            for k in range(n):
                o[k] += p0 * w[k]


@kernel
def recurrent_product(W, h, R, b0, b1, blas):
    """R[b] = W @ h[b] for the batch rows [b0, b1) (all 4H rows of W): the tiled kernel, or
    BLAS (gemv for one row, else sgemm with W transposed in the call, no copy)."""
    if not blas:
        rec_rows(W, h[b0:b1], R[b0:b1], 0, W.shape[0])
    elif b1 - b0 == 1:
        np.dot(W, h[b0], R[b0])
    else:
        np.dot(h[b0:b1], W.T, R[b0:b1])


@kernel
def recurrent_grad(W, D, dH, tmp, b0, b1, blas):
    """dH[b] += D[b] @ W for the batch rows [b0, b1): the tiled axpy kernel, or BLAS into
    ``tmp`` (B x H) and a contiguous add."""
    if not blas:
        rec_axpy(W, D[b0:b1], dH[b0:b1], 0, W.shape[1])
        return
    if b1 - b0 == 1:
        np.dot(D[b0], W, tmp[b0])
    else:
        np.dot(D[b0:b1], W, tmp[b0:b1])
    for b in range(b0, b1):
        d = dH[b]
        s = tmp[b]
        for k in range(d.shape[0]):
            d[k] += s[k]


@headkernel
def exp_shifted(row, m):
    """row[v] = e^(row[v] - m): the softmax head's per-element loop, a vectorizable exp
    (``mathbench.exp_core``; libm ``expf`` would keep it scalar) with no reduction in it
    (a float sum needs reassociation to vectorize, which exp_core's range reduction forbids)."""
    for v in range(row.shape[0]):
        row[v] = exp_core(row[v] - m)


@kernel
def softmax_xent(P, b_out, tgt):
    """P (N, V): logits without bias on entry, softmax probabilities on exit. Returns the
    summed cross-entropy against tgt (N,) in float64 (log-sum-exp, max subtracted; one libm
    log per row, not per element)."""
    N, V = P.shape
    acc = 0.0
    for n in range(N):
        row = P[n]
        m = row[0] + b_out[0]
        for v in range(V):
            zv = row[v] + b_out[v]
            row[v] = zv
            m = zv if zv > m else m
        zt = row[tgt[n]]
        exp_shifted(row, m)
        s = c(m, 0.0)
        for v in range(V):
            s += row[v]
        inv = c(m, 1.0) / s
        for v in range(V):
            row[v] *= inv
        acc += math.log(s) + (m - zt)
    return acc


@kernel
def softmax_xent_backward(P, tgt, dL):
    """dL = (P - onehot(tgt)) / N: gradient of the mean cross-entropy w.r.t. the logits."""
    N, V = P.shape
    inv_n = c(P[0, 0], 1.0 / N)
    for n in range(N):
        for v in range(V):
            dL[n, v] = P[n, v] * inv_n
        dL[n, tgt[n]] -= inv_n


@headkernel
def bce_terms(z, y, P, loss):
    """Per batch row: loss[b] = max(z, 0) - z y + log(1 + e^-|z|) (never overflows) and
    P[b] = sigmoid(z). The classification head's per-element loop: a vectorizable exp and
    log1p on (0, 1] (``mathbench.functions.simd``), no libm call, no reduction. The arrays must not
    overlap: LLVM checks that at run time and takes its scalar loop if they do."""
    for b in range(z.shape[0]):
        zb = z[b]
        zero = c(zb, 0.0)
        one = c(zb, 1.0)
        e = exp_core(-abs(zb))
        loss[b] = (zb if zb > zero else zero) - zb * y[b] + log1p_unit(e)
        P[b] = one / (one + e) if zb >= zero else e / (one + e)


@kernel
def bce_forward(last, W_out, b_out, y, P):
    """Mean binary cross-entropy of the logits W_out last[b] + b_out; P[b] = sigmoid(logit)."""
    B, H = last.shape
    z = np.empty_like(P)
    for b in range(B):
        zb = b_out[0]
        for k in range(H):
            zb += W_out[0, k] * last[b, k]
        z[b] = zb
    terms = np.empty_like(P)
    bce_terms(z, y, P, terms)
    acc = 0.0
    for b in range(B):
        acc += terms[b]
    return acc / B


@kernel
def bce_backward(last, W_out, y, P, gW_out, gb_out, dH):
    """Head gradients of bce_forward's loss; dH (T, B, H) = dL/dh: zero except at t = T-1."""
    T, B, H = dH.shape
    inv_b = c(P[0], 1.0 / B)
    gb_out[0] = 0
    for k in range(H):
        gW_out[0, k] = 0
    for t in range(T):
        for b in range(B):
            for k in range(H):
                dH[t, b, k] = 0
    for b in range(B):
        dz = (P[b] - y[b]) * inv_b
        gb_out[0] += dz
        for k in range(H):
            gW_out[0, k] += dz * last[b, k]
            dH[T - 1, b, k] = dz * W_out[0, k]


@pkernel
def adam_update(p, g, m, v, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2, clip, nchunks):
    """Clip g to global norm ``clip`` (if clip > 0; torch's clip_grad_norm_ rule), then one Adam
    step with bias correction (torch's formula: p -= step * m / (sqrt(v)/sqrt(bc2) + eps), with
    step = lr/bc1). Scalars arrive in the parameter dtype. Returns the gradient norm before
    clipping; a non-finite norm leaves p, m, v untouched."""
    n = p.shape[0]
    if not PARALLEL:
        norm = math.sqrt(np.dot(g, g))
    else:
        partial = np.zeros(nchunks)
        for ch in prange(nchunks):
            i0, i1 = chunk(n, nchunks, ch)
            if i1 > i0:
                partial[ch] = np.dot(g[i0:i1], g[i0:i1])
        norm = math.sqrt(partial.sum())
    if not math.isfinite(norm):
        return norm
    scale = 1.0
    if clip > 0 and norm > clip:
        scale = clip / (norm + 1e-6)
    s = c(p[0], scale)
    if not PARALLEL:
        adam_loop(p, g, m, v, s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2)
    else:
        for ch in prange(nchunks):
            i0, i1 = chunk(n, nchunks, ch)
            adam_loop(p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1], s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2)
    return norm


@kernel
def adam_loop(p, g, m, v, s, step, b1, omb1, b2, omb2, eps, inv_sqrt_bc2):
    # indices from range(len): provably non-negative, so the loop vectorizes
    for i in range(p.shape[0]):
        gi = g[i] * s
        mi = b1 * m[i] + omb1 * gi
        vi = b2 * v[i] + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


# <<< numba helpers
# ---------------------------------------------------------------------------------------------
# >>> numba cell  (activation-dependent: CELL_F, CELL_DY, GATE_F, GATE_DY)


@kernel
def gate_forward_loop(i, f, o, ri, rf, ro, gp):
    """i, f, o <- GATE(i + ri, f + rf, o + ro): input and recurrent parts summed and the gate
    activations applied, for one batch row, in place. Its own loop (and function) so that its
    vectorization is reported apart from the cell's (``loop_facts``)."""
    for k in range(i.shape[0]):
        i[k] = GATE_F(i[k] + ri[k], gp)
        f[k] = GATE_F(f[k] + rf[k], gp)
        o[k] = GATE_F(o[k] + ro[k], gp)


@kernel
def cell_forward_loop(i, f, g, o, rg, cprev, cnew, tc, hnew, cp):
    """g <- CELL(g + rg), c' = f c + i g, CELL(c'), h' = o CELL(c') for one batch row (gates done)."""
    for k in range(g.shape[0]):
        gk = CELL_F(g[k] + rg[k], cp)
        cc = f[k] * cprev[k] + i[k] * gk
        t = CELL_F(cc, cp)
        g[k] = gk
        cnew[k] = cc
        tc[k] = t
        hnew[k] = o[k] * t


@kernel
def cell_forward_block(z, R, cprev, cnew, hnew, tc, b0, b1, j0, j1, cp, gp):
    """One timestep's cell update for batch rows [b0, b1) and hidden units [j0, j1).
    z (B, 4H): input part of the pre-activations, overwritten with the gate outputs;
    R (B, 4H): recurrent part h_prev @ W_hh^T. Every loop runs over contiguous 1-D slices of one
    batch row from index 0, so it vectorizes when the activations do (no libm calls)."""
    H = cprev.shape[1]
    for b in range(b0, b1):
        zb = z[b]
        rb = R[b]
        i = zb[j0:j1]
        f = zb[H + j0:H + j1]
        g = zb[2 * H + j0:2 * H + j1]
        o = zb[3 * H + j0:3 * H + j1]
        gate_forward_loop(i, f, o, rb[j0:j1], rb[H + j0:H + j1], rb[3 * H + j0:3 * H + j1], gp)
        cell_forward_loop(i, f, g, o, rb[2 * H + j0:2 * H + j1], cprev[b][j0:j1], cnew[b][j0:j1],
                          tc[b][j0:j1], hnew[b][j0:j1], cp)


@pkernel
def step_forward(W, z, hprev, cprev, cnew, hnew, tc, R, blas, by_batch, cp, gp, nchunks):
    """One timestep of one layer: R = hprev @ W^T (``recurrent_product``), then the cell update.
    Parallel: chunks of batch rows (``by_batch``: each chunk its rows' product and cells) or of
    hidden units (each chunk the rows of W for its units in all four gates, tiled, then its
    cells); the plan chooses."""
    B, H = cprev.shape
    if not PARALLEL:
        recurrent_product(W, hprev, R, 0, B, blas)
        cell_forward_block(z, R, cprev, cnew, hnew, tc, 0, B, 0, H, cp, gp)
    elif by_batch:
        for ch in prange(nchunks):
            b0, b1 = chunk(B, nchunks, ch)
            if b1 > b0:
                recurrent_product(W, hprev, R, b0, b1, blas)
                cell_forward_block(z, R, cprev, cnew, hnew, tc, b0, b1, 0, H, cp, gp)
    else:
        for ch in prange(nchunks):
            j0, j1 = chunk(H, nchunks, ch)
            if j1 > j0:
                for q in range(4):
                    rec_rows(W, hprev, R, q * H + j0, q * H + j1)
                cell_forward_block(z, R, cprev, cnew, hnew, tc, 0, B, j0, j1, cp, gp)


@kernel
def cell_backward_loop(dh, i, f, g, o, tc, cprev, dc, di, df, dg, do, cp, gp):
    """The backward of one batch row (all 1-D slices of the units [j0, j1)): the loop
    ``loop_facts`` reports as "backward"."""
    for k in range(i.shape[0]):
        ik = i[k]
        fk = f[k]
        gk = g[k]
        ok = o[k]
        tk = tc[k]
        dct = dc[k] + dh[k] * ok * CELL_DY(tk, cp)
        di[k] = dct * gk * GATE_DY(ik, gp)
        df[k] = dct * cprev[k] * GATE_DY(fk, gp)
        dg[k] = dct * ik * CELL_DY(gk, cp)
        do[k] = dh[k] * tk * GATE_DY(ok, gp)
        dc[k] = dct * fk


@kernel
def cell_backward_block(dHt, z, tc, cprev, dc, dGt, b0, b1, j0, j1, cp, gp):
    """Backward of one timestep for batch rows [b0, b1) and hidden units [j0, j1): dHt (B, H) =
    dL/dh_t (from above and from t+1); dc carries in from t+1 and out to t-1; writes dGt (B, 4H)
    = dL/da_t."""
    H = cprev.shape[1]
    for b in range(b0, b1):
        zb = z[b]
        gb = dGt[b]
        cell_backward_loop(dHt[b][j0:j1], zb[j0:j1], zb[H + j0:H + j1], zb[2 * H + j0:2 * H + j1],
                           zb[3 * H + j0:3 * H + j1], tc[b][j0:j1], cprev[b][j0:j1], dc[b][j0:j1],
                           gb[j0:j1], gb[H + j0:H + j1], gb[2 * H + j0:2 * H + j1], gb[3 * H + j0:3 * H + j1],
                           cp, gp)


@pkernel
def step_backward(W, dGnext, dHt, z, tc, cprev, dc, dGt, tmp, rec, blas, by_batch, cp, gp, nchunks):
    """One timestep of one layer backwards: dHt += dGnext @ W (``recurrent_grad``; skipped at the
    last timestep, ``rec`` False), then the cell backward. Parallel as ``step_forward``: batch-row
    chunks, or hidden-unit chunks, each its columns of dGnext @ W (tiled) and its cells."""
    B, H = cprev.shape
    if not PARALLEL:
        if rec:
            recurrent_grad(W, dGnext, dHt, tmp, 0, B, blas)
        cell_backward_block(dHt, z, tc, cprev, dc, dGt, 0, B, 0, H, cp, gp)
    elif by_batch:
        for ch in prange(nchunks):
            b0, b1 = chunk(B, nchunks, ch)
            if b1 > b0:
                if rec:
                    recurrent_grad(W, dGnext, dHt, tmp, b0, b1, blas)
                cell_backward_block(dHt, z, tc, cprev, dc, dGt, b0, b1, 0, H, cp, gp)
    else:
        for ch in prange(nchunks):
            j0, j1 = chunk(H, nchunks, ch)
            if j1 > j0:
                if rec:
                    rec_axpy(W, dGnext, dHt, j0, j1)
                cell_backward_block(dHt, z, tc, cprev, dc, dGt, 0, B, j0, j1, cp, gp)


@kernel
def forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks):
    """All layers over all timesteps; Z[0] must already hold layer 0's input projection plus
    biases. Per layer: the input projection of the whole sequence (one GEMM), then the
    recurrence, where only h_{t-1} @ W_hh^T and the cell update run per timestep. ``plan``:
    (forward product by BLAS, backward product by BLAS, parallel chunks of batch rows) as 0/1."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    for layer in range(L):
        Zl, Hl, Cl, TCl, Wl = Z[layer], Hs[layer], Cs[layer], TC[layer], W_hh[layer]
        copy2(h0[layer], Hl[0])
        copy2(c0[layer], Cl[0])
        if layer > 0:
            Z2 = Zl.reshape((T * B, H4))
            mm_nt(Hs[layer - 1][1:].reshape((T * B, H)), W_ihR[layer - 1], Z2, nchunks)
            add_bias(Z2, b_ih[layer], b_hh[layer])
        for t in range(T):
            step_forward(Wl, Zl[t], Hl[t], Cl[t], Cl[t + 1], Hl[t + 1], TCl[t], R, plan[0], plan[2], cp, gp, nchunks)


@kernel
def backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks):
    """Backpropagation through time for all layers from the top; dH (T, B, H) holds dL/dh_t of
    the top layer on entry (and is overwritten). On exit dG (T, B, 4H) holds layer 0's dL/da_t
    (the caller adds layer 0's input-weight gradient). Per layer: the recurrence backwards in
    time (only da_{t+1} @ W_hh and the cell backward per timestep), then the weight and bias
    gradients and the gradient for the layer below as whole-sequence GEMMs."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    N = T * B
    dG2 = dG.reshape((N, H4))
    dH2 = dH.reshape((N, H))
    for layer in range(L - 1, -1, -1):
        Zl, Cl, TCl, Wl = Z[layer], Cs[layer], TC[layer], W_hh[layer]
        for b in range(B):
            for j in range(H):
                dc[b, j] = 0
        for t in range(T - 1, -1, -1):
            nxt = dG[t + 1] if t < T - 1 else dG[t]  # unused at the last timestep
            step_backward(Wl, nxt, dH[t], Zl[t], TCl[t], Cl[t], dc, dG[t], tmp, t < T - 1, plan[1], plan[2],
                          cp, gp, nchunks)
        mm_tn(dG2, Hs[layer][:T].reshape((N, H)), gW_hh[layer], scratch, nchunks)
        column_sums(dG2, gb_ih[layer])
        for m in range(H4):
            gb_hh[layer, m] = gb_ih[layer, m]
        if layer > 0:
            mm_tn(dG2, Hs[layer - 1][1:].reshape((N, H)), gW_ihR[layer - 1], scratch, nchunks)
            mm_nn(dG2, W_ihR[layer - 1], dH2, nchunks)


@kernel
def infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks):
    """Forward only (prediction): the recurrence of ``forward_stack`` without keeping what the
    backward pass needs. One layer's pre-activations Z (T, B, 4H), the hidden sequences of two
    adjacent layers (Ha, Hb: (T+1, B, H), even layers in Ha), two cell states (C2 (2, B, H)) and
    one CELL(c) row block (tc) are reused for every layer and timestep. Z must hold layer 0's
    input projection plus biases. Each layer's last h and c go to hT, cT (L, B, H). Returns the
    index of the top layer's buffer (0: Ha, 1: Hb)."""
    T, B, H4 = Z.shape
    H = H4 // 4
    L = W_hh.shape[0]
    for layer in range(L):
        Hl = Ha if layer % 2 == 0 else Hb
        if layer > 0:
            below = Hb if layer % 2 == 0 else Ha
            Z2 = Z.reshape((T * B, H4))
            mm_nt(below[1:].reshape((T * B, H)), W_ihR[layer - 1], Z2, nchunks)
            add_bias(Z2, b_ih[layer], b_hh[layer])
        copy2(h0[layer], Hl[0])
        copy2(c0[layer], C2[0])
        for t in range(T):
            step_forward(W_hh[layer], Z[t], Hl[t], C2[t % 2], C2[(t + 1) % 2], Hl[t + 1], tc, R,
                         plan[0], plan[2], cp, gp, nchunks)
        copy2(Hl[T], hT[layer])
        copy2(C2[T % 2], cT[layer])
    return (L - 1) % 2


@kernel
def forward_lm(idx, tgt, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
               Z, Hs, Cs, TC, R, P, emb, plan, cp, gp, nchunks):
    """Language model forward: idx, tgt (T, B) int64 -> mean cross-entropy; P (T*B, V) probs."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    gather_input(idx, W_ih0, b_ih[0], b_hh[0], Z[0], emb)
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks)
    mm_nt(Hs[L - 1][1:].reshape((T * B, H)), W_out, P, nchunks)
    return softmax_xent(P, b_out, tgt.reshape(T * B)) / (T * B)


@kernel
def backward_lm(idx, tgt, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                dL, dG, dH, tmp, dc, scratch, emb, plan, cp, gp, nchunks):
    """Gradients of forward_lm's mean loss into the g* arrays (overwritten)."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    N = T * B
    softmax_xent_backward(P, tgt.reshape(N), dL)
    top = Hs[L - 1][1:].reshape((N, H))
    mm_tn(dL, top, gW_out, scratch, nchunks)
    column_sums(dL, gb_out)
    mm_nn(dL, W_out, dH.reshape((N, H)), nchunks)
    backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks)
    scatter_input(idx, dG, gW_ih0, emb)


@kernel
def infer_lm(idx, tgt, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
             Z, Ha, Hb, C2, tc, R, hT, cT, P, emb, plan, cp, gp, nchunks):
    """Language model prediction: P (T*B, V) probabilities (``tgt``: any valid ids, the loss is
    not used); returns the top layer's buffer index (``infer_stack``)."""
    T, B, H4 = Z.shape
    H = H4 // 4
    gather_input(idx, W_ih0, b_ih[0], b_hh[0], Z, emb)
    top = infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks)
    Ht = Ha if top == 0 else Hb
    mm_nt(Ht[1:].reshape((T * B, H)), W_out, P, nchunks)
    softmax_xent(P, b_out, tgt.reshape(T * B))
    return top


@kernel
def forward_cls(X, y, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
                Z, Hs, Cs, TC, R, P, plan, cp, gp, nchunks):
    """Sequence classification forward: X (T, B, F), y (B,) in {0, 1} -> mean binary
    cross-entropy of the logit W_out h_T + b_out; P (B,) = sigmoid(logit)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    Z0 = Z[0].reshape((T * B, H4))
    mm_nt(X.reshape((T * B, F)), W_ih0, Z0, nchunks)
    add_bias(Z0, b_ih[0], b_hh[0])
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, R, plan, cp, gp, nchunks)
    return bce_forward(Hs[L - 1][T], W_out, b_out, y, P)


@kernel
def backward_cls(X, y, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                 gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                 dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks):
    """Gradients of forward_cls's mean loss into the g* arrays (overwritten)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    bce_backward(Hs[L - 1][T], W_out, y, P, gW_out, gb_out, dH)
    backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, tmp, dc, scratch, plan, cp, gp, nchunks)
    mm_tn(dG.reshape((T * B, H4)), X.reshape((T * B, F)), gW_ih0, scratch, nchunks)


@kernel
def infer_cls(X, y, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
              Z, Ha, Hb, C2, tc, R, hT, cT, P, plan, cp, gp, nchunks):
    """Sequence classification prediction: P (B,) = sigmoid(W_out h_T + b_out) (``y``: any 0/1
    labels, the loss is not used); returns the top layer's buffer index."""
    T, B, H4 = Z.shape
    F = X.shape[2]
    Z0 = Z.reshape((T * B, H4))
    mm_nt(X.reshape((T * B, F)), W_ih0, Z0, nchunks)
    add_bias(Z0, b_ih[0], b_hh[0])
    top = infer_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Ha, Hb, C2, tc, R, hT, cT, plan, cp, gp, nchunks)
    Ht = Ha if top == 0 else Hb
    bce_forward(Ht[T], W_out, b_out, y, P)
    return top


# <<< numba cell
# ---------------------------------------------------------------------------------------------
# generated modules

_HELPERS = ("# >>> numba helpers", "# <<< numba helpers")
_CELL = ("# >>> numba cell", "# <<< numba cell")


def _section(markers) -> str:
    text = Path(__file__).read_text()
    start = text.index(markers[0])
    return text[start:text.index(markers[1], start)]


def _flags_text(flags) -> str:
    """A fastmath value as source text, sorted: a set's repr order changes between processes, and
    the text is the module's cache key."""
    if isinstance(flags, (set, frozenset)):
        return "{" + ", ".join(map(repr, sorted(flags))) + "}" if flags else "False"
    return repr(bool(flags))


def _header(doc: str, parallel: bool, imports: list[str], fastmath=frozenset()) -> str:
    fm = _flags_text(fastmath)
    return "\n".join([
        f'"""Generated by lstm_numba.model: {doc}."""',
        "import math",
        "import numpy as np",
        "from numba import njit, prange",
        "from mathbench import JIT_OPTIONS, c, exp_core, log1p_unit",
        *imports,
        f"kernel = njit(fastmath={fm}, **JIT_OPTIONS)",
        f"pkernel = njit(parallel={bool(parallel)}, fastmath={fm}, **JIT_OPTIONS)",
        f"headkernel = njit(fastmath={_flags_text(HEAD_FASTMATH)}, **JIT_OPTIONS)",
        f"dotkernel = njit(fastmath={_flags_text(DOT_FASTMATH)}, **JIT_OPTIONS)",
        f"PARALLEL = {bool(parallel)}",
        "", "",
    ])


@lru_cache(maxsize=None)
def helpers(parallel: bool):
    """The activation-independent kernels (GEMM wrappers, heads, Adam): one generated module per
    variant, so a new activation pair compiles only the cell section."""
    text = _header(f"helpers, parallel={bool(parallel)}", parallel, []) + _section(_HELPERS)
    return codegen.load_module("lstm_numba_helpers", text, [inspect.getsourcefile(c), inspect.getsourcefile(exp_core.py_func)])


def _scalars(cell: str, gate: str) -> dict:
    _, ci = resolve_activation(cell, "cell")
    _, gi = resolve_activation(gate, "gate")
    return {"CELL_F": ci.forward, "CELL_DY": ci.dfdy, "GATE_F": gi.forward, "GATE_DY": gi.dfdy}


def cell_fastmath(cell: str, gate: str) -> frozenset:
    """The cell kernels' fastmath flags: the union of the four scalars' own. A scalar inlined at
    Numba IR level (``numba_simd``: ``inline="always"``) is lowered with its caller's flags, so
    the loop must carry them (as ``mathbench.functions.kernels`` does); a scalar called as a function keeps
    its own (``isru:numba_rsqrt``'s arcp/afn must not reach the rest of the loop). Pairs of plain
    scalars (the seed's tanh/sigmoid) get none, as before."""
    flags = set()
    for fn in _scalars(cell, gate).values():
        if fn.targetoptions.get("inline") != "always":  # compiled on its own, with its own flags
            continue
        f = fn.targetoptions.get("fastmath", False)
        flags |= set(f) if isinstance(f, (set, frozenset)) else (set() if not f else {"fast"})
    return frozenset(flags)


def module_text(cell: str, gate: str, parallel: bool) -> tuple[str, list[str]]:
    """Source text of the generated kernel module for one activation pair, and its dependencies."""
    fns = _scalars(cell, gate)
    imports = [f"from {fn.py_func.__module__} import {fn.py_func.__name__} as {alias}"
               for alias, fn in fns.items()]
    hmod = helpers(parallel)
    names = re.findall(r"^def (\w+)\(", _section(_HELPERS), re.M)
    imports.append(f"from {hmod.__name__} import {', '.join(names)}")
    text = _header(f"cell={cell!r}, gate={gate!r}, parallel={bool(parallel)}", parallel, imports,
                   cell_fastmath(cell, gate))
    deps = {inspect.getsourcefile(fn.py_func) for fn in fns.values()}
    deps |= {inspect.getsourcefile(c), inspect.getsourcefile(exp_core.py_func), hmod.__file__}
    return text + _section(_CELL), sorted(deps)


@lru_cache(maxsize=None)
def kernels(cell: str, gate: str, parallel: bool):
    """The generated, disk-cached kernel module for one (cell, gate, parallel) choice; it also
    exposes the helpers (``adam_update`` ...) it imports."""
    text, deps = module_text(cell, gate, parallel)
    return codegen.load_module("lstm_numba_kernels", text, deps)


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

    def codes(self) -> np.ndarray:
        """What the kernels read: (forward by BLAS, backward by BLAS, chunks of batch rows)."""
        return np.array([self.fwd == "blas", self.bwd == "blas", self.split == "batch"], np.int64)

    @property
    def label(self) -> str:
        how = f"parallel/{self.split}" if self.parallel else "serial"
        return f"{how} fwd={self.fwd} bwd={self.bwd}"


class _Buffers:
    """What both routes need for one (T, B) shape: the per-timestep recurrent product, the zero
    state, the outputs, placeholder targets and the LM's token-major input pack; and its plan."""

    def __init__(self, cfg: ModelConfig, T: int, B: int):
        L, H, O, dt = cfg.layers, cfg.hidden, cfg.n_out, cfg.np_dtype
        lm = cfg.task == "lm"
        self.T, self.B = T, B
        self.R = np.zeros((B, 4 * H), dt)
        self.zeros_state = np.zeros((L, B, H), dt)
        self.P = np.zeros((T * B, O) if lm else (B,), dt)
        self.dummy_targets = np.zeros((T, B), np.int64) if lm else np.zeros(B, dt)
        self.emb = np.zeros((O, 4 * H), dt) if lm else None
        self.plan: Plan | None = None


class _Workspace(_Buffers):
    """Preallocated buffers of training for one (T, B) shape: nothing is allocated per timestep."""

    def __init__(self, cfg: ModelConfig, T: int, B: int, max_chunks: int):
        super().__init__(cfg, T, B)
        L, H, O, dt = cfg.layers, cfg.hidden, cfg.n_out, cfg.np_dtype
        self.Z = np.zeros((L, T, B, 4 * H), dt)
        self.Hs = np.zeros((L, T + 1, B, H), dt)
        self.Cs = np.zeros((L, T + 1, B, H), dt)
        self.TC = np.zeros((L, T, B, H), dt)
        self.dL = np.zeros((T * B, O), dt) if cfg.task == "lm" else None
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
        super().__init__(cfg, T, B)
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
        self._kernels = None  # a module to run instead of the generated ones (tests: the source)

    # -- plumbing
    @property
    def kernels(self):
        """The generated module of the config's variant (parallel when ``config.parallel``)."""
        return self.kernels_for(bool(self.config.parallel))

    def kernels_for(self, parallel: bool):
        if self._kernels is not None:
            return self._kernels
        return kernels(self.config.cell, self.config.gate, bool(parallel))

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
        cfg = self.config
        if cfg.task == "lm":
            x = np.asarray(inputs)
            if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
                raise UsageError(f"LM inputs must be (T, B) token ids, got shape {x.shape}")
            if not np.issubdtype(x.dtype, np.integer):
                raise UsageError("LM inputs must be integer token ids")
            x = _c_writable(x, np.int64)
            if x.size and (x.min() < 0 or x.max() >= cfg.vocab_size):
                raise UsageError(f"token ids must be in [0, {cfg.vocab_size})")
            if targets is not None:
                y = _c_writable(np.asarray(targets), np.int64)
                if y.shape != x.shape:
                    raise UsageError(f"LM targets must have the inputs' shape {x.shape}, got {y.shape}")
                if y.min() < 0 or y.max() >= cfg.vocab_size:
                    raise UsageError(f"target ids must be in [0, {cfg.vocab_size})")
            else:
                y = None
        else:
            x = np.asarray(inputs)
            if x.ndim != 3 or x.shape[2] != cfg.n_features or x.shape[0] < 1 or x.shape[1] < 1:
                raise UsageError(f"classify inputs must be (T, B, {cfg.n_features}), got shape {x.shape}")
            x = _c_writable(x, cfg.np_dtype)
            if targets is not None:
                y = _c_writable(np.asarray(targets), cfg.np_dtype)
                if y.shape != (x.shape[1],):
                    raise UsageError(f"classify targets must have shape ({x.shape[1]},), got {y.shape}")
            else:
                y = None
        return x, y

    def _check_types(self, x, y):
        """The cheap part of validation, kept on the fast path: another dtype or layout would
        silently compile a new specialization inside a timed call."""
        xt = np.int64 if self.config.task == "lm" else self.config.np_dtype
        yt = np.int64 if self.config.task == "lm" else self.config.np_dtype
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
        p = self.params
        k = self.kernels_for(plan.parallel)
        args = (x, ws.dummy_targets if y is None else y, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh,
                p.W_out, p.b_out, h0, c0, ws.Z, ws.Hs, ws.Cs, ws.TC, ws.R, ws.P)
        tail = (plan.codes(), self.cell_param, self.gate_param, self._chunks(plan))
        if self.config.task == "lm":
            return k.forward_lm(*args, ws.emb, *tail)
        return k.forward_cls(*args, *tail)

    def _run_backward(self, ws: _Workspace, plan: Plan, g: Params) -> None:
        p = self.params
        k = self.kernels_for(plan.parallel)
        nch = self._chunks(plan)
        ws.ensure_scratch(self.config, nch)
        if self.config.task == "lm":
            k.backward_lm(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                          ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                          ws.dL, ws.dG, ws.dH, ws.tmp, ws.dc, ws.scratch, ws.emb, plan.codes(),
                          self.cell_param, self.gate_param, nch)
        else:
            k.backward_cls(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                           ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                           ws.dG, ws.dH, ws.tmp, ws.dc, ws.scratch, plan.codes(),
                           self.cell_param, self.gate_param, nch)

    def _run_infer(self, x, h0, c0, ws: _InferSpace, plan: Plan) -> None:
        p = self.params
        k = self.kernels_for(plan.parallel)
        args = (x, ws.dummy_targets, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh, p.W_out, p.b_out, h0, c0,
                ws.Z, ws.Ha, ws.Hb, ws.C2, ws.tc, ws.R, ws.hT, ws.cT, ws.P)
        tail = (plan.codes(), self.cell_param, self.gate_param, self._chunks(plan))
        ws.top = k.infer_lm(*args, ws.emb, *tail) if self.config.task == "lm" else k.infer_cls(*args, *tail)

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
        if self.config.task == "lm":
            return ws.P.reshape(ws.T, ws.B, self.config.vocab_size)
        return ws.P

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
        if cfg.task == "lm":
            x = np.zeros((2, 1), np.int64)
            y = np.zeros((2, 1), np.int64)
        else:
            x = np.zeros((2, 1, cfg.n_features), cfg.np_dtype)
            y = np.zeros(1, cfg.np_dtype)
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
    rng = np.random.default_rng(0)
    if cfg.task == "lm":
        return rng.integers(0, cfg.vocab_size, (T, B)), rng.integers(0, cfg.vocab_size, (T, B))
    return (rng.standard_normal((T, B, cfg.n_features)).astype(cfg.np_dtype),
            (rng.random(B) < 0.5).astype(cfg.np_dtype))


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
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _plan_key(model: "Model", T: int, B: int, train: bool) -> str:
    """Everything a measured plan depends on: the machine, the kernels' source, the shape, the
    activations, the thread count."""
    from mathbench import cpu_info as _cpu

    cfg = model.config
    return "|".join(map(str, (_cpu()["model"], _source_hash(), numba.__version__, cfg.task, cfg.layers, cfg.hidden, cfg.n_in,
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
        data = {k: asdict(v) for k, v in {**_load_plans(), key: _PLANS[key]}.items()}
        path = _plans_path()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:  # atomic: a concurrent process reads the old file or the new one, never half
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
            os.replace(tmp, path)
        except OSError:  # an unwritable cache only costs a measurement in the next process
            tmp.unlink(missing_ok=True)
    return _PLANS[key]


def _c_writable(a: np.ndarray, dtype) -> np.ndarray:
    """C-contiguous, writeable array of dtype (read-only arrays would be a new Numba type)."""
    out = np.ascontiguousarray(a, dtype=dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


def matmul_flops(config: ModelConfig, T: int, B: int) -> dict:
    """Floating-point operations (2 per multiply-add) of the matrix products the kernels above run
    for a batch of shape (T, B): ``{"forward": ..., "train": forward + backward}``. The element-wise
    loops, the LM's embedding gather/scatter and the optimizer are not counted: this is the work a
    GEMM library could do, the figure an efficiency against plain sgemm is about."""
    H, L, F, V = config.hidden, config.layers, config.n_in, config.n_out
    G = 4 * H
    lm = config.task == "lm"
    seq = 2 * T * B * G * H  # one (T*B) x H by H x 4H product: recurrent, or a layer-above input
    fwd = L * seq + (L - 1) * seq  # recurrence per layer; input projections of layers above 0
    fwd += 0 if lm else 2 * T * B * G * F  # layer 0: the LM gathers rows, classify multiplies
    fwd += 2 * T * B * H * V if lm else 2 * B * H  # head
    bwd = L * (2 * (T - 1) * B * G * H + seq)  # dh_{t-1} = da_t W_hh (t >= 1), dW_hh
    bwd += (L - 1) * 2 * seq  # dW_ih and the gradient for the layer below, layers above 0
    bwd += 0 if lm else 2 * T * B * G * F  # dW_ih of layer 0 (the LM scatters)
    bwd += 2 * (2 * T * B * H * V) if lm else 2 * (2 * B * H)  # dW_out and dh of the head
    return {"forward": fwd, "train": fwd + bwd}


def compile_model(config: ModelConfig) -> float:
    """Seconds to compile (or load from cache) every kernel ``config`` uses."""
    return Model(config).compile()


# ---------------------------------------------------------------------------------------------
# per-loop vectorization facts

#: The loops whose vectorization a sweep row reports: name -> kernel (the head per task).
LOOPS = {"gate_fwd": "gate_forward_loop", "cell_fwd": "cell_forward_loop", "backward": "cell_backward_loop",
         "head": {"lm": "exp_shifted", "classify": "bce_terms"}}
_N_ARRAYS = {"gate_forward_loop": (6, 1), "cell_forward_loop": (9, 1), "cell_backward_loop": (12, 2),
             "exp_shifted": (1, 1), "bce_terms": (4, 0)}  # (1-D arrays, then scalars of the dtype)
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
    from mathbench import load_simd_facts as _load_simd_cache, save_simd_facts as _save_simd_cache, simd_info

    mod = kernels(config.cell, config.gate, bool(config.parallel))
    path = codegen.cache_dir() / f"simd-{mod.__name__}.json"
    saved = _load_simd_cache(path)
    nt = numba.from_dtype(config.np_dtype)
    arr = numba.types.Array(nt, 1, "C")
    out, changed = {}, False
    for loop, fname in LOOPS.items():
        fname = fname[config.task] if isinstance(fname, dict) else fname
        key = f"{fname}|{config.dtype}"
        if not (isinstance(saved.get(key), dict) and set(saved[key]) == {"vectorized", "simd_bits", "libm_calls"}):
            disp = getattr(mod, fname)
            opts = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}  # njit implies it
            twin = numba.njit(**{**opts, "cache": False})(disp.py_func)
            n_arr, n_sc = _N_ARRAYS[fname]
            sig = (arr,) * n_arr + (nt,) * n_sc
            twin.compile(sig)
            saved[key] = simd_info(function_asm(twin.inspect_asm(sig), fname))
            changed = True
        out[loop] = saved[key]
    if changed:
        _save_simd_cache(path, saved)
    return out
