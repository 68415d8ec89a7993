"""mathbench's array kernels come from the template ``mathbench.functions.loops``: runnable as
plain Python, generated per scalar as its text unchanged plus a footer naming template and scalar,
compiled to the same numbers, and the SIMD facts of two scalars' loops kept apart."""
from __future__ import annotations

import json

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from mathbench import templating
from mathbench.functions import kernels, loops, registry


def _scalar(function: str, impl: str = "numba"):
    return registry.get(function).impl(impl).forward


def _generated(function: str, impl: str = "numba", parallel: bool = False):
    py = _scalar(function, impl).py_func
    return kernels._variant(py.__module__, py.__name__, parallel)


def test_loops_template_runs_as_plain_python(monkeypatch):
    x = np.linspace(-4, 4, 33)
    out = np.full_like(x, np.nan)
    loops.elementwise(x, 2.0, out)  # the default SCALAR: tanh
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-15, atol=0)
    monkeypatch.setattr(loops, "SCALAR", lambda v, p: p * v + 1.0)  # SCALAR is what the loop calls
    loops.elementwise(x, 3.0, out)
    np.testing.assert_array_equal(out, 3.0 * x + 1.0)
    loops.copy(x, 0.0, out)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("function,impl,parallel", [("isru", "numba", False), ("isru", "numba_rsqrt", True)])
def test_generated_loop_is_the_template_unchanged_plus_a_footer_naming_the_scalar(function, impl, parallel):
    scalar = _scalar(function, impl)
    gen = _generated(function, impl, parallel)
    text = open(gen.__file__).read()
    src = templating.source_file(loops).read_text()
    assert text.startswith(src)
    footer = text[len(src):]
    py = scalar.py_func
    assert "GENERATED from the template mathbench.functions.loops" in footer
    assert f"from {py.__module__} import {py.__name__} as SCALAR" in footer
    assert gen.SCALAR is scalar and loops.SCALAR is not scalar  # the template itself is untouched
    k = gen.elementwise
    assert isinstance(k, CPUDispatcher)
    assert k.py_func.__code__.co_firstlineno == loops.elementwise.__code__.co_firstlineno
    assert k.targetoptions.get("parallel", False) is parallel
    # the loop takes the scalar's own fastmath flags (numba_rsqrt's arcp/afn/contract, else none)
    want = scalar.targetoptions.get("fastmath", False)
    assert k.targetoptions.get("fastmath", False) == (set(want) if want else False)
    assert kernels.numba_dispatcher(scalar, parallel) is k


def test_generated_kernel_gives_the_plain_templates_numbers(monkeypatch):
    """Compiled loop over a registry scalar == the template run as plain Python over the
    scalar's Python function (float64, no fastmath: the same IEEE operations)."""
    x = np.linspace(-30, 30, 1001)
    p = registry.get("isru").param_default
    k = kernels.get("isru", "numba", "forward", "float64")
    compiled = np.full_like(x, np.nan)
    k.call(x, p, compiled)
    monkeypatch.setattr(loops, "SCALAR", _scalar("isru").py_func)
    plain = np.full_like(x, np.nan)
    loops.elementwise(x, p, plain)
    np.testing.assert_array_equal(compiled, plain)
    np.testing.assert_allclose(plain, x / np.sqrt(1 + p * x * x), rtol=1e-15)  # and it is isru
    roof = kernels.copy_kernel("float64")
    copied = np.full_like(x, np.nan)
    roof.call(x, 0.0, copied)
    np.testing.assert_array_equal(copied, x)


def test_simd_facts_of_two_scalars_have_their_own_keys(tmp_path, monkeypatch):
    """Every generated loop's function is called ``elementwise``: keyed by that name alone, the
    second scalar would be given the first one's facts."""
    monkeypatch.setenv("MATHBENCH_CACHE_DIR", str(tmp_path))  # a fresh facts file
    a = kernels.get("isru", "numba", "forward", "float32")
    b = kernels.get("relu", "numba", "forward", "float32")
    facts = json.loads(kernels._simd_cache_path().read_text())
    assert kernels._simd_cache_path().parent == tmp_path
    keys = sorted(facts)
    assert len(keys) == 2
    for k in (a, b):
        (key,) = [n for n in keys if n.startswith(k.call.py_func.__module__ + ".elementwise|")]
        assert {f: facts[key][f] for f in ("vectorized", "simd_bits", "libm_calls")} == \
            {"vectorized": k.vectorized, "simd_bits": k.simd_bits, "libm_calls": k.libm_calls}
