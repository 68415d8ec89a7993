"""The notebooks' loader: finds the committed reference runs and refuses anything else clearly."""
import json

import pytest

from mathbench.report import nbtools
from mathbench.core.errors import UsageError


def test_reference_runs_exist_and_load():
    ref = nbtools.reference_runs()
    assert set(nbtools.KINDS) <= set(ref)
    df, meta, where = nbtools.load("mathbench")
    assert meta["kind"] == "mathbench" and len(df) > 0
    df, meta, where = nbtools.load("lstm")
    assert meta["kind"] == "lstm" and len(df) > 0
    report, _, where = nbtools.load("verify")
    assert report["ok"] is True and report["counts"]["fail"] == 0


@pytest.mark.parametrize("make,needle", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "no metadata.json"),
    (lambda p: (p.mkdir(), (p / "metadata.json").write_text("{oops")), "malformed"),
    (lambda p: (p.mkdir(), (p / "metadata.json").write_text("{}")), "no results.csv"),
])
def test_rejects_a_folder_that_is_not_a_run(tmp_path, make, needle):
    where = tmp_path / "notarun"
    make(where)
    with pytest.raises(UsageError, match=needle):
        nbtools.load("mathbench", where)


def test_rejects_a_run_of_another_kind(tmp_path):
    where = tmp_path / "run"
    where.mkdir()
    (where / "metadata.json").write_text(json.dumps({"kind": "lstm"}))
    (where / "results.csv").write_text("a\n1\n")
    with pytest.raises(UsageError, match="not a 'mathbench' run"):
        nbtools.load("mathbench", where)


def test_environment_variable_points_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHBENCH_MATHBENCH_RUN", str(tmp_path / "elsewhere"))
    with pytest.raises(UsageError, match="elsewhere"):
        nbtools.load("mathbench")


def test_unknown_kind():
    with pytest.raises(UsageError, match="unknown kind"):
        nbtools.locate("nope")


@pytest.mark.parametrize("argv, fragment", [
    (["--help-me"], "unrecognized arguments"),
    (["nosuch.ipynb"], "not a notebook file"),
    (["README.md"], "not a notebook file"),
])
def test_nbrun_bad_input_one_line_exit_2(capsys, argv, fragment):
    from mathbench.report import nbrun

    assert nbrun.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and fragment in err


def test_nbrun_malformed_notebook(tmp_path, capsys):
    from mathbench.report import nbrun

    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [')  # cut off
    assert nbrun.main([str(bad)]) == 2
    assert "not a readable notebook" in capsys.readouterr().err


def test_nbrun_without_jupyter_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    from mathbench.report import nbrun

    good = tmp_path / "ok.ipynb"
    good.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setitem(sys.modules, "nbclient", None)  # import nbclient -> ImportError
    assert nbrun.main([str(good)]) == 2
    assert "pip install -e '.[notebooks]'" in capsys.readouterr().err
