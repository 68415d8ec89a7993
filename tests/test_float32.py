"""float32 kernels must compute in float32: Numba silently promotes float32 op float64-literal
to double, which halves SIMD width and changes results. Read the LLVM IR of every float32
kernel (its own function and everything inlined into it) and require that no double appears."""
import re

import numba
import numpy as np
import pytest
from numba import njit

from lstm_numba import variants
from lstm_numba import sweep
from mathbench.core import jit
from mathbench.functions import kernels, registry


def _twin_functions(py_func, sig, parallel=False):
    """LLVM functions of ``py_func`` compiled for ``sig`` (and of everything it calls)."""
    # an uncached twin: Numba cannot show the IR of code loaded from its cache
    twin = numba.njit(**{**jit.JIT_OPTIONS, "cache": False, "parallel": parallel})(py_func)
    twin.compile(sig)
    funcs = re.split(r"(?m)^define ", twin.inspect_llvm(sig))[1:]
    # the CPython wrapper converts Python floats via double by design; it is not the kernel
    return [f for f in funcs if not re.match(r"[^\n]*@(_ZN7cpython|cfunc\.)", f)]


def _ir_functions(py_func, dtype):
    nt = numba.from_dtype(np.dtype(dtype))
    return _twin_functions(py_func, (numba.types.Array(nt, 1, "C"), nt, numba.types.Array(nt, 1, "C")))


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


# --------------------------------------------------------------------------------------------
# the LSTM: every generated module (kernels per pair and threading, helpers per threading), with
# the argument types the sweep really passes (an activation parameter passed as a Python float
# makes the whole cell compute in double)

PAIRS = sweep.Settings().pairs
# The parallel variants run the same kernel bodies and scalars as the serial ones, with prange: a
# promotion from a scalar shows in every pair's serial variant, one from a body in any pair's
# parallel variant, so one pair's parallel variant suffices (and saves a minute of compiling).
PARALLEL_PAIRS = PAIRS[:1]
LSTM_ENTRIES = {"kernels": ("forward_lm", "backward_lm", "forward_cls", "backward_cls", "infer_lm", "infer_cls"),
                "ops": ("adam_update",)}  # what Python calls; the IR of each holds every kernel it calls
TASK_OF = {"lm": "lm", "cls": "classify"}  # entry suffix -> the task module (template) that defines it
# Scalars computed in float64 on purpose (loss sums, 1/N, the gradient norm): their conversions
# are allowed; a float32 value converted to or from double anywhere else is a promotion.
FLOAT64_BY_DESIGN = {"softmax_xent", "softmax_xent_backward", "bce_forward", "bce_backward", "adam_update"}
PROMOTION = re.compile(r"fpext float|fptrunc double")
CALLEE = {"forward": "cell_forward_block", "infer": "cell_forward_block", "backward": "cell_backward_block",
          "adam": "adam_loop"}


def _lstm_module(kind, pair, parallel, entry):
    """The generated module that defines ``entry``: a task's (per pair and threading) or the ops'."""
    if kind == "ops":
        return variants.ops(parallel)
    return variants.task_kernels(TASK_OF[entry.rsplit("_", 1)[1]], *pair, parallel)


@pytest.fixture(scope="module")
def sweep_compiled():
    """Compile every float32 variant the default sweep runs, as the sweep does, for both tasks
    (signatures then hold the argument types of real calls): serial for every pair, parallel for
    the first (see PARALLEL_PAIRS)."""
    from lstm_numba import data as D

    s = sweep.Settings(tasks=list(sweep.TASKS), layers=[2], hidden=[4])
    ds = {"lm": D.default_text(), "classify": D.default_sensor()}
    for task in s.tasks:
        for thr in (1, 2):
            for v in sweep.variants(s, with_peer=False):
                if thr > 1 and (v.cell, v.gate) not in PARALLEL_PAIRS:
                    continue
                sweep.compile_variant(sweep.Config(task, 2, 4, "float32", thr), v, ds[task], s)


def _float32_signatures(disp):
    return [sig for sig in disp.signatures
            if any(isinstance(a, numba.types.Array) and a.dtype == numba.float32 for a in sig)]


def _define_name(func: str) -> str:
    """Python name in a mangled LLVM function name (``_ZN<len><module><len><name>...``)."""
    m = re.match(r"[^@\n]*@_ZN(\d+)", func)
    if not m:
        return ""
    rest = func[m.end() + int(m.group(1)):]
    n = re.match(r"\d+", rest)
    return rest[len(n.group()):len(n.group()) + int(n.group())] if n else ""


def test_lstm_float32_signatures_have_no_float64(sweep_compiled):
    modules = {_lstm_module(k, pair, par, e) for k in LSTM_ENTRIES for e in LSTM_ENTRIES[k] for pair in PAIRS
               for par in (False, True) if not par or pair in PARALLEL_PAIRS}
    checked = set()
    for mod in modules:
        for name, disp in vars(mod).items():
            if isinstance(disp, numba.core.registry.CPUDispatcher) and disp.py_func.__module__ == mod.__name__:
                for sig in _float32_signatures(disp):
                    assert numba.float64 not in sig, f"{name}: a float64 argument in a float32 call"
                    checked.add(name)
    # kernels loaded from the disk cache only get signatures where Python calls them: the entries
    assert {e for entries in LSTM_ENTRIES.values() for e in entries} <= checked


LSTM_CASES = [(k, pair, par, e) for k in LSTM_ENTRIES for pair in (PAIRS if k == "kernels" else PAIRS[:1])
              for par in (False, True) for e in LSTM_ENTRIES[k] if not par or pair in PARALLEL_PAIRS]


@pytest.mark.parametrize("kind,pair,parallel,entry", LSTM_CASES,
                         ids=[f"{'/'.join(p) if k == 'kernels' else k}-{'par' if par else 'ser'}-{e}"
                              for k, p, par, e in LSTM_CASES])
def test_lstm_float32_kernels_compute_in_float32(sweep_compiled, kind, pair, parallel, entry):
    disp = getattr(_lstm_module(kind, pair, parallel, entry), entry)
    sigs = _float32_signatures(disp)
    assert sigs, f"the sweep compiled no float32 {entry}"
    for sig in sigs:
        names = set()
        for f in _twin_functions(disp.py_func, sig, parallel):
            # parfor bodies are anonymous: they belong to the entry's own code
            name = _define_name(f)
            name = entry if name.startswith("__numba_parfor_gufunc") else name
            names.add(name)
            if name not in FLOAT64_BY_DESIGN:
                assert not PROMOTION.search(f), f"{name} (called by {entry}): {PROMOTION.search(f).group()}"
        # the kernels it calls were read too (linked in, even when loaded from the disk cache)
        assert CALLEE[entry.split("_")[0]] in names
