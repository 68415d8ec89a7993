"""Array kernels for every registry entry, form, dtype and threading mode.

Numba kernels are the loops of the template ``functions.loops`` (``mathbench.templating``),
generated per registry scalar, serial or parallel, and cached on disk. NumPy and torch
implementations are wrapped to the same call signature ``call(x, p, out)`` so the harness treats
every candidate alike.
"""
from __future__ import annotations

import importlib
import inspect
import json
import platform
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numba
import numpy as np

from ..core import codegen, jit, templating
from . import loops, registry


def _scalar_functions() -> dict:
    """Every distinct Numba scalar the registry uses: (module, name) -> its source file."""
    out = {}
    for act in registry.REGISTRY.values():
        for impl in act.impls.values():
            if impl.backend != "numba":
                continue
            for form in registry.FORMS:
                fn = impl.fn(form)
                if fn is not None and not is_array_kernel(fn):
                    py = fn.py_func
                    out[(py.__module__, py.__name__)] = inspect.getsourcefile(py)
    return out


def kernel_name(module: str, fn: str, parallel: bool) -> str:
    """The public name of the loop around scalar ``module.fn`` (its generated module's prefix)."""
    return f"k_{module.replace('.', '_')}__{fn}__{'par' if parallel else 'ser'}"


@lru_cache(maxsize=None)
def _depends_on() -> tuple:
    """What every generated loop depends on besides its text: all the scalars' files (a scalar may
    call jitted helpers of another, and Numba's cache only notices edits to the loop's own file)
    and the JIT options."""
    return tuple(sorted({*_scalar_functions().values(), inspect.getsourcefile(jit)}))


@lru_cache(maxsize=None)
def _variant(module: str, fn: str, parallel: bool):
    """The generated module of ``loops`` around the scalar ``module.fn`` (imported once per
    process): the loop takes the scalar's own fastmath flags (see ``loops``)."""
    scalar = getattr(importlib.import_module(module), fn)
    return templating.generate(loops, f"SCALAR={module}.{fn}, parallel={bool(parallel)}",
                               [f"from {module} import {fn} as SCALAR"], list(_depends_on()), parallel,
                               scalar.targetoptions.get("fastmath", False),
                               prefix="mathbench_kernels_" + kernel_name(module, fn, parallel))


@lru_cache(maxsize=None)
def _copy_variant(parallel: bool):
    """The generated module whose ``copy`` loop is the memory roof (no scalar, no fastmath)."""
    return templating.generate(loops, f"copy only (SCALAR unbound), parallel={bool(parallel)}", [],
                               [inspect.getsourcefile(jit)], parallel,
                               prefix=f"mathbench_kernels_k_copy__{'par' if parallel else 'ser'}")


# --------------------------------------------------------------------------------------------
# SIMD detection from the compiled assembly

_PACKED_X86 = re.compile(
    r"^\s*(v?(?:add|sub|mul|div|sqrt|max|min|and|andn|or|xor|blendv|cmp\w*|f\w*madd\w*|f\w*msub\w*|round)p[sd])\b(.*)$",
    re.M,
)
_MOVES_X86 = re.compile(r"^\s*(v?mov(?:up|ap)[sd]|v?movdq[au]\w*)\b(.*)$", re.M)
_NEON = re.compile(r"\bv\d+\.(\d+)([sd])\b")
_LIBM = re.compile(r"\b(tanhf?|expf?|expm1f?|log1pf?|logf?|powf?|sqrtf?)(?:@PLT)?\b")
# x86_64 vector-function ABI names (libmvec): _ZGV<isa>N<lanes>v_<name>; isa b = SSE (128 bit),
# c/d = AVX/AVX2 (256), e = AVX-512 (512)
_VECTOR_CALL = re.compile(r"\b_ZGV([bcde])N\d+v_(\w+)")
_ISA_BITS = {"b": 128, "c": 256, "d": 256, "e": 512}


