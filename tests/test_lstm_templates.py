"""The LSTM's kernel templates (mathbench.templating): a generated module is its template's text unchanged
plus a footer naming the template and the variant; the footer's rebindings are what compiles;
a template kernel the footer forgot is an error, not a silent plain-Python call."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from lstm_numba import model, ops, variants
from mathbench import templating
from lstm_numba.tasks import TASKS


@pytest.mark.parametrize("which", ["ops", "model", "lm", "classify"])
def test_generated_module_is_the_template_unchanged_plus_a_footer(which):
    gen = {"ops": lambda: variants.ops(False), "model": lambda: variants.cell_kernels("isru", "sigmoid", False),
           "lm": lambda: variants.task_kernels("lm", "tanh", "sigmoid", False),
           "classify": lambda: variants.task_kernels("classify", "tanh", "sigmoid", False)}[which]()
    template = {"ops": ops, "model": model}.get(which) or TASKS[which].template
    text = open(gen.__file__).read()
    src = templating.source_file(template).read_text()
    assert text.startswith(src)
    footer = text[len(src):]
    assert f"GENERATED from the template {template.__name__}" in footer and "_jit_all(globals()" in footer
    # every kernel the template defines is a dispatcher there, defined on the template's own line
    names = templating.marked(template)
    assert names
    for n in names:
        d = getattr(gen, n)
        assert isinstance(d, CPUDispatcher), n
        assert d.py_func.__code__.co_firstlineno == getattr(template, n).__code__.co_firstlineno, n


def test_footer_binds_the_chosen_scalars_and_the_generated_ops():
    gen = variants.cell_kernels("isru", "isru_sigmoid", True)
    from mathbench import registry

    assert gen.CELL_F is registry.resolve("isru")[1].forward
    assert gen.GATE_DY is registry.resolve("isru_sigmoid")[1].dfdy
    assert gen.PARALLEL is True and model.PARALLEL is False  # the template itself is untouched
    assert gen.mm_nt is variants.ops(True).mm_nt  # the ops kernels of the same variant
    assert gen.step_forward.targetoptions["parallel"] is True
    assert gen.cell_forward_loop.targetoptions.get("parallel", False) is False
    assert variants.ops(False).rec_rows.targetoptions["fastmath"] == set(ops.DOT_FASTMATH)  # a fixed() mark


def _write_template(tmp_path, monkeypatch, body: str):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MATHBENCH_CACHE_DIR", str(tmp_path / "cache"))  # the probe's generated module
    (tmp_path / "tmpl_probe.py").write_text(body)
    sys.modules.pop("tmpl_probe", None)
    import tmpl_probe

    return tmpl_probe


def test_a_template_kernel_the_footer_does_not_rebind_is_an_error(tmp_path, monkeypatch):
    t = _write_template(tmp_path, monkeypatch, "from lstm_numba.ops import chunk\n"
                        "from mathbench import kernel\n\n\n"
                        "@kernel\ndef half(n):\n    return chunk(n, 2, 0)[1]\n")
    assert t.half(10) == 5  # runs as plain Python
    with pytest.raises(templating.TemplateError, match="chunk"):
        templating.generate(t, "probe, no footer", [], [], False)
    with pytest.raises(templating.TemplateError, match="lstm_numba.ops"):
        templating.imports_of(t, {})  # no generated variant of ops offered
    footer = templating.imports_of(t, {"lstm_numba.ops": variants.ops(False)})
    gen = templating.generate(t, "probe", footer, [], False)
    assert isinstance(gen.half, CPUDispatcher) and gen.half(10) == 5 and gen.chunk is variants.ops(False).chunk


def test_template_kernels_run_as_plain_python_like_the_compiled_ones():
    """One timestep of the cell, template (plain Python, default tanh/sigmoid) against the
    generated variant and against a direct NumPy statement of the math."""
    rng = np.random.default_rng(0)
    B, H = 3, 4
    W = rng.normal(size=(4 * H, H))
    z0 = rng.normal(size=(B, 4 * H))
    h, c = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    out = {}
    for name, k in (("plain", model), ("compiled", variants.cell_kernels("tanh", "sigmoid", False))):
        z, R = z0.copy(), np.zeros((B, 4 * H))
        cn, hn, tc = np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, H))
        k.step_forward(W, z, h, c, cn, hn, tc, R, True, False, 0.0, 0.0, 1)
        out[name] = (cn, hn)
    np.testing.assert_array_equal(out["plain"][0], out["compiled"][0])
    np.testing.assert_array_equal(out["plain"][1], out["compiled"][1])
    a = z0 + h @ W.T
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    c2 = f * c + i * g
    np.testing.assert_allclose(out["plain"][0], c2, rtol=1e-12)
    np.testing.assert_allclose(out["plain"][1], o * np.tanh(c2), rtol=1e-12)
