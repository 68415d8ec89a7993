"""Between-process repetition: the parent's combination of per-process samples (table-driven, on
fake kernels with exact costs), the worker protocol, and a worker that dies (one line, exit 2,
finished groups kept)."""
import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from mathbench import bench, cli
from mathbench.core import runs, stats
from test_bookkeeping import EXPECTED, KERNEL_COSTS, RATIOS, U, Clock, _fake_kernel
from test_cli import TINY, run
from test_cli_faults import one_line

T975_2 = 4.302652729749464  # Student-t 0.975 quantile, 2 degrees of freedom (3 processes)
SIZE = 1024
PLAN = bench.Plan(functions=["tanh", "isru"], impls=None, forms=["forward", "dfdy"], dtypes=["float32"],
                  sizes=[SIZE], serial=True, parallel_threads=2, processes=3)
GROUP = [_fake_kernel(Clock(), *k) for k in KERNEL_COSTS]


def timings(factor, rounds, slow=None):
    """One fake process: every kernel's cost times ``factor`` each round; ``slow`` = {kernel: extra
    factor} makes that kernel alone slower in this process (a ratio that moves between processes)."""
    return {(f, form, impl, "float32", par): bench.Timing(8, np.full(rounds, c * U * factor * (slow or {}).get(
        (f, form, impl, par), 1.0))) for (f, form, impl, par), c in KERNEL_COSTS.items()}


def rows_of(per_process):
    rows = bench.group_rows(PLAN, GROUP, "float32", SIZE, per_process)
    return {(r["function"], r["form"], r["impl"], r["parallel"]): r for r in rows}


def t_interval(values):
    logs = np.log(values)
    half = T975_2 * logs.std(ddof=1) / math.sqrt(len(values))
    return math.exp(logs.mean()), math.exp(logs.mean() - half), math.exp(logs.mean() + half)


@pytest.mark.parametrize("key", list(EXPECTED), ids=["-".join(map(str, k)) for k in EXPECTED])
def test_combined_ratios_keep_baseline_and_direction(key):
    # processes 2x and 4x slower overall: every paired ratio is the same in each process, so the
    # combined ratio is exact, its interval collapses, and the time's interval spans the processes
    row = rows_of([timings(1, 3), timings(2, 2), timings(4, 1)])[key]
    assert (row["processes"], row["rounds"], row["rounds_per_process"], row["interval_method"]) == \
        (3, 6, 1, stats.T_PROCESSES)
    want_ns = np.array([1, 2, 4]) * KERNEL_COSTS[key] * U * 1e9 / SIZE
    assert (row["ns_per_element"], row["ns_lo"], row["ns_hi"]) == pytest.approx(t_interval(want_ns), rel=1e-12)
    for col, want in zip(RATIOS, EXPECTED[key]):
        prefix = "roof" if col == "roof_fraction" else col
        got = (row.get(col), row.get(f"{prefix}_lo"), row.get(f"{prefix}_hi"))
        assert got == ((None,) * 3 if want is None else pytest.approx((want,) * 3, rel=1e-12)), col


# (row, column, that row's kernel slower by these factors in processes 1..3, expected per-process ratios)
MOVING = [
    (("isru", "forward", "numba", False), "speedup_vs_tanh", (1, 2, 4), (8, 4, 2)),  # tanh / isru
    (("isru", "forward", "numba", False), "speedup_vs_np_tanh", (1, 2, 4), (4, 2, 1)),
    (("isru", "forward", "numba", False), "speedup_vs_numpy", (1, 1, 4), (16, 16, 4)),
    (("isru", "forward", "numba", True), "speedup_vs_serial", (1, 2, 2), (2, 1, 1)),
    (("isru", "forward", "numba", False), "cost_vs_plus", (1, 2, 4), (2, 4, 8)),  # isru / plus
    (("isru", "forward", "numba", False), "roof_fraction", (2, 2, 1), (1 / 8, 1 / 8, 1 / 4)),  # copy / isru
]


@pytest.mark.parametrize("key,col,slow,want", MOVING, ids=[m[1] for m in MOVING])
def test_ratio_that_moves_between_processes(key, col, slow, want):
    rows = rows_of([timings(1, 3, {key: s}) for s in slow])
    prefix = "roof" if col == "roof_fraction" else col
    got = (rows[key][col], rows[key][f"{prefix}_lo"], rows[key][f"{prefix}_hi"])
    assert got == pytest.approx(t_interval(np.array(want, dtype=float)), rel=1e-12)


def test_one_process_intervals_say_what_they_are():
    # 3 rounds: the range, labelled as such; 7 rounds: the order-statistic 95% interval (here [min, max])
    for rounds, method in ((3, stats.RANGE_ROUNDS), (7, stats.ORDER_ROUNDS)):
        per = timings(1, rounds)
        key = ("tanh", "forward", "numba", "float32", False)
        per[key] = bench.Timing(8, np.arange(1.0, rounds + 1) * U)
        row = rows_of([per])[("tanh", "forward", "numba", False)]
        assert (row["interval_method"], row["processes"]) == (method, 1)
        assert (row["ns_lo"], row["ns_hi"]) == pytest.approx((U * 1e9 / SIZE, rounds * U * 1e9 / SIZE))
    assert "not 95%" in stats.describe(stats.RANGE_ROUNDS, 1, 3)
    assert "95%" in stats.describe(stats.ORDER_ROUNDS, 1, 7) and "run-to-run" in stats.describe(stats.ORDER_ROUNDS, 1, 7)


