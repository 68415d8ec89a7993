"""A multi-layer LSTM in Numba with pluggable activations: the math, forward and backward.

Public API (stable; the sweep and CLI call these)
------------------------------------------------
``ModelConfig(task, hidden, layers=1, vocab_size=0, n_features=0, cell="tanh", gate="sigmoid",
dtype="float32", parallel=False, seed=0, forget_bias=1.0)``
    ``task`` is ``"lm"`` (character language model: integer tokens in, softmax cross-entropy over
    ``vocab_size`` classes at every timestep) or ``"classify"`` (``n_features`` floats per timestep
    in, the last timestep's top hidden state -> one logit -> sigmoid binary cross-entropy).
    ``cell``/``gate`` are registry specs (``"tanh"``, ``"isru"``, ``"tanh:numba_rational"``) for the
    two activation slots. Bad values raise ``mathbench.errors.UsageError`` (unknown names:
    ``mathbench.registry.UnknownName``) when the config is built.
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
    ``.hidden()`` top-layer h of the last forward, (T, B, H).
    ``.final_state() -> (h, c)`` copies, each (L, B, H), to carry across TBPTT chunks.
    ``.prepare(T, B)`` allocates the buffers for that batch shape now (not inside a timing).
    ``.compile() -> float`` seconds to compile (or load from the disk cache) every kernel this
        config uses (forward, backward, Adam); call it before timing anything.
    ``.kernels`` the generated Numba module; ``.nchunks`` work chunks per parallel region.
``compile_model(config) -> float`` the same as ``Model(config).compile()``.
``loop_facts(config) -> {loop: {"vectorized", "simd_bits", "libm_calls"}}`` for the gate forward,
    cell forward, backward and head loops (``LOOPS``), read from their compiled assembly.

The parallel variant (``parallel=True``) splits every timestep's hidden units, the big matrix
products and the optimizer into ``numba.get_num_threads()`` chunks inside ``prange``; it calls
BLAS from worker threads, so the caller must limit BLAS to one thread (``train.thread_limits``;
``train.train`` does it). The serial variant never starts Numba's thread pool.

How activations plug in (see ``mathbench.codegen``): the code between the ``numba cell``
markers below is plain Python that reads the globals CELL_F, CELL_DY, GATE_F, GATE_DY (the
registry's forward and backprop-form scalars). For a (cell, gate, parallel) choice its source text
is copied into a generated module whose header imports the chosen scalars under those names and
defines ``kernel``/``pkernel`` as ``njit`` (with the fastmath flags of the scalars that Numba
inlines at IR level, ``cell_fastmath``: a ``numba_simd`` scalar takes its caller's flags) and
PARALLEL as a constant; that module is disk-cached
(``cache=True``) and its name hashes its text and the scalars' source files, so edits recompile.
The activation-independent kernels (``numba helpers`` markers: GEMM wrappers, heads, Adam) go
into one generated module per variant that every pair imports, so they compile once; the heads'
per-element loops use ``mathbench.simd``'s exp (and log1p), so they vectorize. The
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

import inspect
import math
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS now, so threadpoolctl sees it)
from numba import prange

from mathbench import codegen, jit as mjit, registry, simd
from mathbench.errors import UsageError
from mathbench.jit import c
# Defaults for reading/running the kernel section as plain Python; generated modules rebind them.
from mathbench.scalars import sigmoid_dy as GATE_DY
from mathbench.scalars import sigmoid_exp as GATE_F
from mathbench.scalars import tanh_dy as CELL_DY
from mathbench.scalars import tanh_libm as CELL_F
from mathbench.simd import _log1p_unit as log1p_unit  # log(1 + u) on [0, 1], vectorizable
from mathbench.simd import exp_core

__all__ = ["ModelConfig", "Params", "Model", "init_params", "compile_model", "loop_facts", "LOOPS", "TASKS",
           "DTYPES"]

TASKS = ("lm", "classify")
DTYPES = ("float32", "float64")


PARALLEL = False  # generated modules: the variant, a compile-time constant


def kernel(fn):  # generated modules: njit(**JIT_OPTIONS)
    return fn


def pkernel(fn):  # generated modules: njit(parallel=<variant>, **JIT_OPTIONS)
    return fn


def headkernel(fn):  # generated modules: njit(fastmath=HEAD_FASTMATH, **JIT_OPTIONS)
    return fn


# The heads' loops inline mathbench.simd's exp/log1p at Numba IR level, where they take the
# loop's flags: FMA contraction is what their accuracy bounds were measured with.
HEAD_FASTMATH = frozenset({"contract"})


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
# rT (4H, B) holds the forward's per-timestep W_hh @ h_{t-1} transposed, so that any split of
# the hidden units is a contiguous row block of W_hh and of rT (one BLAS call per block, no
# copies); dhT (H, B) the serial backward's W_hh^T @ da_{t+1}.


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
def gather_input(idx, W_ih0, b1, b2, Z0):
    """LM layer 0: Z0[t, b] = W_ih0[:, idx[t, b]] + b1 + b2 (one-hot input as a column lookup)."""
    T, B, M = Z0.shape
    for t in range(T):
        for b in range(B):
            col = idx[t, b]
            z = Z0[t, b]
            for m in range(M):
                z[m] = W_ih0[m, col] + b1[m] + b2[m]


@kernel
def scatter_input(idx, dG, gW_ih0):
    """LM layer 0 weight gradient: gW_ih0[:, idx[t, b]] += dG[t, b] (zeroed first)."""
    T, B, M = dG.shape
    V = gW_ih0.shape[1]
    for m in range(M):
        for v in range(V):
            gW_ih0[m, v] = 0
    for t in range(T):
        for b in range(B):
            col = idx[t, b]
            d = dG[t, b]
            for m in range(M):
                gW_ih0[m, col] += d[m]


@kernel
def copy2(src, dst):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@kernel
def add_vec_mat_cols(dst, g, W, j0, j1):
    """dst[k] += sum_r g[r] W[r, j0 + k]: columns [j0, j1) of g @ W, as row-by-row axpys over
    contiguous row slices (vectorizes without reassociation; no transposed copy of W)."""
    for r in range(W.shape[0]):
        gr = g[r]
        row = W[r][j0:j1]
        for k in range(dst.shape[0]):
            dst[k] += gr * row[k]


@headkernel
def exp_shifted(row, m):
    """row[v] = e^(row[v] - m): the softmax head's per-element loop, a vectorizable exp
    (``mathbench.simd.exp_core``; libm ``expf`` would keep it scalar) with no reduction in it
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
    log1p on (0, 1] (``mathbench.simd``), no libm call, no reduction. The arrays must not
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
def add_column(dst, src, b):
    """dst[k] += src[k, b] (a column of a transposed (rows, B) buffer); contiguous when B == 1."""
    if src.shape[1] == 1:
        s1 = src.reshape(src.shape[0])
        for k in range(dst.shape[0]):
            dst[k] += s1[k]
    else:
        for k in range(dst.shape[0]):
            dst[k] += src[k, b]


