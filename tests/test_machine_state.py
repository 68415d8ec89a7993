"""Machine state in a run's metadata (load, CPU frequency/governor, other busy processes, git
cleanliness) and the one-line warnings a summary prints when the machine was not quiet or the
timings look unstable."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from lstm_numba import sweep
from mathbench.report import tables as report
from mathbench.core import runs


def test_metadata_records_machine_state_and_git_cleanliness():
    meta = runs.metadata("mathbench", ["--quick"])
    assert set(meta["git"]) == {"commit", "dirty"}
    assert meta["git"]["dirty"] in (True, False, None)
    before = meta["machine_state"]["before"]
    assert set(before) == {"time", "load_average", "busy_processes", "cpufreq"}
    if hasattr(os, "getloadavg"):
        assert len(before["load_average"]) == 3 and all(v >= 0 for v in before["load_average"])
    assert before["cpufreq"] is None or {"governors", "per_cpu", "cpuinfo_mhz"} <= set(before["cpufreq"])
    runs.record_end_state(meta)
    assert set(meta["machine_state"]) == {"before", "after"}


def test_busy_processes_from_proc_times(monkeypatch):
    me = os.getpid()
    # pid -> (name, parent, CPU ticks); between the two reads: 0.1 s at 100 ticks/s
    t0 = {me: ("pytest", 1, 0), 900001: ("worker", me, 0), 900002: ("grandchild", 900001, 0),
          900003: ("hog", 1, 0), 900004: ("idle", 1, 0), 900005: ("half", 1, 0)}
    t1 = {me: ("pytest", 1, 10), 900001: ("worker", me, 10), 900002: ("grandchild", 900001, 10),
          900003: ("hog", 1, 10), 900004: ("idle", 1, 1), 900005: ("half", 1, 5),
          900006: ("new", 1, 50)}  # started in between: no rate
    reads = iter([t0, t1])
    monkeypatch.setattr(runs, "_proc_times", lambda: next(reads))
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    busy = runs.busy_processes(interval=0.1)
    # ourselves and our descendants are not "other"; 10% of a core is below the threshold
    assert busy == [{"pid": 900003, "name": "hog", "cpu_percent": 100.0},
                    {"pid": 900005, "name": "half", "cpu_percent": 50.0}]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_busy_processes_on_real_proc():
    # a spinning grandchild whose parent has exited is no longer ours: it must be reported
    # (it closes its stdout once it has printed its pid, so the launcher's output ends there)
    spin = ("import os, time\nprint(os.getpid(), flush=True)\nos.close(1)\nt = time.time()\n"
            "while time.time() - t < 10: pass")
    launcher = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {spin!r}])"
    proc = subprocess.run([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True, timeout=30)
    pid = int(proc.stdout.split()[0])
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # ours: never reported
    try:
        busy = runs.busy_processes(interval=0.5, top=50)
    finally:
        child.kill()
        child.wait()
        os.kill(pid, signal.SIGKILL)
    pids = {b["pid"] for b in busy}
    assert child.pid not in pids and os.getpid() not in pids
    assert pid in pids


def _state(load=(0.0, 0.0, 0.0), busy=()):
    return {"load_average": list(load), "busy_processes": list(busy)}


@pytest.mark.parametrize("before, after, fragments", [
    (_state(), _state(), None),
    (_state(load=(0.9, 0.5, 0.2)), _state(load=(1.9, 1, 1)), None),  # 0.45 per core; after includes us
    (_state(load=(1.5, 1, 1)), _state(), ["load average 1.50 on 2 cores"]),
    (_state(), _state(busy=[{"pid": 42, "name": "make", "cpu_percent": 97.0}]), ["make (42, 97%)"]),
    (_state(load=(3, 1, 1), busy=[{"pid": 7, "name": "cc1", "cpu_percent": 55.0}]), None,
     ["load average 3.00", "cc1 (7, 55%)"]),
])
def test_machine_warning(before, after, fragments):
    meta = {"cores": 2, "machine_state": {"before": before, "after": after}}
    w = runs.machine_warning(meta)
    if fragments is None:
        assert w is None
    else:
        assert w.startswith("warning: the machine was not quiet") and "\n" not in w
        assert all(f in w for f in fragments)


def test_machine_warning_without_state():
    assert runs.machine_warning({}) is None  # runs made before machine state was recorded


def _rows(widths):
    return pd.DataFrame({"ns_per_element": [1.0] * len(widths), "ns_lo": [1 - w / 2 for w in widths],
                         "ns_hi": [1 + w / 2 for w in widths]})


@pytest.mark.parametrize("widths, unstable", [
    ([0.05] * 20, False), ([0.05] * 18 + [0.5] * 2, False), ([0.05] * 17 + [0.5] * 3, True), ([], False),
])
def test_unstable_warning(widths, unstable):
    w = runs.unstable_warning(_rows(widths), "ns_per_element", "ns_lo", "ns_hi", "ns/element")
    assert (w is not None) == unstable
    if unstable:
        assert "3 of 20 rows" in w and "widest 50%" in w and "\n" not in w


def test_kernel_summary_warnings():
    quiet = {"cores": 2, "machine_state": {"before": _state(), "after": _state()}}
    assert report.run_warnings(_rows([0.05] * 10), quiet) == ""
    busy = {"cores": 2, "machine_state": {"before": _state(load=(4, 4, 4))}}
    lines = report.run_warnings(_rows([0.5] * 10), busy).strip().splitlines()
    assert len(lines) == 2 and "not quiet" in lines[0] and "unstable" in lines[1]


def test_sweep_status_lines():
    rows = pd.DataFrame([{"config_id": cid, "variant": v, "config_rows": 2, "train_step_s": 1.0,
                          "train_step_lo": 0.5, "train_step_hi": 1.5} for cid in ("a", "b") for v in ("x", "y")])
    meta = {"cores": 2, "plan": ["a", "b", "c"], "machine_state": {"before": _state(load=(2, 1, 1))}}
    lines = sweep.status(rows.iloc[:3], meta)  # b lost a row: only a is complete
    assert lines[0].startswith("incomplete (1 of 3 configurations)")
    assert any("not quiet" in w for w in lines) and any("unstable" in w for w in lines)
    assert sweep.status(rows.iloc[:0], {"plan": []}) == []
