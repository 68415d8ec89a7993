"""Array kernels that call glibc's vector math library (libmvec) from Numba.

Numba >= 0.62 has no SVML, and LLVM's own route to libmvec does not work from Numba 0.68 /
llvmlite 0.50: with ``-vector-library=LIBMVEC`` (or ``LIBMVEC-X86``) set through
``llvmlite.binding.set_option`` a fastmath ``math.exp`` loop is vectorized to
``llvm.exp.v8f64`` in the IR, but code generation scalarizes it back into calls of ``exp``; no
``_ZGV...`` symbol appears in the assembly. So this module calls the vector functions
explicitly: a Numba ``@intrinsic`` emits LLVM IR that declares e.g.
``<8 x float> @_ZGVdN8v_tanhf(<8 x float>)`` and calls it on 8 floats loaded from the array
(the AVX2 "d" variants of the x86_64 vector function ABI: argument and result in ymm0).
``llvmlite.binding.load_library_permanently`` makes the symbols resolvable in Numba's JIT, also
for kernels loaded from Numba's on-disk cache, because this module loads the library when it is
imported, before any kernel is compiled or loaded.

Loop shape: ``for j in range(n // L)`` (``prange`` in the parallel kernels) processes one
vector of L lanes (8 float32 or 4 float64) per iteration; the < L remaining elements go through
the same vector function once, with a masked load (inactive lanes read as 0, no memory touched
past the end) and a masked store. Everything around the call (|x|, selects, divisions) is
emitted as LLVM vector instructions in the input's own float type, so float32 kernels compute
in float32 only.

Every kernel has the harness signature ``kernel(x, p, out)`` for 1-D C-contiguous float32 or
float64 arrays of the same dtype (``p`` is ignored) and is compiled with ``cache=True,
error_model="numpy"``. Call them only when :func:`available` is True (x86_64 Linux, AVX2,
libmvec with the needed symbols: the tanh and log1p variants are GLIBC_2.35, exp GLIBC_2.22).

Functions and forms (one :class:`ArrayKernel` each, serial and parallel dispatcher):

=================  ==========================================================================
``TANH``           tanh(x)                             vector tanhf / tanh
``TANH_DFDX``      1 - t^2, computed as (1 - t)(1 + t)  t from vector tanh
``TANH_DFDX_EXP``  sech^2 x = 4e/(1+e)^2, e = exp(-2|x|)   accurate where 1 - t^2 cancels
``EXP``            e^x (also its dfdx)                 vector expf / exp
``SIGMOID``        e = exp(-|x|): 1/(1+e) for x >= 0, e/(1+e) for x < 0 (one division)
``SIGMOID_DFDX``   e/(1+e)^2
``SOFTPLUS``       max(x, 0) + log1p(exp(-|x|))          vector exp and log1p
``SOFTPLUS_DFDX``  sigmoid(x) (the SIGMOID kernel)
=================  ==========================================================================

``KERNELS`` maps (function, form) to these, with ``("exp", "dfdx")`` and
``("softplus", "dfdx")`` naming the same objects as ``EXP`` and ``SIGMOID``. ``TANH_DFDX``
is 1 - t^2 as the other tanh kernels compute it; it loses all relative accuracy as |x| grows
(t rounds towards 1), so ``TANH_DFDX_EXP`` is the one to use where relative error matters.
"""
from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass
from functools import lru_cache

import llvmlite.binding as llb
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..core.jit import JIT_OPTIONS

LIBRARY = "libmvec.so.1"

#: The AVX2 ("d") variants: 8 float32 / 4 float64 lanes in one ymm register.
SYMBOLS = {
    32: {"tanh": "_ZGVdN8v_tanhf", "exp": "_ZGVdN8v_expf", "log1p": "_ZGVdN8v_log1pf"},
    64: {"tanh": "_ZGVdN4v_tanh", "exp": "_ZGVdN4v_exp", "log1p": "_ZGVdN4v_log1p"},
}
LANES = {32: 8, 64: 4}