@kernel
def gate_forward_loop(i, f, o, gp):
    """i, f, o <- GATE(i, f, o): the gate activations of one batch row, in place. Its own loop
    (and function) so that its vectorization is reported apart from the cell's (``loop_facts``)."""
    for k in range(i.shape[0]):
        i[k] = GATE_F(i[k], gp)
        f[k] = GATE_F(f[k], gp)
        o[k] = GATE_F(o[k], gp)


@kernel
def cell_forward_loop(i, f, g, o, cprev, cnew, tc, hnew, cp):
    """g <- CELL(g), c' = f c + i g, CELL(c'), h' = o CELL(c') for one batch row (gates done)."""
    for k in range(g.shape[0]):
        gk = CELL_F(g[k], cp)
        cc = f[k] * cprev[k] + i[k] * gk
        t = CELL_F(cc, cp)
        g[k] = gk
        cnew[k] = cc
        tc[k] = t
        hnew[k] = o[k] * t


@kernel
def cell_forward_units(z, rT, cprev, cnew, hnew, tc, j0, j1, cp, gp):
    """One timestep for hidden units [j0, j1) of every batch row.
    z (B, 4H): input part of the pre-activations, overwritten with the gate outputs;
    rT (4H, B): recurrent part W_hh @ h_prev^T.
    Loops run over contiguous 1-D slices from index 0, so they vectorize when the activations
    do (no libm calls)."""
    B, H = cprev.shape
    for b in range(B):
        zb = z[b]
        i = zb[j0:j1]
        f = zb[H + j0:H + j1]
        g = zb[2 * H + j0:2 * H + j1]
        o = zb[3 * H + j0:3 * H + j1]
        add_column(i, rT[j0:j1], b)
        add_column(f, rT[H + j0:H + j1], b)
        add_column(g, rT[2 * H + j0:2 * H + j1], b)
        add_column(o, rT[3 * H + j0:3 * H + j1], b)
        gate_forward_loop(i, f, o, gp)
        cell_forward_loop(i, f, g, o, cprev[b][j0:j1], cnew[b][j0:j1], tc[b][j0:j1], hnew[b][j0:j1], cp)


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
def cell_backward_units(dHt, z, tc, cprev, dc, dGt, j0, j1, cp, gp):
    """Backward of one timestep for hidden units [j0, j1): dHt (B, H) = dL/dh_t (from above
    and from t+1); dc carries in from t+1 and out to t-1; writes dGt (B, 4H) = dL/da_t."""
    B, H = cprev.shape
    for b in range(B):
        zb = z[b]
        gb = dGt[b]
        cell_backward_loop(dHt[b][j0:j1], zb[j0:j1], zb[H + j0:H + j1], zb[2 * H + j0:2 * H + j1],
                           zb[3 * H + j0:3 * H + j1], tc[b][j0:j1], cprev[b][j0:j1], dc[b][j0:j1],
                           gb[j0:j1], gb[H + j0:H + j1], gb[2 * H + j0:2 * H + j1], gb[3 * H + j0:3 * H + j1],
                           cp, gp)


