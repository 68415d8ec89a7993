"""The command-line faults of issue 11, each closed: bad input and damaged files give one line on
stderr and exit code 2 (or are repaired with one line), and nothing half-written is left behind."""
import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mathbench.accuracy import measure as accuracy
from mathbench import bench, cli
from mathbench.report import tables as report
from mathbench.core import runs, threads
from mathbench.core.cliargs import PlainProgress, progress_factory
import test_cli  # tests/ is on sys.path (not a package)
from test_cli import assert_usage_error, run

TINY = [*test_cli.TINY, "--no-accuracy"]  # float32, n = 100 and 1000, serial, isru and tanh


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def leftovers(folder: Path) -> list:
    """Temporary or claim files a writer must never leave behind."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == runs.CLAIM]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished two-group run (float32 at n = 100 and 1000), made in-process."""
    out = tmp_path_factory.mktemp("faults") / "tiny"
    assert cli.main(TINY + ["--out", str(out)]) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in (runs.RESULTS, runs.METADATA):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


# ---------------------------------------------------------------------------------------------
# damaged kernel cache: discarded with one line, compiled again, loaded from cache afterwards

_KERNEL = ("from mathbench.functions import kernels; k = kernels.get('isru', 'numba', 'forward', 'float32'); "
           "print(k.cache_hit, k.vectorized)")