@lru_cache(maxsize=None)
def _probe() -> tuple[bool, str]:
    """(ok, reason). Loads libmvec into the process and into LLVM's symbol search when ok."""
    try:
        if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
            return False, f"needs x86_64 Linux, this is {platform.system()} {platform.machine()}"
        features = llb.get_host_cpu_features()
        if not (features.get("avx2") and features.get("avx")):
            return False, "the CPU has no AVX2 (the _ZGVd* variants need it)"
        # Numba compiles for $NUMBA_CPU_FEATURES when set. Without AVX there (e.g. with
        # NUMBA_CPU_NAME=generic NUMBA_CPU_FEATURES=+sse2,+64bit) LLVM passes <8 x float> in
        # xmm0/xmm1 instead of ymm0: a silent ABI mismatch (tanh came out wrong by up to 1.7).
        from numba.core import config

        if config.CPU_FEATURES is not None:
            jit_features = set(config.CPU_FEATURES.replace(" ", "").split(","))
            if not {"+avx", "+avx2"} <= jit_features:
                return False, "NUMBA_CPU_FEATURES does not enable +avx and +avx2"
        lib = ctypes.CDLL(LIBRARY)
        missing = [s for table in SYMBOLS.values() for s in table.values() if not hasattr(lib, s)]
        if missing:
            return False, f"{LIBRARY} lacks {', '.join(missing)} (glibc < 2.35?)"
        llb.load_library_permanently(LIBRARY)
        return True, ""
    except Exception as exc:  # never raise: a missing library or odd platform means "no"
        return False, f"{type(exc).__name__}: {exc}"


def available() -> bool:
    """True when the kernels can run here: x86_64 Linux, AVX2, libmvec with every symbol used."""
    return _probe()[0]


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    return _probe()[1]


# Load the library at import, so kernels loaded from Numba's cache resolve their symbols.
_probe()


# --------------------------------------------------------------------------------------------
# LLVM IR building blocks

def _vec_type(bits: int) -> ir.VectorType:
    return ir.VectorType(ir.FloatType() if bits == 32 else ir.DoubleType(), LANES[bits])


def _splat(vty: ir.VectorType, value: float) -> ir.Constant:
    return ir.Constant(vty, [value] * vty.count)


class _V:
    """Vector helpers bound to one builder and float width."""

    def __init__(self, builder: ir.IRBuilder, bits: int):
        self.b = builder
        self.bits = bits
        self.vty = _vec_type(bits)

    def const(self, value: float):
        return _splat(self.vty, value)

    def libmvec(self, name: str, v):
        fnty = ir.FunctionType(self.vty, [self.vty])
        fn = cgutils.get_or_insert_function(self.b.module, fnty, SYMBOLS[self.bits][name])
        return self.b.call(fn, [v])

    def fabs(self, v):
        suffix = f"v{self.vty.count}f{self.bits}"
        fn = cgutils.get_or_insert_function(self.b.module, ir.FunctionType(self.vty, [self.vty]),
                                            f"llvm.fabs.{suffix}")
        return self.b.call(fn, [v])

    def neg(self, v):
        return self.b.fneg(v)

    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def select_lt0(self, x, if_neg, otherwise):
        """Lanewise x < 0 ? if_neg : otherwise (NaN and -0 take ``otherwise``)."""
        return self.b.select(self.b.fcmp_ordered("<", x, self.const(0.0)), if_neg, otherwise)

    def select_gt0(self, x, if_pos, otherwise):
        """Lanewise x > 0 ? if_pos : otherwise (NaN takes ``otherwise``)."""
        return self.b.select(self.b.fcmp_ordered(">", x, self.const(0.0)), if_pos, otherwise)


# The math of each kernel on one vector x (a _V and an LLVM vector value -> vector value).

def _op_tanh(V, x):
    return V.libmvec("tanh", x)


def _op_tanh_dfdx(V, x):
    t = V.libmvec("tanh", x)
    one = V.const(1.0)
    return V.mul(V.sub(one, t), V.add(one, t))  # = 1 - t*t, without the rounding of t*t


def _op_tanh_dfdx_exp(V, x):
    e = V.libmvec("exp", V.mul(V.fabs(x), V.const(-2.0)))  # exp(-2|x|) in [0, 1]
    d = V.add(V.const(1.0), e)
    return V.div(V.mul(V.const(4.0), e), V.mul(d, d))  # sech^2 x = 4e/(1+e)^2, no cancellation


def _op_exp(V, x):
    return V.libmvec("exp", x)


def _op_sigmoid(V, x):
    e = V.libmvec("exp", V.neg(V.fabs(x)))  # in (0, 1]: never overflows
    one = V.const(1.0)
    return V.div(V.select_lt0(x, e, one), V.add(one, e))


def _op_sigmoid_dfdx(V, x):
    e = V.libmvec("exp", V.neg(V.fabs(x)))
    d = V.add(V.const(1.0), e)
    return V.div(e, V.mul(d, d))