@pkernel
def forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, rT, cp, gp, nchunks):
    """All layers over all timesteps; Z[0] must already hold layer 0's input projection plus
    biases. Per layer: the input projection of the whole sequence (one GEMM), then the
    recurrence, where only W_hh @ h_{t-1} and the cell update run per timestep."""
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
            if not PARALLEL:
                if B == 1:
                    np.dot(Wl, Hl[t][0], rT.reshape(H4))
                else:
                    np.dot(Wl, Hl[t].T, rT)
                cell_forward_units(Zl[t], rT, Cl[t], Cl[t + 1], Hl[t + 1], TCl[t], 0, H, cp, gp)
            else:  # each chunk of hidden units: its rows of all four gates, then its cell update
                for ch in prange(nchunks):
                    j0, j1 = chunk(H, nchunks, ch)
                    if j1 > j0:
                        for q in range(4):
                            r0 = q * H + j0
                            r1 = q * H + j1
                            np.dot(Wl[r0:r1], Hl[t].T, rT[r0:r1])
                        cell_forward_units(Zl[t], rT, Cl[t], Cl[t + 1], Hl[t + 1], TCl[t], j0, j1, cp, gp)


@pkernel
def backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, dhT, dc, scratch, cp, gp, nchunks):
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
            rec = t < T - 1
            if not PARALLEL:
                if rec:  # dL/dh_t += da_{t+1} @ W_hh
                    if B == 1:
                        np.dot(dG[t + 1][0], Wl, dhT.reshape(H))
                    else:
                        np.dot(Wl.T, dG[t + 1].T, dhT)
                    for b in range(B):
                        add_column(dH[t][b], dhT, b)
                cell_backward_units(dH[t], Zl[t], TCl[t], Cl[t], dc, dG[t], 0, H, cp, gp)
            else:  # each chunk of hidden units: its columns of da_{t+1} @ W_hh, then its cell backward
                for ch in prange(nchunks):
                    j0, j1 = chunk(H, nchunks, ch)
                    if j1 > j0:
                        if rec:
                            for b in range(B):
                                add_vec_mat_cols(dH[t][b][j0:j1], dG[t + 1][b], Wl, j0, j1)
                        cell_backward_units(dH[t], Zl[t], TCl[t], Cl[t], dc, dG[t], j0, j1, cp, gp)
        mm_tn(dG2, Hs[layer][:T].reshape((N, H)), gW_hh[layer], scratch, nchunks)
        column_sums(dG2, gb_ih[layer])
        for m in range(H4):
            gb_hh[layer, m] = gb_ih[layer, m]
        if layer > 0:
            mm_tn(dG2, Hs[layer - 1][1:].reshape((N, H)), gW_ihR[layer - 1], scratch, nchunks)
            mm_nn(dG2, W_ihR[layer - 1], dH2, nchunks)


