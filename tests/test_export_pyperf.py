"""``mathbench export RUN --pyperf FILE.json``: pyperf reads the file back (one benchmark per row,
named function/form/impl/dtype/size/threads, the row's seconds per call as its value, metadata
mapped), ``python -m pyperf compare_to`` works on two exports, and bad input is one line + exit 2
with nothing written."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from mathbench import cli
from mathbench.core import runs
from test_compare_many import base_rows, make_run

pyperf = pytest.importorskip("pyperf")  # the 'test' extra installs it; exporting never needs it


def export(run_dir, target, capsys):
    code = cli.main(["export", str(run_dir), "--pyperf", str(target)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_runs(tmp_path):
    fast = make_run(tmp_path / "fast", base_rows(0.5), cpu="Beta CPU", commit="2222222bbbb")
    slow = make_run(tmp_path / "slow", base_rows(), cpu="Alpha CPU", numba="0.61.0", commit="1111111aaaa")
    return slow, fast


def test_pyperf_reads_the_export(two_runs, tmp_path, capsys):
    slow, _ = two_runs
    target = tmp_path / "slow.json"
    code, out, err = export(slow, target, capsys)
    assert code == 0, err
    assert str(target) in out
    suite = pyperf.BenchmarkSuite.load(str(target))
    df = pd.read_csv(slow / runs.RESULTS)
    expected = {f"{r.function}/{r.form}/{r.impl}/{r.dtype}/{r.size}/{r.threads}": r for r in df.itertuples()}
    assert sorted(suite.get_benchmark_names()) == sorted(expected)
    for bench in suite.get_benchmarks():
        r = expected[bench.get_name()]
        # one run, one value: the row's seconds per call, in seconds (not ns, not per element)
        assert bench.get_values() == (r.seconds_per_call,) and bench.get_unit() == "second"
        assert bench.get_values()[0] == pytest.approx(r.ns_per_element * r.size * 1e-9, rel=1e-12)
        meta = bench.get_metadata()
        assert meta["loops"] == r.repeats and meta["interval_method"] == r.interval_method
        assert meta["interval_lo"] == pytest.approx(r.ns_lo * r.size * 1e-9, rel=1e-12)
        assert meta["interval_hi"] == pytest.approx(r.ns_hi * r.size * 1e-9, rel=1e-12)
    meta = suite.get_metadata()
    assert meta["cpu_model_name"] == "Alpha CPU" and meta["numba_version"] == "0.61.0"
    assert meta["python_version"] == "3.11.7" and meta["git_commit"] == "1111111aaaa"
    assert meta["date"] == "2026-01-02T03:04:05+00:00" and meta["command"] == "python -m mathbench --quick"
    assert meta["cpu_count"] == 8 and meta["git_dirty"] == "false" and "hostname" not in meta


def test_pyperf_compare_to_two_exports(two_runs, tmp_path, capsys):
    files = []
    for run_dir in two_runs:
        files.append(tmp_path / f"{run_dir.name}.json")
        assert export(run_dir, files[-1], capsys)[0] == 0
    p = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", *map(str, files)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # every benchmark of the fast run takes half the time: pyperf reads the values the same way
    assert "Geometric mean: 2.00x faster" in p.stdout, p.stdout
    p = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(files[0])], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "Number of benchmarks: 8" in p.stdout, p.stderr


def test_written_with_json_alone(two_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyperf", None)  # an import of pyperf would fail
    target = tmp_path / "x.json"
    assert export(two_runs[0], target, capsys)[0] == 0
    data = json.loads(target.read_text())
    assert data["version"] == "1.0" and len(data["benchmarks"]) == 8
    assert all(len(b["runs"]) == 1 and len(b["runs"][0]["values"]) == 1 for b in data["benchmarks"])


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_input_one_line_exit_2_nothing_written(two_runs, tmp_path, capsys):
    target = tmp_path / "out.json"
    code, _, err = export(tmp_path / "nothing", target, capsys)
    assert code == 2 and "does not exist" in _one_line(err) and not target.exists()
    bad = make_run(tmp_path / "bad", [])
    (bad / runs.RESULTS).write_text("a,b\n1,2\n")
    code, _, err = export(bad, target, capsys)
    assert code == 2 and "not a mathbench run" in _one_line(err) and not target.exists()
    # a non-finite time is refused, not written as a value pyperf would reject
    nan = make_run(tmp_path / "nan", [{**base_rows()[0], "seconds_per_call": float("nan"),
                                       "ns_per_element": float("nan")}])
    code, _, err = export(nan, target, capsys)
    assert code == 2 and "not a positive finite time" in _one_line(err) and not target.exists()
    # an existing file is never overwritten; a missing folder is one line
    target.write_text("earlier")
    code, _, err = export(two_runs[0], target, capsys)
    assert code == 2 and "never overwritten" in _one_line(err) and target.read_text() == "earlier"
    code, _, err = export(two_runs[0], tmp_path / "no" / "x.json", capsys)
    assert code == 2 and "does not exist" in _one_line(err)
    code = cli.main(["export", str(two_runs[0])])  # --pyperf is required
    assert code == 2 and "--pyperf" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "fast", "nan", "out.json", "slow"]
