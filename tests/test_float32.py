"""float32 kernels must compute in float32: Numba silently promotes float32 op float64-literal
to double, which halves SIMD width and changes results. Read the LLVM IR of every float32
kernel (its own function and everything inlined into it) and require that no double appears."""
import re

import numba
import numpy as np
import pytest
from numba import njit

from mathbench import jit, kernels, registry


def _ir_functions(py_func, dtype):
    nt = numba.from_dtype(np.dtype(dtype))
    sig = (numba.types.Array(nt, 1, "C"), nt, numba.types.Array(nt, 1, "C"))
    # an uncached twin: Numba cannot show the IR of code loaded from its cache
    twin = numba.njit(**{**jit.JIT_OPTIONS, "cache": False})(py_func)
    twin.compile(sig)
    funcs = re.split(r"(?m)^define ", twin.inspect_llvm(sig))[1:]
    # the CPython wrapper converts Python floats via double by design; it is not the kernel
    return [f for f in funcs if not re.match(r"[^\n]*@(_ZN7cpython|cfunc\.)", f)]


def _uses_double(py_func, dtype):
    return any(re.search(r"\bdouble\b", f) for f in _ir_functions(py_func, dtype))


SCALARS = sorted({(a.name, f, i.fn(f)) for a in registry.REGISTRY.values() for i in a.impls.values()
                  if i.backend == "numba" for f in registry.FORMS
                  if i.fn(f) is not None and not kernels.is_array_kernel(i.fn(f))},
                 key=lambda t: (t[0], t[1], t[2].py_func.__name__))
# hand-vectorized array kernels (libmvec): their own IR is the kernel
ARRAY_KERNELS = sorted({(a.name, f, i.name) for a in registry.REGISTRY.values() for i in a.impls.values()
                        if i.backend == "numba" for f in registry.FORMS
                        if i.fn(f) is not None and kernels.is_array_kernel(i.fn(f))})


@pytest.mark.parametrize("name,form,fn", SCALARS, ids=[f"{n}-{f}-{fn.py_func.__name__}" for n, f, fn in SCALARS])
def test_float32_kernel_has_no_double(name, form, fn):
    disp = kernels.numba_dispatcher(fn, parallel=False)
    assert not _uses_double(disp.py_func, "float32")


@pytest.mark.parametrize("name,form,impl", ARRAY_KERNELS, ids=[f"{n}-{f}-{i}" for n, f, i in ARRAY_KERNELS])
def test_float32_array_kernel_has_no_double(name, form, impl):
    disp = kernels.numba_dispatcher(registry.get(name).impls[impl].fn(form), parallel=False)
    assert not _uses_double(disp.py_func, "float32")


def test_float64_kernels_do_use_double():
    # the check looks at the right thing: the float64 specialisation does compute in double
    disp = kernels.numba_dispatcher(registry.get("isru").impls["numba"].forward, parallel=False)
    assert _uses_double(disp.py_func, "float64")


@njit(error_model="numpy")
def _promotes(x, p):
    return x * 0.5 + p  # a float64 literal: the bug this test exists to catch


def _bad_kernel(x, p, out):
    for i in range(x.shape[0]):
        out[i] = _promotes(x[i], p)


def test_detects_a_float64_literal():
    assert _uses_double(_bad_kernel, "float32")