@kernel
def forward_lm(idx, tgt, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
               Z, Hs, Cs, TC, rT, P, cp, gp, nchunks):
    """Language model forward: idx, tgt (T, B) int64 -> mean cross-entropy; P (T*B, V) probs."""
    L, T, B, H4 = Z.shape
    H = H4 // 4
    gather_input(idx, W_ih0, b_ih[0], b_hh[0], Z[0])
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, rT, cp, gp, nchunks)
    mm_nt(Hs[L - 1][1:].reshape((T * B, H)), W_out, P, nchunks)
    return softmax_xent(P, b_out, tgt.reshape(T * B)) / (T * B)


@kernel
def backward_lm(idx, tgt, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                dL, dG, dH, dhT, dc, scratch, cp, gp, nchunks):
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
                   dG, dH, dhT, dc, scratch, cp, gp, nchunks)
    scatter_input(idx, dG, gW_ih0)


@kernel
def forward_cls(X, y, W_ih0, W_ihR, W_hh, b_ih, b_hh, W_out, b_out, h0, c0,
                Z, Hs, Cs, TC, rT, P, cp, gp, nchunks):
    """Sequence classification forward: X (T, B, F), y (B,) in {0, 1} -> mean binary
    cross-entropy of the logit W_out h_T + b_out; P (B,) = sigmoid(logit)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    Z0 = Z[0].reshape((T * B, H4))
    mm_nt(X.reshape((T * B, F)), W_ih0, Z0, nchunks)
    add_bias(Z0, b_ih[0], b_hh[0])
    forward_stack(W_ihR, W_hh, b_ih, b_hh, h0, c0, Z, Hs, Cs, TC, rT, cp, gp, nchunks)
    return bce_forward(Hs[L - 1][T], W_out, b_out, y, P)


@kernel
def backward_cls(X, y, W_ih0, W_ihR, W_hh, W_out, Z, Hs, Cs, TC, P,
                 gW_ih0, gW_ihR, gW_hh, gb_ih, gb_hh, gW_out, gb_out,
                 dG, dH, dhT, dc, scratch, cp, gp, nchunks):
    """Gradients of forward_cls's mean loss into the g* arrays (overwritten)."""
    L, T, B, H4 = Z.shape
    F = X.shape[2]
    bce_backward(Hs[L - 1][T], W_out, y, P, gW_out, gb_out, dH)
    backward_stack(W_ihR, W_hh, Z, Hs, Cs, TC, gW_ihR, gW_hh, gb_ih, gb_hh,
                   dG, dH, dhT, dc, scratch, cp, gp, nchunks)
    mm_tn(dG.reshape((T * B, H4)), X.reshape((T * B, F)), gW_ih0, scratch, nchunks)


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
        f"from {mjit.__name__} import JIT_OPTIONS, c",
        f"from {simd.__name__} import exp_core, _log1p_unit as log1p_unit",
        *imports,
        f"kernel = njit(fastmath={fm}, **JIT_OPTIONS)",
        f"pkernel = njit(parallel={bool(parallel)}, fastmath={fm}, **JIT_OPTIONS)",
        f"headkernel = njit(fastmath={_flags_text(HEAD_FASTMATH)}, **JIT_OPTIONS)",
        f"PARALLEL = {bool(parallel)}",
        "", "",
    ])