def _python(code: str, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # we want .pyc files
    # Numba's files for the registry's scalars go to the same private folder, not the source tree.
    env.update(MATHBENCH_CACHE_DIR=str(cache), NUMBA_CACHE_DIR=str(cache / "numba"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def _damage(files: list, how: str) -> Path:
    assert files, "the cache file to damage was not written"
    path = files[0]
    data = path.read_bytes()
    path.write_bytes(b"" if how == "empty" else data[: max(1, len(data) // 2)])
    return path


@pytest.mark.parametrize("pattern,how", [
    ("numba/**/*.nbi", "empty"),
    ("numba/**/mathbench_kernels*.nbc", "truncated"),
    ("__pycache__/mathbench_kernels*.pyc", "truncated"),
    ("simd-*.json", "truncated"),
])
def test_damaged_kernel_cache_is_discarded_and_rebuilt(pattern, how, tmp_path):
    cache = tmp_path / "cache"
    first = _python(_KERNEL, cache)
    assert first.returncode == 0, first.stderr
    damaged = _damage(sorted(cache.glob(pattern)), how)

    repaired = _python(_KERNEL, cache)
    assert repaired.returncode == 0, repaired.stderr
    line = one_line(repaired.stderr)
    assert "discarded the damaged cache file" in line and damaged.name in line
    assert repaired.stdout.split()[1] == "True"  # SIMD facts right after the repair too

    again = _python(_KERNEL, cache)  # the rebuilt files load cleanly: no message, a cache hit
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert again.stdout.split() == ["True", "True"]


def test_damaged_reference_cache_is_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATHBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(accuracy, "_MEMORY", {})
    xs = np.linspace(-3, 3, 50, dtype=np.float32)
    good = accuracy.reference("isru", "forward", "float32", xs)
    (npz,) = (tmp_path / "reference").glob("*.npz")
    for damage in (b"", npz.read_bytes()[:100]):
        npz.write_bytes(damage)
        monkeypatch.setattr(accuracy, "_MEMORY", {})
        capsys.readouterr()
        again = accuracy.reference("isru", "forward", "float32", xs)
        assert "discarded the damaged cache file" in one_line(capsys.readouterr().err)
        np.testing.assert_array_equal(again.value, good.value)
        with np.load(npz) as z:  # rewritten whole
            np.testing.assert_array_equal(z["value"], good.value)


# ---------------------------------------------------------------------------------------------
# report and compare on damaged or unfinished run folders


def test_report_header_only_run(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / runs.RESULTS).write_text(",".join(bench.COLUMNS) + "\r\n")
    runs.write_json(out / runs.METADATA, {"kind": "mathbench", "finished": False})
    assert_usage_error(["report", str(out)], capsys, "no finished rows")


def test_report_and_compare_missing_column(tiny_run, tmp_path, capsys):
    bad = copy_run(tiny_run, tmp_path / "bad")
    df = pd.read_csv(bad / runs.RESULTS)
    df.drop(columns=["speedup_vs_tanh", "ns_hi"]).to_csv(bad / runs.RESULTS, index=False)
    assert_usage_error(["report", str(bad)], capsys, "missing columns: ", "speedup_vs_tanh")
    assert_usage_error(["compare", str(tiny_run), str(bad)], capsys, "missing columns: ns_hi")


def test_torn_rows_are_dropped_with_a_warning(tiny_run, tmp_path, capsys):
    whole = pd.read_csv(tiny_run / runs.RESULTS)
    torn = copy_run(tiny_run, tmp_path / "torn")
    lines = (torn / runs.RESULTS).read_bytes().split(b"\r\n")
    # a row cut mid-line inside the file (a later session appended after it) and one at the end
    lines.insert(3, lines[3][: len(lines[3]) // 2])
    text = b"\r\n".join(lines[:-1]) + b"\r\n" + lines[5][:40]
    (torn / runs.RESULTS).write_bytes(text)
    df = runs.read_rows(torn)
    assert "dropped 2 torn rows" in one_line(capsys.readouterr().err)
    pd.testing.assert_frame_equal(df, whole)

    code, out, err = run(["report", str(torn)], capsys)
    assert code == 0 and "torn" in one_line(err) and "ns/element" in out
    code, out, err = run(["compare", str(tiny_run), str(torn)], capsys)
    assert code == 0 and "torn" in one_line(err)


def test_interrupted_run_says_what_is_true_and_report_judges_nothing(tmp_path, capsys, monkeypatch):
    real = bench.group_rows  # the parent's step once the last process has timed a group
    calls = []

    def ctrl_c_in_second_group(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(bench, "group_rows", ctrl_c_in_second_group)
    out = tmp_path / "r"
    code, _, err = run(TINY + ["--out", str(out)], capsys)
    line = one_line(err)
    assert code == 130 and "cannot be resumed" in line and "same --out" not in line
    assert json.loads((out / runs.METADATA).read_text())["finished"] is False
    assert set(pd.read_csv(out / runs.RESULTS)["size"]) == {100}  # the finished group is kept
    assert not leftovers(out)

    code, text, err = run(["report", str(out)], capsys)
    assert code == 0 and text.startswith("INCOMPLETE") and "findings" not in text
    assert "target" not in text.replace("no target is judged", "")


def test_finished_run_is_not_called_incomplete(tiny_run, capsys):
    assert json.loads((tiny_run / runs.METADATA).read_text())["finished"] is True
    code, text, _ = run(["report", str(tiny_run)], capsys)
    assert code == 0 and "INCOMPLETE" not in text


# ---------------------------------------------------------------------------------------------
# values that used to crash or be silently ignored: refused before any folder is made


@pytest.mark.parametrize("args,needles", [
    (["--seed", "-1"], ["--seed -1"]),
    (["--budget", "inf"], ["--budget inf"]),
    (["--budget", "1e300"], ["--budget 1e+300"]),
    (["--budget", "nan"], ["--budget nan"]),
    (["--samples", "0"], ["--samples 0"]),
    (["--scale", "inf"], ["--scale inf", "finite"]),
    (["--scale", "nan"], ["--scale nan"]),
    (["--scale", "1e39", "--dtypes", "float32"], ["--scale 1e+39"]),  # float32 inputs would be inf
    (["--scale", "0"], ["--scale 0"]),
    (["--sizes", ""], ["--sizes is empty"]),
    (["--functions", ""], ["--functions is empty"]),
    (["--dtypes", ""], ["--dtypes is empty"]),
    (["--threads", ""], ["--threads is empty"]),
    (["--sizes", "1e99"], ["size 1e+99 ", "GiB"]),
])
def test_refused_before_any_folder(args, needles, tmp_path, capsys):
    line = assert_usage_error(["--out", str(tmp_path / "never"), *args], capsys, *needles)
    assert len(line) < 200, line  # no 90-digit numbers
    assert not (tmp_path / "never").exists()


def test_quick_honours_budget_and_samples():
    plan = cli.make_plan(cli.build_parser().parse_args(["--quick", "--budget", "0.05", "--samples", "4"]))
    assert (plan.budget, plan.samples) == (0.05, 4)
    plan = cli.make_plan(cli.build_parser().parse_args(["--quick"]))
    assert (plan.budget, plan.samples) == (0.2, 5)
    plan = cli.make_plan(cli.build_parser().parse_args([]))
    assert (plan.budget, plan.samples) == (0.7, 7)


def _full_disk_on(suffix: str, after: int, monkeypatch):
    """os.write fails with ENOSPC on the ``after``-th write to a file named ``*suffix``, after
    writing half of the data: a row torn by a full disk."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd")
    real, seen = os.write, []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(suffix):
            seen.append(fd)
            if len(seen) == after:
                real(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_full_disk_while_writing_rows(tmp_path, capsys, monkeypatch):
    _full_disk_on(runs.RESULTS, after=4, monkeypatch=monkeypatch)  # header, 2 rows, then full
    out = tmp_path / "r"
    line = assert_usage_error(TINY + ["--out", str(out)], capsys, "No space left on device", runs.RESULTS)
    assert "rows before are kept" in line
    raw = (out / runs.RESULTS).read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 3  # header + 2 whole rows, no torn one
    assert len(pd.read_csv(out / runs.RESULTS)) == 2
    assert json.loads((out / runs.METADATA).read_text())["finished"] is False
    assert not leftovers(out)


def test_full_disk_while_writing_metadata(tmp_path, capsys, monkeypatch):
    real = Path.write_text

    def write_text(self, data, *a, **kw):
        if self.name == runs.METADATA + ".tmp":
            real(self, "")  # the file was created, then the disk was full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data, *a, **kw)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "r"
    assert_usage_error(TINY + ["--out", str(out)], capsys, "No space left on device", runs.METADATA)
    assert not out.exists()  # nothing was measured: no folder, no empty metadata.json.tmp


def test_write_json_keeps_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / runs.METADATA
    runs.write_json(path, {"finished": False})
    monkeypatch.setattr(json, "dumps", lambda *a, **kw: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(runs.UsageError, match="cannot write"):
        runs.write_json(path, {"finished": True})
    assert json.loads(path.read_text()) == {"finished": False} and not leftovers(tmp_path)


# ---------------------------------------------------------------------------------------------
# run folders: atomic creation, and user runs outside the committed results/


def test_default_run_folders_are_distinct_under_concurrency(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "default_runs_dir", lambda: tmp_path)
    barrier, got, errors = threading.Barrier(16), [], []

    def make():
        barrier.wait()
        try:
            got.append(runs.new_run_dir("mathbench"))
        except Exception as e:  # noqa: BLE001 - any failure fails the test below
            errors.append(e)

    ts = [threading.Thread(target=make) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(set(got)) == 16


_CLAIM_OUT = """
import sys, time
from mathbench.core import runs
from mathbench.core.errors import UsageError
t = float(sys.argv[2])
time.sleep(max(0.0, t - time.time() - 0.05))
while time.time() < t:  # the last 50 ms spinning: every process claims at the same instant
    pass
try:
    runs.new_run_dir("mathbench", sys.argv[1])
    print("got")
except UsageError as e:
    print("refused")
"""


def test_same_out_folder_goes_to_one_process(tmp_path):
    import time

    out = tmp_path / "shared"
    out.mkdir()  # an existing empty folder, as a user may create one
    start = time.time() + 2.0  # every process spins until the same moment, then claims
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIM_OUT, str(out), str(start)], stdout=subprocess.PIPE,
                              text=True) for _ in range(6)]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["got"] + ["refused"] * 5, results


def test_user_runs_go_to_an_ignored_folder():
    where = runs.default_runs_dir()
    assert where.name == "runs" and where != runs.PROJECT_ROOT / "results"
    if (runs.PROJECT_ROOT / ".git").exists():
        probe = where.relative_to(runs.PROJECT_ROOT) / "mathbench-x" / runs.RESULTS
        ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=runs.PROJECT_ROOT)
        assert ignored.returncode == 0, "runs/ is not ignored by git"
    assert "runs/mathbench-TIMESTAMP" in cli.build_parser().format_help()


# ---------------------------------------------------------------------------------------------
# progress on stderr when it is not a terminal


def test_plain_progress_lines_when_not_a_terminal(capsys):
    bar = progress_factory(False)(total=100, desc="timing")
    assert isinstance(bar, PlainProgress)  # capsys' stderr is not a tty
    bar.every = 0.0  # no time floor: one line per 10%
    for _ in range(100):
        bar.set_postfix_str("float32 n=1,000")
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "timing: start, 100" and lines[-1].startswith("timing: done, 100 in ")
    assert len(lines) == 11 and all(line.startswith("timing: ") for line in lines)
    assert "(float32 n=1,000)" in lines[1]


def test_plain_progress_is_sparse_and_silenced(capsys):
    bar = progress_factory(False)(total=1000, desc="compile", unit="kernel")
    for _ in range(1000):  # a fast phase: start and end only (lines at least 5 s apart)
        bar.update(1)
    bar.close()
    assert len(capsys.readouterr().err.splitlines()) == 2
    bar = progress_factory(True)(total=10, desc="x")
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    from tqdm import tqdm

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_factory(False)(total=3, desc="x")
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()


# ---------------------------------------------------------------------------------------------
# summaries: parallel-only runs, targets only where measured, labelled columns


@pytest.mark.skipif(threads.max_threads() < 2, reason="needs two cores")
def test_parallel_only_run_shows_parallel_timings(tmp_path, capsys):
    args = [a if a != "1" else "2" for a in TINY]  # --threads 2
    code, out, err = run(args + ["--functions", "isru", "--sizes", "1000", "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert "parallel (2 threads)" in out and "serial (1 thread)" not in out
    table = out.split("parallel (2 threads)")[1].split("\n\n")[0]
    assert "isru" in table and "numba" in table


def test_targets_judged_only_at_measured_sizes(tiny_run):
    df = pd.read_csv(tiny_run / runs.RESULTS)  # sizes 100 and 1000: neither 1e5 nor 1e7
    assert not any("target" in f for f in report.kernel_findings(df))


def _unlabelled_columns(text: str) -> list:
    """Columns of a printed table (header, then a rule of dashes per column) with a blank header."""
    import re

    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("function"))
    header, rule = lines[i], lines[i + 1]
    return [m.span() for m in re.finditer(r"-+", rule) if not header[m.start():m.end()].strip()]


def test_every_column_is_labelled(tiny_run, tmp_path, capsys):
    code, text, _ = run(["--list"], capsys)
    assert code == 0 and not _unlabelled_columns(text)
    slow = copy_run(tiny_run, tmp_path / "slow")  # 10x slower: every row differs, the flag column fills
    df = pd.read_csv(slow / runs.RESULTS)
    df[["ns_per_element", "ns_lo", "ns_hi"]] *= 10
    df.to_csv(slow / runs.RESULTS, index=False)
    code, text, _ = run(["compare", str(tiny_run), str(slow)], capsys)
    assert code == 0 and "*" in text.split("differs")[-1] and not _unlabelled_columns(text)


# ---------------------------------------------------------------------------------------------
# figures


@pytest.fixture(scope="module")
def reference_run():
    from mathbench.report import nbtools

    df, _, _ = nbtools.load("mathbench")
    return df


def test_speedup_figure_lines_distinguishable_and_legend_on_every_panel(reference_run):
    from mathbench.report import plots

    fig = plots.speedup_vs_size(reference_run, "speedup_vs_np_tanh", "forward")
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert len(lines) > 10  # more lines than colours
        styles = [(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in lines]
        assert len(set(styles)) == len(styles)
        legend = ax.get_legend()
        assert legend is not None and len(legend.get_texts()) == len(lines)
    # one style per (function, impl) in every panel
    by_label = [{ln.get_label(): (ln.get_color(), ln.get_marker()) for ln in ax.get_lines()} for ax in fig.axes]
    common = set(by_label[0]) & set(by_label[-1])
    assert common and all(by_label[0][k] == by_label[-1][k] for k in common)


def test_speed_vs_accuracy_labels_do_not_overlap(reference_run):
    from mathbench.report import plots

    size = int(reference_run["size"].iloc[(reference_run["size"] - 100_000).abs().argmin()])
    fig = plots.speed_vs_accuracy(reference_run, size, "float32")
    from matplotlib.text import Text

    fig.canvas.draw()  # places the annotations
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in fig.axes[0].texts]  # the text, not its leader line
    assert len(boxes) > 5
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    assert not overlaps


def test_nbrun_kernel_does_not_warn_about_tcp(tmp_path, capfd):
    pytest.importorskip("nbclient")
    import nbformat

    from mathbench.report import nbrun

    path = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), path)
    assert nbrun.run([path]) == 0
    assert "without encryption" not in capfd.readouterr().err
