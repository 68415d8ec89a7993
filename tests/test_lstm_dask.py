"""The accuracy study on Dask (issue 13, item 4): ``--workers N`` / ``--scheduler ADDR`` give the rows
a local run gives (training is deterministic: the same seed trains bitwise the same model in any
process), resume and Ctrl-C work as locally, a worker killed mid-task costs nothing but time (its
unit is re-run and written once), and bad addresses or options are one line and exit 2. The tests
that need Dask skip without it (``pip install -e '.[dask]'``)."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lstm_numba import cli, cluster, study
from mathbench.core import runs

TINY = ["--tasks", "lm,classify", "--hidden", "4", "--seeds", "2", "--iterations", "6", "--seq-len", "8",
        "--batch", "4", "--val-every", "2", "--patience", "1", "--pairs", "isru", "--no-progress"]
#: what training decides; equal between runs when the same seeds train the same models
SAME = ["unit_id", "variant", "steps", "best_step", "stopped_early", "val_loss", "loss", "perplexity", "accuracy",
        "f1", "quality_flag"]


def accuracy(argv, capsys):
    code = cli.main(["accuracy", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def decided(run_dir) -> pd.DataFrame:
    df = pd.read_csv(Path(run_dir) / runs.RESULTS)
    return df[SAME].sort_values(["unit_id", "variant"]).reset_index(drop=True)


def once_each(run_dir, n_units: int) -> pd.DataFrame:
    df = pd.read_csv(Path(run_dir) / runs.RESULTS)
    assert not df.duplicated(["unit_id", "variant"]).any()
    assert df["unit_id"].nunique() == n_units and (df.groupby("unit_id").size() == df["unit_rows"].iloc[0]).all()
    return df


@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler(distributed):
    """A running 2-worker cluster, as ``--scheduler`` finds one: (address, a client of the tests')."""
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.ERROR)
    client = distributed.Client(lc, set_as_default=False)
    yield lc.scheduler_address, client
    client.close()
    lc.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The reference: the same study in this process."""
    out = tmp_path_factory.mktemp("local") / "st"
    assert cli.main(["accuracy", *TINY, "--out", str(out)]) == 0
    return out


def test_local_cluster_rows_equal_the_local_rows(distributed, local, tmp_path, capsys):
    out = tmp_path / "st"
    code, text, err = accuracy([*TINY, "--workers", 2, "--out", out], capsys)
    assert code == 0, err
    df = once_each(out, 4)
    pd.testing.assert_frame_equal(decided(out), decided(local))
    # trained in the cluster's processes, each row naming its machine; the local rows name this one
    assert os.getpid() not in set(df["worker_pid"])
    assert df["worker_host"].notna().all() and df["worker_cpu"].notna().all() and (df["worker_cores"] >= 1).all()
    assert set(df["worker_threads"]) == {1}
    mine = pd.read_csv(local / runs.RESULTS)
    assert set(mine["worker_pid"]) == {os.getpid()} and set(mine["worker_threads"]) == {1}
    meta = json.loads((out / runs.METADATA).read_text())
    assert meta["sessions"][-1]["cluster"]["workers"] == 2 and meta["settings"]["workers"] == 2
    assert "candidate - baseline, paired by seed" in text


def test_resume_on_a_scheduler_trains_only_the_missing_units(scheduler, local, tmp_path, capsys):
    address, client = scheduler
    out = tmp_path / "st"
    out.mkdir()
    for name in (runs.METADATA, runs.RESULTS):
        (out / name).write_bytes((local / name).read_bytes())
    lines = (out / runs.RESULTS).read_text().splitlines(keepends=True)
    # units: rows 1-2, 3-4, 5-6, 7-8; the second unit loses a row, the last is cut mid-row
    kept = lines[:3] + lines[4:7] + [lines[7][:12]]
    (out / runs.RESULTS).write_text("".join(kept))
    code, text, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
    assert code == 0, err
    assert "2 already finished in this folder" in text
    df = once_each(out, 4)
    pd.testing.assert_frame_equal(decided(out), decided(local))
    redone = set(df.loc[df["worker_pid"] != os.getpid(), "unit_id"])
    assert len(redone) == 2 and set(df["worker_pid"]) - {os.getpid()} <= set(client.run(os.getpid).values())
    meta = json.loads((out / runs.METADATA).read_text())
    assert [s["units_measured"] for s in meta["sessions"]] == [4, 2]
    assert meta["sessions"][-1]["cluster"]["scheduler"] == address


def test_ctrl_c_keeps_the_finished_seeds_and_releases_the_tasks(scheduler, local, tmp_path, capsys, monkeypatch):
    address, client = scheduler
    real, calls = runs.ResultsWriter.write, []

    def write(self, row):
        calls.append(row)
        if len(calls) == 3:  # Ctrl-C once the first seed's two rows are in
            raise KeyboardInterrupt
        real(self, row)

    monkeypatch.setattr(runs.ResultsWriter, "write", write)
    out = tmp_path / "st"
    code, _, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
    assert code == 130 and err.strip().splitlines() == [err.strip()]
    assert f"run again with --out {out} to resume" in err
    assert len(pd.read_csv(out / runs.RESULTS)) == 2
    # the driver's tasks and data are gone from the scheduler, not trained on for nobody
    deadline = time.time() + 30
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.time() < deadline:
        time.sleep(0.1)
    assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
    monkeypatch.setattr(runs.ResultsWriter, "write", real)
    code, text, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
    assert code == 0, err
    once_each(out, 4)
    pd.testing.assert_frame_equal(decided(out), decided(local))


def test_ctrl_c_from_a_terminal_stops_the_local_cluster_with_one_line(distributed, tmp_path):
    """A real SIGINT to the whole process group, as a terminal sends it, reaches the driver and the
    LocalCluster's workers: one line, exit 130, no worker tracebacks, no process left behind."""
    import signal

    out = tmp_path / "st"
    argv = [sys.executable, "-m", "lstm_numba", "accuracy", *TINY, "--tasks", "lm", "--seeds", "30",
            "--iterations", "200", "--patience", "50", "--workers", "2", "--out", str(out)]
    # a test started from a background job inherits SIGINT ignored; a terminal's process has the default
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # until the first seed's rows are in
            if (out / runs.RESULTS).exists() and len((out / runs.RESULTS).read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, err
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("worker processes outlived the interrupted driver")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert f"run again with --out {out} to resume" in err
    rows = pd.read_csv(out / runs.RESULTS)
    assert len(rows) >= 2 and (rows.groupby("unit_id").size() == 2).all()


def test_a_unit_delivered_twice_is_written_once(scheduler, local, tmp_path, capsys, monkeypatch):
    address, _ = scheduler
    real = cluster.run_units

    def twice(client, s, todo, datasets, code, write):
        def write_twice(u, rows):
            write(u, rows)
            write(u, rows)

        real(client, s, todo, datasets, code, write_twice)

    monkeypatch.setattr(cluster, "run_units", twice)
    out = tmp_path / "st"
    code, _, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
    assert code == 0, err
    once_each(out, 4)
    pd.testing.assert_frame_equal(decided(out), decided(local))


def test_other_code_on_a_worker_is_refused(scheduler, tmp_path, capsys, monkeypatch):
    address, _ = scheduler
    monkeypatch.setattr(study, "code_version", lambda s: "0000driver")  # the workers compute the real one
    code, _, err = accuracy([*TINY, "--scheduler", address, "--out", tmp_path / "st"], capsys)
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert "runs other code" in err and "0000driver" in err


def test_a_worker_killed_mid_task_costs_only_time(scheduler, local, tmp_path, capsys, monkeypatch):
    """The first unit to finish kills its worker before handing its rows back: the scheduler runs
    the unit again elsewhere, and every unit is written exactly once, with the same rows."""
    address, client = scheduler
    marker = tmp_path / "killed"
    before = set(client.run(os.getpid).values())

    def dies_once(*args):  # shipped to the workers by value (a closure)
        from lstm_numba import cluster as on_worker

        rows = on_worker._unit_task(*args)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return rows
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)

    monkeypatch.setattr(cluster, "_unit_task", dies_once)
    out = tmp_path / "st"
    code, _, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
    assert code == 0, err
    killed = int(marker.read_text())
    assert killed in before
    df = once_each(out, 4)
    assert killed not in set(df["worker_pid"])  # its rows died with it; another worker's run was written
    pd.testing.assert_frame_equal(decided(out), decided(local))


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written