def _op_softplus(V, x):
    e = V.libmvec("exp", V.neg(V.fabs(x)))
    return V.add(V.select_gt0(x, x, V.const(0.0)), V.libmvec("log1p", e))


# --------------------------------------------------------------------------------------------
# The block intrinsic: out[i:i+m] = op(x[i:i+m]) for m <= L lanes, one vector call

def _block_intrinsic(op):
    def typer(typingctx, x, out, i, m):
        ok = (isinstance(x, types.Array) and isinstance(out, types.Array)
              and x.ndim == 1 and out.ndim == 1 and x.dtype == out.dtype
              and x.dtype in (types.float32, types.float64)
              and isinstance(i, types.Integer) and isinstance(m, types.Integer))
        if not ok:
            return None
        bits = x.dtype.bitwidth

        def codegen(context, builder, sig, args):
            V = _V(builder, bits)
            L = V.vty.count
            xa = context.make_array(sig.args[0])(context, builder, args[0])
            oa = context.make_array(sig.args[1])(context, builder, args[1])
            start = context.cast(builder, args[2], sig.args[2], types.intp)
            count = context.cast(builder, args[3], sig.args[3], types.intp)
            ity = context.get_value_type(types.intp)
            # Lanes [0, count) are active; count == L (a constant in the main loop) folds the
            # masked load/store into plain vector moves.
            lane = ir.Constant(ir.VectorType(ity, L), list(range(L)))
            cnt = builder.insert_element(ir.Constant(ir.VectorType(ity, L), ir.Undefined), count,
                                         ir.Constant(ir.IntType(32), 0))
            cnt = builder.shuffle_vector(cnt, cnt, ir.Constant(ir.VectorType(ir.IntType(32), L), [0] * L))
            mask = builder.icmp_signed("<", lane, cnt)
            mty = ir.VectorType(ir.IntType(1), L)
            align = ir.Constant(ir.IntType(32), bits // 8)
            vptr = V.vty.as_pointer()
            suffix = f"v{L}f{bits}.p0"
            load = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(V.vty, [vptr, ir.IntType(32), mty, V.vty]),
                f"llvm.masked.load.{suffix}")
            store = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [V.vty, vptr, ir.IntType(32), mty]),
                f"llvm.masked.store.{suffix}")
            src = builder.bitcast(builder.gep(xa.data, [start]), vptr)
            dst = builder.bitcast(builder.gep(oa.data, [start]), vptr)
            v = builder.call(load, [src, align, mask, V.const(0.0)])
            builder.call(store, [op(V, v), dst, align, mask])
            return context.get_dummy_value()

        return types.void(x, out, i, m), codegen

    typer.__name__ = f"_blk{op.__name__}"
    return intrinsic(typer)


_blk_tanh = _block_intrinsic(_op_tanh)
_blk_tanh_dfdx = _block_intrinsic(_op_tanh_dfdx)
_blk_tanh_dfdx_exp = _block_intrinsic(_op_tanh_dfdx_exp)
_blk_exp = _block_intrinsic(_op_exp)
_blk_sigmoid = _block_intrinsic(_op_sigmoid)
_blk_sigmoid_dfdx = _block_intrinsic(_op_sigmoid_dfdx)
_blk_softplus = _block_intrinsic(_op_softplus)


def _lanes(x):  # pragma: no cover - replaced by the overload inside jitted code
    return LANES[np.asarray(x).dtype.itemsize * 8]


@overload(_lanes, inline="always")
def _lanes_overload(x):
    if isinstance(x, types.Array) and x.dtype in (types.float32, types.float64):
        lanes = LANES[x.dtype.bitwidth]
        return lambda x: lanes
    return None


def _check(x, out):  # pragma: no cover - replaced by the overload inside jitted code
    pass


@overload(_check, inline="always")
def _check_overload(x, out):
    def impl(x, out):
        if out.shape[0] < x.shape[0]:
            raise ValueError("out is shorter than x")
    return impl


# --------------------------------------------------------------------------------------------
# The kernels: serial and parallel loop per block intrinsic (module-level so cache=True works)

_SER = dict(JIT_OPTIONS, cache=True, error_model="numpy")
_PAR = dict(_SER, parallel=True)


