"""``mathbench verify`` (issue 3): every check passes for the real registry, and each kind of
check fails when handed a deliberately wrong formula or a kernel with a small bug."""
import dataclasses
import json
import math

import pytest
import sympy as sp

from mathbench.functions import registry
from mathbench.accuracy import verify
from mathbench.core.errors import UsageError, run_cli
from mathbench.core.jit import c, jit

x, y = registry.x, registry.y
ISSUE_FUNCTIONS = ("tanh", "isru", "softplus", "sigmoid", "softsign", "elu", "isrlu", "isru_sigmoid")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The whole verifier once, through main(): (exit code, stdout, JSON report)."""
    import contextlib
    import io

    path = tmp_path_factory.mktemp("verify") / "report.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = verify.main(["--json", str(path)])
    return code, buf.getvalue(), json.loads(path.read_text())


def test_every_check_passes_for_the_real_registry(full_run):
    code, text, report = full_run
    failed = [f"{c['function']} {c['check']}: {c['detail']}" for c in report["checks"] if c["status"] == "fail"]
    assert not failed, "\n".join(failed)
    assert code == 0 and report["ok"]


def test_every_kind_of_check_ran_on_the_issue_functions(full_run):
    _, _, report = full_run
    done = {(c["function"], c["check"]): c for c in report["checks"]}
    for name in ISSUE_FUNCTIONS:
        for check in ("derivative", "antiderivative", "backprop", "limits", "at zero"):
            assert done[(name, check)]["status"] == "pass", (name, check)
        kernel_rows = [c for (f, ck), c in done.items() if f == name and ck.startswith("kernel numba ")]
        assert {r["check"].rsplit(" ", 1)[1] for r in kernel_rows} == set(registry.FORMS)
    for name in ("tanh", "isru", "softplus", "sigmoid", "isru_sigmoid"):
        assert done[(name, "series")]["status"] == "pass"
    # isru with symbolic alpha > 0
    assert "alpha" in done[("isru", "limits")]["detail"]
    assert "alpha" in report["functions"]["isru"]["series"]["text"]


def test_derived_facts_are_computed(full_run):
    _, text, report = full_run
    facts = {f["name"]: f for f in report["facts"]}
    assert facts["taylor_isru_tanh"]["value"] == 3  # x - x^3/2 vs x - x^3/3
    assert "x**3/2" in facts["taylor_isru_tanh"]["text"] and "x**3/3" in facts["taylor_isru_tanh"]["text"]
    assert facts["max_gap_isru_tanh"]["value"] == pytest.approx(0.0736882, abs=1e-6)
    assert facts["max_gap_isru_tanh"]["data"]["x"] == pytest.approx(1.621954, abs=1e-5)
    assert facts["max_gap_isru_sigmoid"]["value"] == pytest.approx(facts["max_gap_isru_tanh"]["value"] / 2)
    assert facts["alpha_at_zero_isru_tanh"]["value"] == pytest.approx(2 / 3)
    assert facts["alpha_at_zero_isru_sigmoid_sigmoid"]["value"] == pytest.approx(2 / 3)
    a = facts["alpha_ls_isru_tanh"]["value"]
    assert 0.5 < a < 1 and facts["alpha_ls_isru_sigmoid"]["value"] == pytest.approx(a, rel=1e-10)
    assert facts["alpha_ls_isru_tanh"]["data"]["interval"] == [-3, 3]
    assert "Derived facts" in text and "0.07368824" in text


def test_text_and_json_carry_the_formulas(full_run):
    _, text, report = full_run
    assert "Formulas" in text and "Checks" in text
    tanh = report["functions"]["tanh"]["formulas"]
    assert tanh["antiderivative"]["text"] == "log(cosh(x))"
    assert tanh["dfdx"]["latex"] == r"1 - \tanh^{2}{\left(x \right)}"
    assert report["functions"]["softplus"]["formulas"]["antiderivative"]["latex"].startswith(r"- \operatorname{Li}_{2}")
    assert report["functions"]["isru"]["formulas"]["antiderivative"]["text"] == "sqrt(alpha*x**2 + 1)/alpha"
    for c in report["checks"]:
        assert set(c) >= {"function", "check", "status", "method", "detail"}
    assert report["counts"]["pass"] + report["counts"]["n/a"] == len(report["checks"])


def test_latex_output(capsys):
    assert verify.main(["--functions", "isru", "--latex", "--no-kernels"]) == 0
    out = capsys.readouterr().out
    assert r"\frac{x}{\sqrt{\alpha x^{2} + 1}}" in out


# --------------------------------------------------------------------------------------------
# each kind of check catches a mutation

a = registry.get("isru").symbol


def _mut(name, **changes):
    return dataclasses.replace(registry.get(name), **changes)


@pytest.mark.parametrize("act", [
    _mut("isru", dfdx=(1 + a * x ** 2) ** sp.Rational(-1, 2)),
    _mut("tanh", dfdx=1 - sp.tanh(x)),
    _mut("softsign", dfdx=1 / (1 + sp.Abs(x))),
    _mut("elu", dfdx=sp.Piecewise((1, x > 0), (a * sp.exp(x) + a, True))),
    _mut("isru_sigmoid", dfdx=2 / (4 + a * x ** 2) ** sp.Rational(1, 2)),
], ids=["isru", "tanh", "softsign", "elu", "isru_sigmoid"])
def test_wrong_derivative_is_caught(act):
    assert verify.check_derivative(act).status == "fail"


@pytest.mark.parametrize("act", [
    _mut("isru", antiderivative=sp.sqrt(1 + a * x ** 2)),  # right only for alpha = 1
    _mut("softplus", antiderivative=sp.polylog(2, -sp.exp(x))),
    _mut("tanh", antiderivative=sp.log(sp.sinh(x))),
    # right derivative on each side, but a jump at 0: not an antiderivative on R
    _mut("relu", antiderivative=sp.Piecewise((x ** 2 / 2 + 1, x > 0), (0, True))),
    _mut("elu", antiderivative=sp.Piecewise((x ** 2 / 2, x > 0), (a * (sp.exp(x) - x), True))),
], ids=["isru-alpha", "softplus-sign", "tanh", "relu-jump", "elu-jump"])
def test_wrong_antiderivative_is_caught(act):
    assert verify.check_antiderivative(act).status == "fail"


@pytest.mark.parametrize("act", [
    _mut("isru", dfdy=(1 - a * y ** 2) ** sp.Rational(1, 2)),
    _mut("tanh", dfdy=1 - y),
    _mut("sigmoid", dfdy=y * (1 + y)),
    _mut("softplus", dfdy=1 - sp.exp(y)),
    _mut("elu", dfdy=sp.Piecewise((1, y > 0), (y + 2 * a, True))),  # piecewise: the numeric path
    _mut("isrlu", dfdy=sp.Piecewise((1, y >= 0), ((1 - a * y ** 2) ** sp.Rational(1, 2), True))),
], ids=["isru", "tanh", "sigmoid", "softplus", "elu", "isrlu"])
def test_wrong_backprop_form_is_caught(act):
    c = verify.check_backprop(act)
    assert c.status == "fail", c


@pytest.mark.parametrize("act", [
    _mut("tanh", out_range=(-1, 2)),
    _mut("isru", out_range=(-1, 1)),  # ignores alpha
    _mut("softplus", out_range=(-sp.oo, sp.oo)),
    _mut("hard_sigmoid", out_range=(0, 2)),  # piecewise
], ids=["tanh", "isru-alpha", "softplus", "hard_sigmoid"])
def test_wrong_output_range_is_caught(act):
    assert verify.check_limits(act).status == "fail"


def test_wrong_slope_at_zero_and_series_are_caught():
    wrong = _mut("tanh", dfdx=2 - sp.tanh(x) ** 2)
    assert verify.check_at_zero(wrong).status == "fail"
    assert verify.check_series(wrong).status == "fail"
    kink = _mut("leaky_relu", dfdx=sp.Piecewise((1, x > 0), (2 * registry.get("leaky_relu").symbol, True)))
    assert verify.check_at_zero(kink).status == "fail"


def test_wrong_isru_sigmoid_breaks_the_derived_facts():
    acts = {n: registry.get(n) for n in ("tanh", "isru", "sigmoid", "isru_sigmoid")}
    acts["isru_sigmoid"] = _mut("isru_sigmoid", f=sp.Rational(1, 2) + x / (2 * sp.sqrt(1 + a * x ** 2)))
    _, checks = verify.derived_facts(acts)
    assert {c.check for c in checks if c.status == "fail"} >= {"fact: max |isru_sigmoid - sigmoid|",
                                                               "fact: least-squares alpha"}


# kernels with a small bug


@jit
def _isru_no_clamp(x, a):  # NaN at +-inf (inf/inf): the clamp is the point of the real one
    return x / math.sqrt(c(x, 1.0) + a * x * x)


@jit
def _softplus_naive(x, p):  # overflows to inf for large x
    return math.log1p(math.exp(x))


@jit
def _tanh_dy_sign(y, p):  # 1 + y^2 instead of 1 - y^2 for negative y
    return c(y, 1.0) - y * abs(y)


@jit
def _sigmoid_a_bit_off(x, p):  # 1 - 2^-20 relative: a "small" constant typo
    e = math.exp(-abs(x))
    r = c(x, 0.99999905) / (c(x, 1.0) + e)
    return r if x >= c(x, 0.0) else (e * r if x < c(x, 0.0) else x)


def _np_tanh_dx_wrong(x, p, out):
    import numpy as np

    np.tanh(x, out=out)
    np.subtract(1.0, out, out=out)  # 1 - t instead of 1 - t^2


@pytest.mark.parametrize("function,impl,form,fn", [
    ("isru", "numba", "forward", _isru_no_clamp),
    ("softplus", "numba", "forward", _softplus_naive),
    ("tanh", "numba", "dfdy", _tanh_dy_sign),
    ("sigmoid", "numba", "forward", _sigmoid_a_bit_off),
    ("tanh", "numpy", "dfdx", _np_tanh_dx_wrong),
], ids=["isru-no-clamp", "softplus-overflow", "tanh-dy-sign", "sigmoid-constant", "numpy-tanh-dx"])
def test_kernel_with_a_small_bug_is_caught(function, impl, form, fn):
    act = registry.get(function)
    bad = dataclasses.replace(act.impl(impl), **{form: fn})
    mutated = dataclasses.replace(act, impls={impl: bad})
    rows = verify.check_kernels(mutated)
    by = {r.check: r for r in rows}
    assert by[f"kernel {impl} {form}"].status == "fail"
    assert all(r.status == "pass" for k, r in by.items() if k != f"kernel {impl} {form}")


def test_wrong_formula_fails_the_kernel_cross_check_too():
    rows = verify.check_kernels(_mut("isru", dfdy=(1 - a * y ** 2) ** sp.Rational(1, 2)), backends=("numba",))
    # every Numba implementation's g(y) now disagrees with the (wrong) formula
    assert {r.check for r in rows if r.status == "fail"} == {"kernel numba dfdy", "kernel numba_pow dfdy",
                                                              "kernel numba_rsqrt dfdy"}


# --------------------------------------------------------------------------------------------
# the command line


def test_exit_code_1_when_a_check_fails(monkeypatch, capsys):
    monkeypatch.setitem(registry.REGISTRY, "tanh", _mut("tanh", dfdy=1 - y))
    assert verify.main(["--functions", "tanh", "--no-kernels"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "tanh backprop" in out


@pytest.mark.parametrize("argv,msg", [
    (["--functions", "tanh,nope"], "unknown function 'nope'; valid: tanh, isru"),
    (["--functions", ""], "--functions is empty"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_exit_2(argv, msg, capsys):
    assert run_cli(verify.main, argv, prog="mathbench verify") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mathbench verify: error: ") and msg in err
    with pytest.raises(UsageError):
        verify.main(argv)


def test_json_to_an_unwritable_place_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    for target in (f / "report.json", tmp_path / "missing" / "report.json", tmp_path):
        assert run_cli(verify.main, ["--functions", "tanh", "--no-kernels", "--json", str(target)],
                       prog="mathbench verify") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--json" in err


def test_json_written_for_a_subset(tmp_path, capsys):
    path = tmp_path / "v.json"
    assert verify.main(["--functions", "softsign,relu", "--no-kernels", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert set(report["functions"]) == {"softsign", "relu"} and report["facts"] == []
    assert not [c for c in report["checks"] if c["check"].startswith("kernel")]