def test_budget_is_split_between_processes():
    plan = cli.make_plan(cli.build_parser().parse_args([]))
    assert plan.processes == 3
    one = bench.process_plan(plan)
    assert (one.budget * 3, one.samples, one.min_samples) == (pytest.approx(plan.budget), plan.samples, 1)
    assert bench.process_plan(cli.make_plan(cli.build_parser().parse_args(["--processes", "2"]))).min_samples == 2
    assert bench.process_plan(cli.make_plan(cli.build_parser().parse_args(["--processes", "1"]))).min_samples == 3
    job = json.loads(bench.worker_job(plan, "abc"))
    assert job["sources"] == "abc" and job["plan"]["budget"] == pytest.approx(plan.budget / 3)
    assert job["plan"]["min_samples"] == 1 and job["plan"]["processes"] == 3


# ---------------------------------------------------------------------------------------------
# a worker that dies

_CRASH_IN_SECOND_GROUP = """
from mathbench import bench, worker
real, calls = bench.time_group, []
def time_group(*a, **kw):
    calls.append(1)
    if len(calls) == 2:
        raise RuntimeError("boom in the second group")
    return real(*a, **kw)
bench.time_group = time_group
worker.main()
"""


@pytest.mark.parametrize("code,needles,kept", [
    (_CRASH_IN_SECOND_GROUP, ["timing process 1/1 failed (exit code 1) while timing float32 n=1,000",
                              "RuntimeError: boom in the second group"], {100}),
    ("import sys; sys.exit('cannot start')", ["timing process 1/1 failed (exit code 1)", "n=100:", "cannot start"],
     set()),
    ("print('hello')", ["timing process 1/1 sent unexpected output: 'hello'"], set()),
], ids=["crash-in-second-group", "cannot-start", "unexpected-output"])
def test_worker_failure_is_one_line_and_keeps_finished_groups(code, needles, kept, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "worker_command", lambda: [sys.executable, "-c", code])
    out = tmp_path / "r"
    rc, _, err = run(TINY + ["--out", str(out)], capsys)
    line = one_line(err)
    assert rc == 2 and str(out) in line and "marked incomplete" in line, line
    for n in needles:
        assert n in line, line
    assert json.loads((out / runs.METADATA).read_text())["finished"] is False
    assert set(pd.read_csv(out / runs.RESULTS)["size"]) == kept
    assert set(pd.read_csv(out / runs.SAMPLES)["size"]) == kept  # samples of exactly the finished groups


def test_only_groups_every_process_finished_are_written(tmp_path, capsys, monkeypatch):
    real = bench.worker_command
    monkeypatch.setattr(bench, "worker_command", lambda: (
        [sys.executable, "-c", _CRASH_IN_SECOND_GROUP] if len(calls) == 2 else real()))
    calls = []
    real_groups = bench.worker_groups

    def counted(plan, index, *a):
        calls.append(index)
        return real_groups(plan, index, *a)

    monkeypatch.setattr(bench, "worker_groups", counted)
    out = tmp_path / "r"
    rc, _, err = run(TINY + ["--processes", "2", "--out", str(out)], capsys)
    assert rc == 2 and "timing process 2/2 failed" in one_line(err)
    df = pd.read_csv(out / runs.RESULTS)
    assert set(df["size"]) == {100} and (df["processes"] == 2).all()
    # the samples of the finished group, from both processes, once each; none of the unfinished one
    s = pd.read_csv(out / runs.SAMPLES)
    assert len(s) == df["rounds"].sum() and set(s["size"]) == {100} and set(s["process"]) == {0, 1}
    assert not s.duplicated(runs.SAMPLE_KEY + ["process", "round"]).any()


def test_worker_refuses_to_time_changed_sources(tmp_path, capsys, monkeypatch):
    # the parent started from other sources than the worker finds (an edit or checkout mid-run)
    monkeypatch.setattr(bench, "sources_version", lambda: "sources-at-start")
    out = tmp_path / "r"
    rc, _, err = run(TINY + ["--out", str(out)], capsys)
    line = one_line(err)
    assert rc == 2 and "timing process 1/1 failed" in line and "sources changed since this run started" in line


def test_ctrl_c_while_a_worker_times(tmp_path):
    """A real SIGINT to the whole process group (what Ctrl-C sends): one line, exit 130, no traceback."""
    import os
    import signal
    import subprocess
    import time

    args = [a for a in TINY if a != "--no-progress"] + ["--budget", "30", "--samples", "1000", "--out", str(tmp_path / "r")]
    # a terminal's Ctrl-C reaches a process whose SIGINT is at its default; a test started from a
    # background job (nohup cmd &) inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: restore the default so the test sees what a user's terminal does
    proc = subprocess.Popen([sys.executable, "-m", "mathbench", *args], stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stderr:  # plain progress lines: stderr is a pipe
            if line.startswith("timing 1/1: start"):
                break
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in rest and "interrupted" in rest and "cannot be resumed" in rest, rest
    assert json.loads((tmp_path / "r" / runs.METADATA).read_text())["finished"] is False
