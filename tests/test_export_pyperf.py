"""``mathbench export RUN --pyperf FILE.json``: pyperf reads the file back (one benchmark per row,
named function/form/impl/dtype/size/threads, metadata mapped); with samples.csv each worker process
is one pyperf run of its per-round samples (tiny real runs: the samples match results.csv, pyperf's
compare_to runs its t-test), without it (older runs, synthetic folders below) one value, the row's
seconds per call; samples that are not whole fall back row by row with one note line; bad input is
one line + exit 2 with nothing written."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mathbench import bench, cli
from mathbench.core import runs
from mathbench.core.errors import UsageError
from mathbench.report import pyperf_export
from test_cli import TINY
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
        assert bench.get_metadata()["mathbench_values"] == pyperf_export.FROM_ROW
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
    # no samples.csv: said once, on stderr, after the file is written
    note = _one_line(err)
    assert note.startswith("note: 8 of 8 rows") and "no samples.csv" in note, err


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


# ---------------------------------------------------------------------------------------------
# runs with samples.csv (tiny real runs: two worker processes, and a pair with one each)

KEY = runs.SAMPLE_KEY


def tiny_run(out, processes, samples):
    args = [*TINY, "--processes", str(processes), "--samples", str(samples), "--budget", "0.05",
            "--no-accuracy", "--out", str(out)]  # later options win over TINY's
    assert cli.main(args) == 0
    return out


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("sampled") / "run", processes=2, samples=4)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two runs of one process and 3 rounds each: with one process the round floor is the 3 rounds
    asked for, so both have 3 values per benchmark (what pyperf's t-test needs)."""
    base = tmp_path_factory.mktemp("pair")
    return [tiny_run(base / name, processes=1, samples=3) for name in ("a", "b")]


def read(run_dir):
    return pd.read_csv(run_dir / runs.RESULTS), pd.read_csv(run_dir / runs.SAMPLES)


def test_samples_are_the_rounds_behind_each_row(sampled):
    df, s = read(sampled)
    assert list(s.columns) == runs.SAMPLE_COLUMNS
    assert not s.duplicated(KEY + ["process", "round"]).any()
    # exactly the rows' keys: no row without samples, no samples without a row
    assert set(map(tuple, s[KEY].drop_duplicates().values)) == set(map(tuple, df[KEY].values))
    by_row = dict(list(s.groupby(KEY)))
    for r in df.itertuples():
        rows = by_row[tuple(getattr(r, k) for k in KEY)]
        per = [g.sort_values("round") for _, g in rows.groupby("process")]
        assert sorted(rows["process"].unique()) == list(range(r.processes)) == [0, 1]
        assert all(list(g["round"]) == list(range(len(g))) for g in per)
        assert len(rows) == r.rounds and min(map(len, per)) == r.rounds_per_process
        # the row's value: geometric mean of the processes' median rounds
        medians = [np.median(g["seconds_per_call"]) for g in per]
        assert r.seconds_per_call == pytest.approx(np.exp(np.mean(np.log(medians))), rel=1e-12)
        assert all(g["repeats"].nunique() == 1 for g in per)
        assert r.repeats == int(np.median([g["repeats"].iloc[0] for g in per]))
        # and its interval: Student-t 95% on the log medians (t = 12.706 at 1 degree of freedom)
        half = 12.706204736174698 * np.std(np.log(medians), ddof=1) / np.sqrt(2)
        assert r.ns_hi * 1e-9 * r.size == pytest.approx(np.exp(np.mean(np.log(medians)) + half), rel=1e-9)


def export(run_dir, target, capsys):
    code = cli.main(["export", str(run_dir), "--pyperf", str(target)])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_has_one_pyperf_run_per_process(sampled, tmp_path, capsys):
    target = tmp_path / "s.json"
    code, out, err = export(sampled, target, capsys)
    assert code == 0 and err == "", err
    df, s = read(sampled)
    suite = pyperf.BenchmarkSuite.load(str(target))
    assert len(suite.get_benchmarks()) == len(df)
    by_row = dict(list(s.groupby(KEY)))
    for r in df.itertuples():
        name = f"{r.function}/{r.form}/{r.impl}/{r.dtype}/{r.size}/{r.threads}"
        bench = suite.get_benchmark(name)
        assert bench.get_metadata()["mathbench_values"] == pyperf_export.FROM_SAMPLES
        rows = by_row[tuple(getattr(r, k) for k in KEY)]
        assert bench.get_nrun() == r.processes == 2
        for i, run in enumerate(bench.get_runs()):
            mine = rows[rows["process"] == i].sort_values("round")
            assert run.values == tuple(mine["seconds_per_call"])  # exactly, in seconds per call
            assert run.get_loops() == mine["repeats"].iloc[0]
        assert bench.get_nvalue() == r.rounds
    p = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(target)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.count("Mean +- std dev") == len(df), p.stderr
    assert p.stdout.count("Number of run with values: 2") == len(df)


def _compare(files):
    p = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", "-v", *map(str, files)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_compare_to_tests_significance(pair, tmp_path, capsys):
    files = [tmp_path / f"{d.name}.json" for d in pair]
    for d, f in zip(pair, files):
        assert export(d, f, capsys)[0] == 0
    out = _compare(files)
    n = len(pd.read_csv(pair[0] / runs.RESULTS))
    assert "ERROR when testing if values are significant" not in out, out
    # every benchmark got a verdict of pyperf's t-test
    assert out.count("Significant (t=") + out.count("Not significant!") == n, out
    # the same runs without samples.csv: one value each, and pyperf cannot test (what the samples fix)
    old = []
    for d in pair:
        copy = tmp_path / f"old-{d.name}"
        shutil.copytree(d, copy)
        (copy / runs.SAMPLES).unlink()
        old.append(tmp_path / f"old-{d.name}.json")
        assert export(copy, old[-1], capsys)[0] == 0
    assert _compare(old).count("ERROR when testing if values are significant") == n