def test_unreachable_or_malformed_scheduler_is_one_line(distributed, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.5)
    silent = socket.socket()  # accepts connections (the kernel does) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()  # nothing listens there now
    try:
        for address, fragment in ((f"tcp://127.0.0.1:{closed}", "no Dask scheduler reachable"),
                                  (f"tcp://127.0.0.1:{silent.getsockname()[1]}", "no Dask scheduler reachable"),
                                  ("nosuchhost", "missing port"), ("http://example.org:80", "unknown address scheme")):
            out = tmp_path / "st"
            code, _, err = accuracy([*TINY, "--scheduler", address, "--out", out], capsys)
            assert code == 2, (address, err)
            assert err.strip().splitlines() == [err.strip()] and fragment in err, address
            assert not out.exists()
    finally:
        silent.close()


@pytest.mark.parametrize("argv, fragment", [
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "exclude each other"),
    (["--workers", "0"], "--workers 0: must be positive"),
    (["--workers", "-1"], "--workers -1: must be positive"),
    (["--workers", "999"], "--workers 999: more than"),
    (["--workers", "2", "--jobs", "2"], "--jobs is for local worker processes"),
    (["--workers", "two"], "--workers"),
])
def test_cluster_options_checked_before_anything_starts(tmp_path, capsys, argv, fragment):
    out = tmp_path / "st"
    code, _, err = accuracy([*TINY, *argv, "--out", out], capsys)
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and fragment in err
    assert not out.exists()