@njit(**_SER)
def tanh_forward_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_tanh(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh(x, out, n - r, r)


@njit(**_PAR)
def tanh_forward_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_tanh(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh(x, out, n - r, r)


@njit(**_SER)
def tanh_dfdx_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_tanh_dfdx(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh_dfdx(x, out, n - r, r)


@njit(**_PAR)
def tanh_dfdx_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_tanh_dfdx(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh_dfdx(x, out, n - r, r)


@njit(**_SER)
def tanh_dfdx_exp_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_tanh_dfdx_exp(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh_dfdx_exp(x, out, n - r, r)


@njit(**_PAR)
def tanh_dfdx_exp_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_tanh_dfdx_exp(x, out, j * L, L)
    r = n % L
    if r:
        _blk_tanh_dfdx_exp(x, out, n - r, r)


@njit(**_SER)
def exp_forward_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_exp(x, out, j * L, L)
    r = n % L
    if r:
        _blk_exp(x, out, n - r, r)


@njit(**_PAR)
def exp_forward_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_exp(x, out, j * L, L)
    r = n % L
    if r:
        _blk_exp(x, out, n - r, r)


@njit(**_SER)
def sigmoid_forward_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_sigmoid(x, out, j * L, L)
    r = n % L
    if r:
        _blk_sigmoid(x, out, n - r, r)


@njit(**_PAR)
def sigmoid_forward_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_sigmoid(x, out, j * L, L)
    r = n % L
    if r:
        _blk_sigmoid(x, out, n - r, r)


@njit(**_SER)
def sigmoid_dfdx_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_sigmoid_dfdx(x, out, j * L, L)
    r = n % L
    if r:
        _blk_sigmoid_dfdx(x, out, n - r, r)


@njit(**_PAR)
def sigmoid_dfdx_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_sigmoid_dfdx(x, out, j * L, L)
    r = n % L
    if r:
        _blk_sigmoid_dfdx(x, out, n - r, r)


@njit(**_SER)
def softplus_forward_ser(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in range(n // L):
        _blk_softplus(x, out, j * L, L)
    r = n % L
    if r:
        _blk_softplus(x, out, n - r, r)


@njit(**_PAR)
def softplus_forward_par(x, p, out):
    _check(x, out)
    n = x.shape[0]
    L = _lanes(x)
    for j in prange(n // L):
        _blk_softplus(x, out, j * L, L)
    r = n % L
    if r:
        _blk_softplus(x, out, n - r, r)


# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrayKernel:
    """One function/form: ``serial(x, p, out)`` and ``parallel(x, p, out)`` (Numba dispatchers)
    for 1-D contiguous float32/float64 x and out of the same dtype; p is ignored.
    ``symbols`` maps the float width to the libmvec functions the kernel calls."""

    name: str
    serial: object
    parallel: object
    symbols: dict

    def __call__(self, x, p, out, parallel: bool = False):
        (self.parallel if parallel else self.serial)(x, p, out)


def _syms(*names):
    return {bits: tuple(SYMBOLS[bits][n] for n in names) for bits in SYMBOLS}


TANH = ArrayKernel("tanh/forward", tanh_forward_ser, tanh_forward_par, _syms("tanh"))
TANH_DFDX = ArrayKernel("tanh/dfdx", tanh_dfdx_ser, tanh_dfdx_par, _syms("tanh"))
TANH_DFDX_EXP = ArrayKernel("tanh/dfdx (exp)", tanh_dfdx_exp_ser, tanh_dfdx_exp_par, _syms("exp"))
EXP = ArrayKernel("exp/forward", exp_forward_ser, exp_forward_par, _syms("exp"))
SIGMOID = ArrayKernel("sigmoid/forward", sigmoid_forward_ser, sigmoid_forward_par, _syms("exp"))
SIGMOID_DFDX = ArrayKernel("sigmoid/dfdx", sigmoid_dfdx_ser, sigmoid_dfdx_par, _syms("exp"))
SOFTPLUS = ArrayKernel("softplus/forward", softplus_forward_ser, softplus_forward_par,
                       _syms("exp", "log1p"))
EXP_DFDX = EXP
SOFTPLUS_DFDX = SIGMOID

#: (function, form) -> ArrayKernel
KERNELS = {
    ("tanh", "forward"): TANH,
    ("tanh", "dfdx"): TANH_DFDX,
    ("exp", "forward"): EXP,
    ("exp", "dfdx"): EXP_DFDX,
    ("sigmoid", "forward"): SIGMOID,
    ("sigmoid", "dfdx"): SIGMOID_DFDX,
    ("softplus", "forward"): SOFTPLUS,
    ("softplus", "dfdx"): SOFTPLUS_DFDX,
}