@lru_cache(maxsize=None)
def helpers(parallel: bool):
    """The activation-independent kernels (GEMM wrappers, heads, Adam): one generated module per
    variant, so a new activation pair compiles only the cell section."""
    text = _header(f"helpers, parallel={bool(parallel)}", parallel, []) + _section(_HELPERS)
    return codegen.load_module("lstm_numba_helpers", text, [inspect.getsourcefile(mjit), inspect.getsourcefile(simd)])


def _scalars(cell: str, gate: str) -> dict:
    _, ci = resolve_activation(cell, "cell")
    _, gi = resolve_activation(gate, "gate")
    return {"CELL_F": ci.forward, "CELL_DY": ci.dfdy, "GATE_F": gi.forward, "GATE_DY": gi.dfdy}


def cell_fastmath(cell: str, gate: str) -> frozenset:
    """The cell kernels' fastmath flags: the union of the four scalars' own. A scalar inlined at
    Numba IR level (``numba_simd``: ``inline="always"``) is lowered with its caller's flags, so
    the loop must carry them (as ``mathbench.kernels`` does); a scalar called as a function keeps
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
    deps |= {inspect.getsourcefile(mjit), inspect.getsourcefile(simd), hmod.__file__}
    return text + _section(_CELL), sorted(deps)


@lru_cache(maxsize=None)
def kernels(cell: str, gate: str, parallel: bool):
    """The generated, disk-cached kernel module for one (cell, gate, parallel) choice; it also
    exposes the helpers (``adam_update`` ...) it imports."""
    text, deps = module_text(cell, gate, parallel)
    return codegen.load_module("lstm_numba_kernels", text, deps)


# ---------------------------------------------------------------------------------------------
# the model


class _Workspace:
    """Preallocated buffers for one (T, B) shape: nothing is allocated per timestep."""

    def __init__(self, cfg: ModelConfig, T: int, B: int, max_chunks: int):
        L, H, O, dt = cfg.layers, cfg.hidden, cfg.n_out, cfg.np_dtype
        self.T, self.B = T, B
        self.Z = np.zeros((L, T, B, 4 * H), dt)
        self.Hs = np.zeros((L, T + 1, B, H), dt)
        self.Cs = np.zeros((L, T + 1, B, H), dt)
        self.TC = np.zeros((L, T, B, H), dt)
        self.rT = np.zeros((4 * H, B), dt)
        self.zeros_state = np.zeros((L, B, H), dt)
        lm = cfg.task == "lm"
        self.P = np.zeros((T * B, O) if lm else (B,), dt)
        self.dL = np.zeros((T * B, O), dt) if lm else None
        self.dG = np.zeros((T, B, 4 * H), dt)
        self.dH = np.zeros((T, B, H), dt)
        self.dhT = np.zeros((H, B), dt)
        self.dc = np.zeros((B, H), dt)
        self._big = max(4 * H * max(cfg.n_in, H), O * H)  # largest weight-gradient matrix
        self.scratch = np.zeros(1, dt)
        self.ensure_scratch(cfg, max_chunks)
        self.dummy_targets = np.zeros((T, B), np.int64) if lm else np.zeros(B, dt)
        self.inputs = self.targets = None

    def ensure_scratch(self, cfg: ModelConfig, nchunks: int) -> None:
        """Parallel weight gradients need one partial matrix per chunk."""
        if cfg.parallel and self.scratch.size < nchunks * self._big:
            self.scratch = np.zeros(nchunks * self._big, cfg.np_dtype)


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
        self._kernels = None
        self._ws: dict = {}
        self._last = None

    # -- plumbing
    @property
    def kernels(self):
        if self._kernels is None:
            self._kernels = kernels(self.config.cell, self.config.gate, bool(self.config.parallel))
        return self._kernels

    @property
    def nchunks(self) -> int:
        """Work chunks per parallel region: Numba's current thread count (1 when serial)."""
        return numba.get_num_threads() if self.config.parallel else 1

    def _workspace(self, T: int, B: int, nchunks: int) -> _Workspace:
        ws = self._ws.get((T, B))
        if ws is None:
            if len(self._ws) >= 8:
                self._ws.clear()
            ws = self._ws[(T, B)] = _Workspace(self.config, T, B, nchunks)
        ws.ensure_scratch(self.config, nchunks)
        return ws

    def _state(self, state, ws: _Workspace):
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
        """Allocate the buffers for batches of shape (T, B) now (not inside a timed call)."""
        self._workspace(T, B, self.nchunks)

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
        nch = self.nchunks
        ws = self._workspace(T, B, nch)
        h0, c0 = self._state(state, ws) if validate or state is None else state
        p = self.params
        fn = self.kernels.forward_lm if self.config.task == "lm" else self.kernels.forward_cls
        loss = fn(x, ws.dummy_targets if y is None else y, p.W_ih0, p.W_ihR, p.W_hh, p.b_ih, p.b_hh,
                  p.W_out, p.b_out, h0, c0, ws.Z, ws.Hs, ws.Cs, ws.TC, ws.rT, ws.P,
                  self.cell_param, self.gate_param, nch)
        ws.inputs, ws.targets = x, y
        self._last = ws
        return None if y is None else float(loss)

    def backward(self) -> Params:
        """Gradients of the last forward's mean loss (overwrites and returns ``self.grads``)."""
        ws = self._last
        if ws is None or ws.targets is None:
            raise UsageError("backward() needs a forward() with targets first")
        p, g, k = self.params, self.grads, self.kernels
        nch = self.nchunks
        ws.ensure_scratch(self.config, nch)
        if self.config.task == "lm":
            k.backward_lm(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                          ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                          ws.dL, ws.dG, ws.dH, ws.dhT, ws.dc, ws.scratch,
                          self.cell_param, self.gate_param, nch)
        else:
            k.backward_cls(ws.inputs, ws.targets, p.W_ih0, p.W_ihR, p.W_hh, p.W_out, ws.Z, ws.Hs, ws.Cs,
                           ws.TC, ws.P, g.W_ih0, g.W_ihR, g.W_hh, g.b_ih, g.b_hh, g.W_out, g.b_out,
                           ws.dG, ws.dH, ws.dhT, ws.dc, ws.scratch,
                           self.cell_param, self.gate_param, nch)
        return g

    def loss_and_grads(self, inputs, targets, state=None):
        loss = self.forward(inputs, targets, state)
        return loss, self.backward()

    def outputs(self) -> np.ndarray:
        """Probabilities of the last forward (a view, overwritten by the next call with the same
        shape): LM (T, B, V) softmax; classify (B,) sigmoid of the logit."""
        ws = self._last
        if ws is None:
            raise UsageError("outputs() needs a forward() first")
        if self.config.task == "lm":
            return ws.P.reshape(ws.T, ws.B, self.config.vocab_size)
        return ws.P

    def hidden(self) -> np.ndarray:
        """Top layer hidden states of the last forward, (T, B, H) (a view)."""
        return self._last.Hs[-1, 1:]

    def final_state(self):
        """(h, c) after the last timestep of the last forward, copies of shape (L, B, H)."""
        ws = self._last
        if ws is None:
            raise UsageError("final_state() needs a forward() first")
        return ws.Hs[:, -1].copy(), ws.Cs[:, -1].copy()

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
        scratch.loss_and_grads(x, y)
        from .optim import Adam

        Adam(scratch).step()
        return time.perf_counter() - t0


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
_N_ARRAYS = {"gate_forward_loop": (3, 1), "cell_forward_loop": (8, 1), "cell_backward_loop": (12, 2),
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
    (``mathbench.kernels.simd_info``). Numba cannot show the assembly of code loaded from its
    disk cache, so each loop is compiled once more uncached with the same options and types,
    and the facts are saved beside the cache (keyed by the generated module's hashed name)."""
    from mathbench.kernels import _load_simd_cache, _save_simd_cache, simd_info

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
