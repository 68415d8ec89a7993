"""The mathbench command line: an end-to-end smoke run, the results files, and every bad-input
path (one line on stderr, exit code 2, no traceback, nothing earlier overwritten)."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from mathbench import bench, cli
from mathbench.core import threads

TINY = ["--functions", "isru,tanh", "--implementations", "numba,numpy", "--dtypes", "float32",
        "--sizes", "100,1000", "--threads", "1", "--budget", "0.02", "--samples", "3", "--no-progress",
        "--processes", "1"]  # one worker process: the multi-process path has its own tests


def run(args, capsys):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(args, capsys, *needles):
    code, out, err = run(args, capsys)
    assert code == 2, (code, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python -m mathbench --quick --processes 2`` in a subprocess: the real entry point, two workers."""
    out = tmp_path_factory.mktemp("runs") / "quick"
    proc = subprocess.run([sys.executable, "-m", "mathbench", "--quick", "--processes", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_quick_run_writes_tidy_csv_and_metadata(quick_run):
    out, proc = quick_run
    df = pd.read_csv(out / "results.csv")
    meta = json.loads((out / "metadata.json").read_text())
    assert set(bench.COLUMNS) == set(df.columns)
    # one row per function x form x impl x dtype x size x threads
    key = ["function", "form", "impl", "dtype", "size", "threads"]
    assert not df.duplicated(key).any()
    assert {"tanh", "isru", "copy", "plus"} <= set(df["function"])
    assert set(df["size"]) == {1000, 100000}
    assert (df["ns_per_element"] > 0).all() and (df["ns_lo"] <= df["ns_per_element"]).all()
    assert (df["ns_per_element"] <= df["ns_hi"]).all()
    # ratios are present where a baseline was measured in the same group
    tanh = df[(df["function"] == "tanh") & (df["impl"] == "numba")]
    assert (tanh["speedup_vs_tanh"] == 1.0).all()
    isru = df[(df["function"] == "isru") & (df["impl"] == "numba") & (df["form"] == "forward")]
    assert isru["speedup_vs_np_tanh"].notna().all() and isru["roof_fraction"].notna().all()
    # accuracy columns sit beside the timings, and every implementation meets its bound
    assert df.loc[df["function"] != "copy", "max_ulp"].notna().all()
    assert df.loc[df["function"] != "copy", "within_bound"].astype(str).eq("True").all()
    for k in ("cpu", "cores", "versions", "svml", "threads", "git", "command", "created", "timing"):
        assert k in meta, k
    assert meta["versions"]["numba"] and meta["command"].startswith("python -m mathbench")
    assert meta["timing"]["compile_wall_seconds"] >= 0
    assert "speedup vs tanh" in proc.stdout and "relative cost" in proc.stdout
    # stderr is a pipe, not a terminal: sparse plain progress lines, not silence and not a bar
    progress = proc.stderr.splitlines()
    assert "timing 1/2: start, 2" in progress and len(progress) < 40, proc.stderr
    assert [line.split(":")[0] for line in progress if "start" in line] == \
        ["compile", "accuracy", "timing 1/2", "timing 2/2"]
    # two worker processes, each loading every kernel from the cache the parent filled
    assert meta["timing"]["processes"] == 2 and meta["timing"]["process_kernels_compiled"] == [0, 0]
    assert (df["processes"] == 2).all() and (df["interval_method"] == "t95-processes").all()
    assert (df["rounds"] >= 2 * df["rounds_per_process"]).all()
    assert "Student-t 95% across 2 processes" in proc.stdout and "bootstrap" not in proc.stdout


def test_compare_two_runs(quick_run, tmp_path, capsys):
    out, _ = quick_run
    code, text, err = run(["compare", str(out), str(out), "--csv", str(tmp_path / "cmp.csv")], capsys)
    assert code == 0, err
    cmp = pd.read_csv(tmp_path / "cmp.csv")
    assert (cmp["speedup"] == 1.0).all() and not cmp["differs"].any()
    assert (cmp["speedup_lo"] <= 1.0).all() and (cmp["speedup_hi"] >= 1.0).all()


def _older_run():
    """A committed reference run written before intervals across processes (no interval_method)."""
    from mathbench.core import runs

    for d in sorted((runs.PROJECT_ROOT / "results").glob("mathbench-*")):
        if (d / "results.csv").exists() and "interval_method" not in pd.read_csv(d / "results.csv", nrows=0):
            return d
    pytest.skip("no committed run from before --processes")


def test_report_and_compare_read_older_runs(quick_run, capsys):
    old = _older_run()
    code, text, err = run(["report", str(old)], capsys)
    assert code == 0, err
    assert "bootstrap of one process's rounds (older run: not a 95% interval of run-to-run spread)" in text
    code, text, err = run(["compare", str(old), str(quick_run[0])], capsys)
    assert code == 0, err
    assert "intervals A: medians; intervals: bootstrap" in text
    assert "intervals B: geometric means of per-process medians; intervals: Student-t 95% across 2 processes" in text


def test_report_reprints_summary(quick_run, capsys):
    code, text, _ = run(["report", str(quick_run[0])], capsys)
    assert code == 0 and "ns/element" in text


def test_list(capsys):
    code, text, _ = run(["--list"], capsys)
    assert code == 0 and "isru" in text and "numba_rational" in text


def test_tiny_run_in_process(tmp_path, capsys):
    code, out, err = run(TINY + ["--out", str(tmp_path / "r"), "--no-accuracy"], capsys)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(df["impl"]) == {"numba", "numpy"} and (df["threads"] == 1).all()
    # one process, 3 rounds: the interval is the range of the rounds, and says so (never "95%")
    assert (df["processes"] == 1).all() and (df["interval_method"] == "range-rounds").all()
    assert "range [min, max] of 3 rounds in 1 process (not 95%" in out
    assert "95%" not in out.split("relative cost")[0].replace("not 95%", "")


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("args,needles", [
    (["--functions", "tanhh"], ["unknown function 'tanhh'", "isru"]),
    (["--implementations", "fortran"], ["unknown implementation 'fortran'", "numba_rational"]),
    (["--dtypes", "float16"], ["unknown dtype 'float16'", "float32"]),
    (["--sizes", "0"], ["must be positive"]),
    (["--sizes", "-5"], ["must be positive"]),
    (["--sizes", "1.5"], ["not a whole number"]),
    (["--sizes", "ten"], ["--sizes 'ten': not a whole number"]),
    (["--sizes", ","], ["--sizes is empty"]),
    (["--sizes", "1e13"], ["GiB", "available"]),
    (["--threads", "0"], ["must be positive"]),
    (["--threads", str(threads.max_threads() + 1)], ["out of range"]),
    (["--threads", "two"], ["not a whole number"]),
    (["--forms", "integral"], ["unknown form"]),
    (["--budget", "-1"], ["--budget"]),
    (["--bogus"], ["unrecognized arguments"]),
    (["--processes", "0"], ["--processes 0", "1..100"]),
    (["--processes", "abc"], ["--processes", "'abc'"]),
    (["--processes", "1.5"], ["--processes", "'1.5'"]),
])
def test_bad_input_one_line_exit_2(args, needles, capsys, tmp_path):
    assert_usage_error(args + ["--out", str(tmp_path / "never")], capsys, *needles)
    assert not (tmp_path / "never").exists()  # refused before creating anything


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("precious\n")
    assert_usage_error(TINY + ["--out", str(out)], capsys, "never overwritten")
    assert (out / "results.csv").read_text() == "precious\n"


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_usage_error(TINY + ["--out", str(blocker / "sub")], capsys, "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_parent(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert_usage_error(TINY + ["--out", str(ro / "x")], capsys, "not writable")


@pytest.mark.parametrize("setup,needle", [
    ("missing", "does not exist"),
    ("empty", "no metadata.json"),
    ("bad_json", "malformed"),
    ("no_csv", "no results.csv"),
    ("wrong_columns", "not a mathbench run"),
])
def test_compare_rejects_bad_run_folders(setup, needle, tmp_path, capsys):
    good = tmp_path / "good"
    assert cli.main(TINY + ["--out", str(good), "--no-accuracy", "--sizes", "100"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    if setup != "missing":
        bad.mkdir()
    if setup in ("bad_json", "no_csv", "wrong_columns"):
        (bad / "metadata.json").write_text("{not json" if setup == "bad_json" else "{}")
    if setup == "wrong_columns":
        (bad / "results.csv").write_text("a,b\n1,2\n")
    assert_usage_error(["compare", str(good), str(bad)], capsys, needle)
    assert_usage_error(["compare", str(bad), str(good)], capsys, needle)