def _copy(sampled, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sampled, copy)
    return copy


def _values_kind(target):
    suite = pyperf.BenchmarkSuite.load(str(target))
    return {b.get_name(): (b.get_metadata()["mathbench_values"], b.get_nrun()) for b in suite.get_benchmarks()}


def _name(cells):
    return "/".join(str(c) for c in cells[:6])


@pytest.mark.parametrize("damage,why", [
    ("truncate", "first: "),  # a kill mid-write: the last block partly written
    ("duplicate", "duplicated samples"),
    ("rescale", "do not give the row's seconds per call"),
    ("header", "other columns"),
    ("binary", "unreadable"),
])
def test_damaged_samples_fall_back_row_by_row(sampled, tmp_path, capsys, damage, why):
    run_dir = _copy(sampled, tmp_path)
    path = run_dir / runs.SAMPLES
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    last = _name(lines[-1].split(","))  # the row whose block is last
    if damage == "truncate":
        path.write_text("".join(lines[:-2]) + lines[-2][:-4])  # cut in the middle of a number, no newline
        damaged = {last}
    elif damage == "duplicate":
        path.write_text(text + "".join(lines[-3:]))
        damaged = {last}
    elif damage == "rescale":  # samples of another run: every round of the last row twice as slow
        head, body = lines[0], lines[1:]
        out = []
        for ln in body:
            cells = ln.rstrip("\r\n").split(",")
            if _name(cells) == last:
                cells[8] = repr(2 * float(cells[8]))
            out.append(",".join(cells) + "\r\n")
        path.write_text(head + "".join(out))
        damaged = {last}
    elif damage == "header":
        path.write_text(text.replace("seconds_per_call", "seconds", 1))
        damaged = None
    else:
        path.write_bytes(b"\x00\xff garbage")
        damaged = None
    target = tmp_path / "x.json"
    code, out, err = export(run_dir, target, capsys)
    assert code == 0 and "Traceback" not in err
    note = _one_line(err)
    kinds = _values_kind(target)
    fell = {n for n, (kind, _) in kinds.items() if kind == pyperf_export.FROM_ROW}
    assert fell == (damaged if damaged is not None else set(kinds))
    assert note.startswith(f"note: {len(fell)} of {len(kinds)} rows") and why in note, note
    assert all(nrun == (1 if n in fell else 2) for n, (_, nrun) in kinds.items())


def test_samples_without_rows_are_ignored(sampled, tmp_path, capsys):
    """A kill after a group's samples and before its rows: the samples are there, the rows not."""
    run_dir = _copy(sampled, tmp_path)
    df = pd.read_csv(run_dir / runs.RESULTS)
    kept = df[df["size"] == 100]
    (run_dir / runs.RESULTS).unlink()
    with runs.ResultsWriter(run_dir, bench.COLUMNS) as w:
        for r in kept.to_dict("records"):
            w.write({k: (None if pd.isna(v) else v) for k, v in r.items()})
    target = tmp_path / "x.json"
    code, _, err = export(run_dir, target, capsys)
    assert code == 0 and err == "", err
    kinds = _values_kind(target)
    assert len(kinds) == len(kept) and set(kinds.values()) == {(pyperf_export.FROM_SAMPLES, 2)}


def test_a_groups_samples_are_written_before_its_rows(tmp_path, capsys, monkeypatch):
    """The samples of the second group cannot be written (a full disk): its rows must not be either,
    and the first group's rows and samples are kept, once each. Timings are fake (no workers)."""
    compiled = []
    real_compile = bench.compile_all
    monkeypatch.setattr(bench, "compile_all", lambda *a: compiled.extend(real_compile(*a)) or compiled)

    def fake_groups(plan, index, sources):
        for n, (dtype, size) in enumerate(bench.groups(plan)):
            yield dtype, size, {bench._key(k): bench.Timing(10 + n, np.array([1.0, 2.0, 3.0]) * size * 1e-9)
                                for k in compiled if k.dtype == dtype}, 0

    monkeypatch.setattr(bench, "worker_groups", fake_groups)
    real_many, calls = runs.ResultsWriter.write_many, []

    def write_many(self, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise UsageError(f"cannot write {self.path}: No space left on device")
        return real_many(self, rows)

    monkeypatch.setattr(runs.ResultsWriter, "write_many", write_many)
    out = tmp_path / "r"
    code = cli.main([*TINY, "--no-accuracy", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in _one_line(err)
    df, s = read(out)
    assert set(df["size"]) == {100} and set(s["size"]) == {100} and len(s) == 3 * len(df)
    assert not s.duplicated(KEY + ["process", "round"]).any()
    assert (s["seconds_per_call"] / s["size"] * 1e9).round(9).isin([1.0, 2.0, 3.0]).all()
    assert json.loads((out / runs.METADATA).read_text())["finished"] is False
    # an interrupted kernel run is not resumed: the same --out is refused and nothing is appended
    before = (out / runs.SAMPLES).read_bytes()
    assert cli.main([*TINY, "--no-accuracy", "--out", str(out)]) == 2
    assert "never overwritten" in _one_line(capsys.readouterr().err)
    assert (out / runs.SAMPLES).read_bytes() == before