def simd_info(asm: str, machine: Optional[str] = None) -> dict:
    """{'vectorized': bool|None, 'simd_bits': int|None, 'libm_calls': 'tanhf,...'} from assembly.
    ``None`` where the architecture's assembly is not understood: unknown, not False."""
    machine = (machine or platform.machine()).lower()
    vector_calls = _VECTOR_CALL.findall(asm)
    asm_scalar = _VECTOR_CALL.sub("", asm)  # a _ZGV name is not a call of scalar libm
    libm = ",".join(sorted({m for m in _LIBM.findall(asm_scalar) if not m.startswith("sqrt")}))
    if vector_calls and not libm:  # the math is in the vector functions: their width is the loop's
        return {"vectorized": True, "simd_bits": max(_ISA_BITS[isa] for isa, _ in vector_calls), "libm_calls": ""}
    asm = asm_scalar
    if machine in ("x86_64", "amd64", "i686", "i386"):
        hits = _PACKED_X86.findall(asm) or _MOVES_X86.findall(asm)
        if not hits:
            return {"vectorized": False, "simd_bits": None, "libm_calls": libm}
        bits = 128
        for _, operands in hits:
            if "zmm" in operands:
                bits = max(bits, 512)
            elif "ymm" in operands:
                bits = max(bits, 256)
        # A loop that calls scalar libm per element is "vectorized" only around the calls.
        return {"vectorized": not libm, "simd_bits": bits, "libm_calls": libm}
    if machine in ("aarch64", "arm64"):
        lanes = _NEON.findall(asm)
        return {"vectorized": bool(lanes) and not libm, "simd_bits": 128 if lanes else None, "libm_calls": libm}
    return {"vectorized": None, "simd_bits": None, "libm_calls": libm}


@lru_cache(maxsize=None)
def _facts_version() -> str:
    """Hash of what the facts depend on: every kernel's code and how its assembly is read (this file)."""
    arrays = {inspect.getsourcefile(fn.serial.py_func) for act in registry.REGISTRY.values()
              for impl in act.impls.values() if impl.backend == "numba"
              for fn in map(impl.fn, registry.FORMS) if fn is not None and is_array_kernel(fn)}
    files = {*_depends_on(), *arrays, inspect.getsourcefile(loops), inspect.getsourcefile(templating), __file__}
    return codegen.source_hash("", sorted(files))


def _simd_cache_path() -> Path:
    return codegen.cache_dir() / f"simd-mathbench_kernels_{_facts_version()}.json"


def _load_simd_cache(path: Optional[Path] = None) -> dict:
    """The saved SIMD facts (this module's file, or ``path``: the LSTM keeps its own); a damaged
    file (truncated, not a JSON object) is discarded and the facts are worked out again."""
    path = path or _simd_cache_path()
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict) or not all(isinstance(v, dict) for v in cache.values()):
            raise ValueError("not a JSON object of objects")
        return cache
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        codegen.discard(path, e)
        return {}


def compiled_asm(dispatcher, sig) -> str:
    """Assembly of ``dispatcher`` for ``sig`` as its options compile it. Numba cannot show the
    assembly of code loaded from its disk cache, so an uncached twin with the same options
    (parallel, fastmath: the flags change the code) is compiled for it."""
    opts = {k: v for k, v in dispatcher.targetoptions.items() if k != "nopython"}  # njit implies it
    twin = numba.njit(**{**opts, "cache": False})(dispatcher.py_func)
    twin.compile(sig)
    return twin.inspect_asm(sig)


def _kernel_simd(dispatcher, sig) -> dict:
    """SIMD facts for one compiled signature. Numba cannot show assembly of code loaded from its
    cache, so the facts are saved beside the cache when first compiled; if they are missing, an
    uncached twin is compiled once to read them. Keyed by module and name: every generated
    loop's function is called ``elementwise``, its module names the scalar."""
    key = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__name__}|{sig}"
    cache = _load_simd_cache()
    if key in cache:
        return cache[key]
    asm = dispatcher.inspect_asm(sig) if not dispatcher.stats.cache_hits.get(sig) else compiled_asm(dispatcher, sig)
    info = simd_info(asm)
    cache = _load_simd_cache()
    cache[key] = info
    codegen.save_json(_simd_cache_path(), cache)
    return info


# --------------------------------------------------------------------------------------------


