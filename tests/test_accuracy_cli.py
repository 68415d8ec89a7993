"""``python -m mathbench accuracy``: run folders, resume, and bad input (one line, exit 2)."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from mathbench import accuracy_cli
from mathbench.core import runs
from mathbench.cli import main


def _run(args, capsys):
    code = main(["accuracy", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_grid_run_writes_rows_and_resumes(tmp_path, capsys):
    out = tmp_path / "acc"
    code, text, _ = _run(["--functions", "tanh", "--implementations", "numba_simd,numpy", "--forms", "forward",
                          "--dtypes", "float32", "--out", str(out), "--no-progress"], capsys)
    assert code == 0 and "numba_simd" in text
    df, meta = runs.load_run(out)
    assert sorted(df["impl"]) == ["numba_simd", "numpy"] and set(df["mode"]) == {"grid"}
    assert df["within_bound"].astype(str).eq("True").all() and meta["finished"] is True
    # the same command again measures nothing new; a wider one adds only the missing row
    code, _, _ = _run(["--functions", "tanh", "--implementations", "numba_simd,numpy,numba_rational", "--forms",
                       "forward", "--dtypes", "float32", "--out", str(out), "--no-progress"], capsys)
    df, meta = runs.load_run(out)
    assert code == 0 and len(df) == 3 and meta["kernels_checked"] == 1 and meta["kernels_resumed"] == 2
    assert len(meta["sessions"]) == 1


def test_exhaustive_columns_hold_a_histogram(tmp_path, monkeypatch, capsys):
    # a small float64 grid keeps this quick; the float32 path is tested in test_simd_kernels
    out = tmp_path / "exh"
    code, _, _ = _run(["--exhaustive", "--functions", "exp", "--implementations", "numba_simd", "--forms",
                       "forward", "--dtypes", "float64", "--f64-points", "2e4", "--out", str(out), "--no-progress"],
                      capsys)
    assert code == 0
    row = pd.read_csv(out / runs.RESULTS).iloc[0]
    bins = [c for c in accuracy_cli.COLUMNS if c.startswith("n_ulp_")]
    assert row[bins].sum() == row["n_inputs"] > 20_000
    assert row["mode"] == "exhaustive" and row["max_ulp"] <= row["bound_ulp"]


@pytest.mark.parametrize("args,message", [
    (["--functions", "tahn"], "unknown function 'tahn'"),
    (["--implementations", "numba_fast"], "unknown implementation 'numba_fast'"),
    (["--forms", "d2fdx2"], "unknown form 'd2fdx2'"),
    (["--dtypes", "float16"], "unknown dtype 'float16'"),
    (["--functions", ""], "--functions is empty"),
    (["--implementations", ""], "--implementations is empty"),
    (["--exhaustive", "--functions", "relu"], "relu has no wide-precision reference"),
    (["--f64-points", "nan"], "--f64-points"),
    (["--functions", "relu", "--implementations", "numba_simd"], "nothing to check"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    code, text, err = _run([*args, "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and text == ""
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_unwritable_out_is_one_line(tmp_path, capsys):
    # a folder inside a regular file cannot be created, for root too (a read-only folder can)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, text, err = _run(["--functions", "tanh", "--forms", "forward", "--out", str(blocker / "acc")], capsys)
    assert code == 2 and text == "" and err.count("\n") == 1 and "Traceback" not in err
    assert str(blocker) in err and blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_out_parent_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, _, err = _run(["--functions", "tanh", "--forms", "forward", "--out", str(ro / "acc")], capsys)
    assert code == 2 and err.count("\n") == 1 and "not writable" in err


def test_out_that_is_a_file_is_refused_in_a_fresh_process(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = subprocess.run([sys.executable, "-m", "mathbench", "accuracy", "--functions", "tanh", "--out", str(f)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert f.read_text() == "x"