def test_without_dask_the_cluster_options_say_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code, _, err = accuracy([*TINY, "--workers", "2", "--out", tmp_path / "st"], capsys)
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert "pip install 'mathbench[dask]'" in err and not (tmp_path / "st").exists()


def test_the_local_study_does_not_import_dask():
    snippet = ("import sys, lstm_numba.study, lstm_numba.cli; "
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", snippet], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_status_names_the_machines_and_older_folders_still_report(capsys):
    df = pd.DataFrame({"unit_id": ["a", "a", "b", "b", "c", "c"], "worker_host": ["x", "x", "y", "y", "x", "x"]})
    assert study.status(df, {}) == ["trained on 2 machines: x (2 units), y (1 unit)"]
    assert study.status(df.assign(worker_host="x"), {}) == []
    # a committed study from before the worker columns
    old = Path(__file__).resolve().parents[1] / "results" / "lstm-accuracy-embedded"
    assert "worker_host" not in pd.read_csv(old / runs.RESULTS, nrows=1).columns
    assert cli.main(["report", str(old)]) == 0
    assert "candidate - baseline" in capsys.readouterr().out


def test_a_scheduler_without_workers_is_one_line(distributed, tmp_path, capsys):
    """Tasks sent there would wait forever: refused before the run folder is made."""
    lc = distributed.LocalCluster(n_workers=0, processes=True, dashboard_address="127.0.0.1:0",
                                  silence_logs=logging.ERROR)
    try:
        out = tmp_path / "st"
        code, _, err = accuracy([*TINY, "--scheduler", lc.scheduler_address, "--out", out], capsys)
        assert code == 2, err
        assert err.strip().splitlines() == [err.strip()] and "the scheduler has no workers" in err
        assert not out.exists()
    finally:
        lc.close()