@dataclass
class Kernel:
    """One timed candidate: ``call(x, p, out)`` writes form(x) into out."""

    function: str
    impl: str
    backend: str
    form: str
    dtype: str
    parallel: bool
    call: Callable
    param: float
    compile_seconds: float = 0.0
    cache_hit: bool = False
    vectorized: Optional[bool] = None
    simd_bits: Optional[int] = None
    libm_calls: str = ""
    libm: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.function}/{self.form}/{self.impl}/{self.dtype}/{'par' if self.parallel else 'ser'}"


def is_array_kernel(fn) -> bool:
    """A hand-vectorized array kernel (``libmvec.ArrayKernel``: serial/parallel dispatchers
    taking (x, p, out)) rather than a scalar f(x, p) that a generated loop wraps."""
    return hasattr(fn, "serial") and hasattr(fn, "parallel")


def numba_dispatcher(fn, parallel: bool):
    """The array kernel for a registry form ``fn``: the generated loop around a scalar, or
    the array kernel's own dispatcher."""
    if is_array_kernel(fn):
        return fn.parallel if parallel else fn.serial
    py = fn.py_func
    return _variant(py.__module__, py.__name__, bool(parallel)).elementwise


def copy_dispatcher(parallel: bool):
    return _copy_variant(bool(parallel)).copy


def _compile(dispatcher, dtype: str, scalar=None) -> tuple[float, bool, tuple]:
    """Compile (or load from cache) for 1-D contiguous arrays of dtype; return (seconds, hit, sig).
    A damaged cache file of the kernel or of the ``scalar`` function it calls is replaced."""
    nt = numba.from_dtype(np.dtype(dtype))
    sig = (numba.types.Array(nt, 1, "C"), nt, numba.types.Array(nt, 1, "C"))
    t0 = time.perf_counter()
    codegen.compile_cached(dispatcher, sig, [scalar] if scalar is not None else [])
    seconds = time.perf_counter() - t0
    hit = bool(dispatcher.stats.cache_hits.get(sig))
    return seconds, hit, sig


def get(function: str, impl: str, form: str, dtype: str, parallel: bool = False) -> Kernel:
    """Build (and for Numba, compile) one kernel. Raises registry.UnknownName for bad names."""
    act = registry.get(function)
    im = act.impl(impl) if impl in act.impls else None
    if im is None:
        raise registry.UnknownName(f"unknown implementation {impl!r} for {function}; valid: {', '.join(act.impls)}")
    fn = im.fn(form)
    if fn is None:
        raise registry.UnknownName(f"{function} has no {form} form")
    p = np.dtype(dtype).type(act.param_default)
    k = Kernel(function, impl, im.backend, form, dtype, parallel, None, p, libm=im.libm, note=im.note)
    if im.backend == "numba":
        disp = numba_dispatcher(fn, parallel)
        k.compile_seconds, k.cache_hit, sig = _compile(disp, dtype, None if is_array_kernel(fn) else fn)
        k.call = disp
        k.__dict__.update(_kernel_simd(disp, sig))
    elif im.backend == "numpy":
        if parallel:
            raise registry.UnknownName("numpy implementations are single-threaded; use parallel=False")
        k.call = fn
    elif im.backend == "torch":
        k.call = _torch_call(fn)
    return k


def copy_kernel(dtype: str, parallel: bool = False) -> Kernel:
    """The memory roof: out[i] = x[i], same loop shape as the function kernels."""
    disp = copy_dispatcher(parallel)
    k = Kernel("copy", "numba", "numba", "forward", dtype, parallel, disp, np.dtype(dtype).type(0))
    k.compile_seconds, k.cache_hit, sig = _compile(disp, dtype)
    k.__dict__.update(_kernel_simd(disp, sig))
    return k


def _torch_call(fn):
    import torch

    cache = {}

    def call(x, p, out):
        # Wrap the same NumPy buffers (zero-copy), once per buffer pair.
        key = (x.ctypes.data, out.ctypes.data, x.size)
        if key not in cache:
            cache.clear()
            cache[key] = (torch.from_numpy(x), torch.from_numpy(out))
        xt, ot = cache[key]
        fn(xt, p, ot)

    return call


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
