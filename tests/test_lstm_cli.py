"""``python -m lstm_numba``: end to end into tmp_path, resume, and every bad-input path (one line
on stderr, exit code 2). Runs in-process (kernels compiled once per test session) except for a
couple of real subprocess checks. No wall-clock assertions."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lstm_numba import cli, peers, sweep
from mathbench.functions import registry
from mathbench.core import runs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "occupancy"

# A tiny lm sweep: 2 configurations x 2 variants (the baseline and isru/sigmoid:numba_simd), a
# fraction of a second each once compiled.
TINY = ["--tasks", "lm", "--layers", "1", "--hidden", "4,8", "--iterations", "4", "--repeats", "2",
        "--chunks", "2", "--seq-len", "8", "--batch", "2", "--eval-batch", "8", "--threads", "1",
        "--dtypes", "float32", "--peers", "off", "--no-progress", "--pairs", "isru"]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows(out_dir) -> pd.DataFrame:
    return pd.read_csv(Path(out_dir) / runs.RESULTS)


def assert_usage_error(code, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"lstm_numba( (report|train|generate|predict))?: error: ", lines[0]), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------------
# end to end


def test_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "quick"
    code, stdout, err = run(["--quick", "--peers", "off", "--no-progress", "--out", out], capsys)
    assert code == 0, err
    df = rows(out)
    assert list(df.columns) == sweep.COLUMNS
    assert len(df) == 2 * 2 * 3  # tasks x hidden x (baseline, isru, the seed's tanh/sigmoid)
    assert list(df["variant"].iloc[:3]) == ["tanh:numba_simd/sigmoid:numba_simd", "isru/sigmoid:numba_simd",
                                            "tanh/sigmoid"]
    assert list(df["role"].iloc[:3]) == ["baseline", "candidate", "seed (scalar libm)"]
    assert set(df["task"]) == {"lm", "classify"} and set(df["hidden"]) == {16, 32}
    assert not df.duplicated(["config_id", "variant"]).any()
    assert (df["train_step_s"] > 0).all() and (df["forward_s"] > 0).all() and (df["latency_s"] > 0).all()
    assert (df["throughput_seq_per_s"] > 0).all() and (df["compile_s"] >= 0).all()
    assert (df["train_step_lo"] <= df["train_step_s"]).all() and (df["train_step_s"] <= df["train_step_hi"]).all()
    base = df[df["baseline"]]
    assert (base["speedup_train"] == 1.0).all() and base["loss_diff"].isna().all()
    cand = df[~df["baseline"]]
    assert cand["speedup_train"].notna().all() and cand["loss_diff"].notna().all()
    lm, cls = df[df["task"] == "lm"], df[df["task"] == "classify"]
    assert lm["perplexity"].between(1, 100).all() and lm["f1"].isna().all()
    assert cls["accuracy"].between(0, 1).all() and cls["f1"].between(0, 1).all()
    assert (df["numba_threads"] == 1).all() and (df["blas_threads"].astype(str) == "1").all()
    assert (df["timing_samples"] == 2 * 2).all()  # repeats x chunks
    meta = json.loads((out / runs.METADATA).read_text())
    assert meta["kind"] == "lstm" and meta["finished"] is True
    assert meta["settings"]["iterations"] == 12 and meta["data"]["lm"]["source"] == "embedded"
    assert "speedup train" in stdout and "task lm" in stdout and "task classify" in stdout
    assert "isru/sigmoid" in stdout and "tanh/sigmoid (seed: scalar libm)" in stdout
    # per-loop facts: the seed's pair calls libm in both forward loops, the others in none
    seed = df[df["role"] == "seed (scalar libm)"]
    assert (seed["gate_fwd_libm"] == "expf").all() and (seed["cell_fwd_libm"] == "tanhf").all()
    assert (~seed["gate_fwd_vectorized"]).all() and seed["backward_vectorized"].all()
    fair = df[df["role"] != "seed (scalar libm)"]
    for loop in ("gate_fwd", "cell_fwd", "backward", "head"):
        assert fair[f"{loop}_vectorized"].all() and (fair[f"{loop}_libm"] == "none").all(), loop
    assert "vectorized loops" in stdout and "no (expf)" in stdout
    # validation-chosen checkpoints, baselines and states, intervals labelled by sample count
    assert df["best_step"].between(1, 12).all() and df["val_loss"].notna().all()
    assert lm["ref_bigram"].notna().all() and (lm["ref_bigram"] < lm["ref_unigram"]).all()
    assert cls["ref_threshold_acc"].notna().all() and set(df["quality_flag"]) <= {"trained", "weak", "not trained"}
    assert (df["timing_interval"] == "range").all() and (df["quality_interval"] == "range").all()  # n = 4, 2
    # 4 timing samples and 2 seeds per row: every interval printed is a range, none a "95%" one
    assert re.search(r"\d\.\d\d \{\d\.\d\d\.\.\d\.\d\d\}", stdout)
    assert not re.search(r"\d \[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]", stdout)
    assert "unigram" in stdout and "majority class accuracy" in stdout
    # the report subcommand reprints the summary from the folder
    code, stdout2, _ = run(["report", out], capsys)
    assert code == 0 and "speedup train" in stdout2


def test_resume_after_torn_and_partial_rows(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    before = rows(out)
    assert len(before) == 4
    first_cid, last_cid = before["config_id"].iloc[0], before["config_id"].iloc[-1]
    # Interrupted while writing the last configuration: its second row is missing and a torn
    # half line follows.
    path = out / runs.RESULTS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:25])
    code, _, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    after = rows(out)
    assert len(after) == 4
    assert not after.duplicated(["config_id", "variant"]).any()
    assert set(after["config_id"]) == {first_cid, last_cid}
    assert (after.groupby("config_id").size() == 2).all()
    # the finished configuration was kept as it was, not redone
    keep = lambda d: d[d["config_id"] == first_cid].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(before), keep(after))
    meta = json.loads((out / runs.METADATA).read_text())
    assert len(meta["sessions"]) == 2 and meta["sessions"][1]["configs_already_done"] == 1
    assert meta["sessions"][1]["configs_measured"] == 1


def test_resume_after_interrupt_redoes_only_unfinished(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = sweep.measure_config
    calls = []

    def interrupted(*a, **kw):
        calls.append(a[1])
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second configuration
        return real(*a, **kw)

    monkeypatch.setattr(sweep, "measure_config", interrupted)
    code, _, err = run([*TINY, "--out", out], capsys)
    assert code == 130 and f"run again with --out {out} to resume" in err  # names the folder
    assert len(rows(out)) == 2  # the finished configuration only; nothing of the second
    monkeypatch.setattr(sweep, "measure_config", real)
    counted = []
    monkeypatch.setattr(sweep, "measure_config", lambda *a, **kw: counted.append(a[1]) or real(*a, **kw))
    code, _, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    assert [c.hidden for c in counted] == [8]
    df = rows(out)
    assert len(df) == 4 and not df.duplicated(["config_id", "variant"]).any()
    # a third run has nothing left to do
    counted.clear()
    code, stdout, _ = run([*TINY, "--out", out], capsys)
    assert code == 0 and counted == [] and len(rows(out)) == 4 and "isru/sigmoid" in stdout


def test_resume_with_header_only_csv(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--hidden", "4", "--out", out]
    assert run(argv, capsys)[0] == 0
    path = out / runs.RESULTS
    path.write_text(path.read_text().splitlines(keepends=True)[0])  # killed before any row
    assert run(argv, capsys)[0] == 0
    assert len(rows(out)) == 2


@pytest.mark.skipif(not peers.available(), reason="torch (the peers extra) not installed")
def test_torch_peer_row_matches_numba(tmp_path, capsys):
    out = tmp_path / "peer"
    argv = [a if a != "off" else "on" for a in TINY] + ["--hidden", "8", "--out", out]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    df = rows(out)
    assert list(df["variant"]) == ["tanh:numba_simd/sigmoid:numba_simd", "isru/sigmoid:numba_simd",
                                   "torch tanh/sigmoid"]
    t = df[df["backend"] == "torch"].iloc[0]
    b = df[df["baseline"]].iloc[0]
    assert t["init"] == "copied" and t["torch_threads"] == 1
    # same weights, same batches, same Adam: torch.nn.LSTM ends at the Numba baseline's loss
    assert t["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert b["vs_torch_train"] > 0 and "torch peer (> 1: Numba faster)" in stdout


@pytest.mark.skipif(not (SHARED / "datatraining.txt").exists(), reason="shared occupancy copy absent")
def test_real_occupancy_files(tmp_path, capsys):
    out = tmp_path / "occ"
    code, _, err = run(["--occupancy-train", SHARED / "datatraining.txt", "--occupancy-test",
                        SHARED / "datatest.txt", "--layers", "1", "--hidden", "4", "--iterations", "3",
                        "--repeats", "1", "--chunks", "1", "--seq-len", "8", "--batch", "4", "--eval-batch", "256",
                        "--threads", "1", "--peers", "off", "--no-progress", "--out", out], capsys)
    assert code == 0, err
    df = rows(out)
    assert set(df["task"]) == {"classify"} and df["data"].iloc[0].endswith("datatest.txt")
    assert df["accuracy"].between(0, 1).all()


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, and no run folder left behind


HEADER = '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"\n'


@pytest.mark.parametrize("argv, fragment", [
    (["--pairs", "nosuch"], "unknown function 'nosuch'"),
    (["--pairs", "isru/nosuch"], "unknown function 'nosuch'"),
    (["--pairs", "tanh:nosuch"], "unknown implementation 'nosuch'"),
    (["--pairs", "tanh:numpy"], "is a numpy implementation"),
    (["--pairs", "isru/"], "expected CELL/GATE"),
    (["--hidden", "0"], "--hidden 0: must be positive"),
    (["--hidden", "16,-32"], "--hidden -32: must be positive"),
    (["--hidden", "abc"], "--hidden 'abc': not a whole number"),
    (["--layers", "0"], "--layers 0: must be positive"),
    (["--iterations", "0"], "--iterations 0: must be positive"),
    (["--repeats", "-1"], "--repeats -1: must be positive"),
    (["--seq-len", "0"], "--seq-len 0: must be positive"),
    (["--batch", "0"], "--batch 0: must be positive"),
    (["--eval-batch", "0"], "--eval-batch 0: must be positive"),
    (["--chunks", "0"], "--chunks 0: must be positive"),
    (["--lr", "0"], "--lr 0.0: must be a positive number"),
    (["--lr", "nan"], "must be a positive number"),
    (["--clip", "-1"], "--clip -1.0: must be >= 0"),
    (["--seed", "-3"], "--seed -3: must be non-negative"),
    (["--threads", "999"], "--threads 999: out of range"),
    (["--threads", "0"], "--threads 0: must be positive"),
    (["--tasks", "speech"], "unknown task 'speech'"),
    (["--dtypes", "float16"], "unknown dtype 'float16'"),
    (["--iterations", "many"], "invalid int value"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--seq-len", "100000"], "text too short for --seq-len 100000"),
    (["--tasks", "lm", "--occupancy-train", "a.txt", "--occupancy-test", "b.txt"], "add it to --tasks"),
    (["--occupancy-train", "a.txt"], "go together"),
])
def test_bad_arguments(tmp_path, capsys, argv, fragment):
    out = tmp_path / "never"
    code, _, err = run([*argv, "--no-progress", "--out", out], capsys)
    assert_usage_error(code, err, fragment)
    assert not out.exists()


def test_activation_without_backprop_form(tmp_path, capsys, monkeypatch):
    tanh = registry.get("tanh")
    no_g = registry.Activation("nog", "test entry without g(y)", "approx", f=tanh.f, dfdx=tanh.dfdx, dfdy=None,
                               antiderivative=None, out_range=tanh.out_range, impls=tanh.impls)
    monkeypatch.setitem(registry.REGISTRY, "nog", no_g)
    code, _, err = run(["--pairs", "tanh/nog", "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "gate activation 'nog' has no backprop form")
    code, _, err = run(["--pairs", "nog", "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "cell activation 'nog' has no backprop form")


@pytest.mark.parametrize("name, content, fragment", [
    ("empty.txt", b"", "is empty"),
    ("binary.txt", b"\x00\x01\xff\xfe" * 10, "not UTF-8"),
])
def test_bad_text_file(tmp_path, capsys, name, content, fragment):
    p = tmp_path / name
    p.write_bytes(content)
    code, _, err = run(["--data", p, "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, fragment)
    assert str(p) in err
    code, _, err = run(["--data", tmp_path / "missing.txt", "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "does not exist")


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    (HEADER, "no data rows"),
    (HEADER.replace(',"Light"', ""), "header lacks column Light"),
    (HEADER + '"1","2015-02-04 17:51:00",23.18,27.272,426', "line 2: 5 fields, expected 8"),
    (HEADER + '"1","2015-02-04 17:51:00",23.18,27.272,x,721.25,0.0047,1\n', "line 2: Light is 'x', not a number"),
    (HEADER + '"1","2015-02-04 17:51:00",23.18,inf,426,721.25,0.0047,1\n', "Humidity is 'inf', not a finite"),
])
def test_bad_occupancy_file(tmp_path, capsys, text, fragment):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    good = tmp_path / "good.txt"
    good.write_text(HEADER + "".join(f'"{i}","2015-02-04 17:{i:02d}:00",23,27,426,721,0.0047,{i % 2}\n'
                                     for i in range(1, 40)))
    code, _, err = run(["--occupancy-train", good, "--occupancy-test", bad, "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, fragment)
    assert str(bad) in err


def test_unwritable_or_wrong_out_folder(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run([*TINY, "--out", afile], capsys)
    assert_usage_error(code, err, "exists and is not a folder")
    code, _, err = run([*TINY, "--out", afile / "run"], capsys)
    assert_usage_error(code, err, "afile")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run([*TINY, "--out", other], capsys)
    assert_usage_error(code, err, "is not a lstm run folder")
    mb = tmp_path / "mathbench-run"
    mb.mkdir()
    runs.write_json(mb / runs.METADATA, {"kind": "mathbench"})
    code, _, err = run([*TINY, "--out", mb], capsys)
    assert_usage_error(code, err, "is a 'mathbench' run, not a lstm run")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run([*TINY, "--out", ro / "run"], capsys)
        assert_usage_error(code, err, "not writable")
    finally:
        ro.chmod(0o755)


def test_peers_on_without_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(peers, "available", lambda name=peers.DEFAULT: False)
    code, _, err = run([*TINY, "--peers", "on", "--out", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "torch is not installed")


def test_report_bad_folder(tmp_path, capsys):
    code, _, err = run(["report", tmp_path / "nothing"], capsys)
    assert_usage_error(code, err, "does not exist")


def test_list_and_help(capsys):
    code, out, _ = run(["--list"], capsys)
    assert code == 0 and "isru" in out and "backprop form" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "--occupancy-train" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["--hidden", "0"], "--hidden 0: must be positive"),
    (["sweep", "--pairs", "nosuch/sigmoid"], "unknown function 'nosuch'"),
])
def test_real_process_one_line_exit_2(tmp_path, argv, fragment):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "lstm_numba", *argv, "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert p.stderr.startswith("lstm_numba: error: ") and fragment in p.stderr
    assert p.stdout == ""


# --------------------------------------------------------------------------------------------
# train / generate / predict


def test_train_generate_predict_lm(tmp_path, capsys):
    model = tmp_path / "lm.npz"
    code, out, err = run(["train", "--hidden", "4", "--iterations", "3", "--batch", "2", "--seq-len", "8",
                          "--no-progress", "--save", model], capsys)
    assert code == 0, err
    assert model.exists() and "test (held-out, scored once at the chosen checkpoint): loss" in out
    assert "validation after 3 steps: loss" in out and "chosen checkpoint: step 3" in out
    assert "unigram" in out and "bigram" in out and "this model: not trained" in out  # 3 steps learn nothing
    lines = out.splitlines()
    assert sum(line.startswith("test ") for line in lines) == 1  # scored once, after the validations
    assert max(i for i, x in enumerate(lines) if x.startswith("validation")) < lines.index(
        next(x for x in lines if x.startswith("test ")))
    code, out, err = run(["generate", model, "--prime", "The ", "--length", "20"], capsys)
    assert code == 0, err
    assert out.startswith("The ") and len(out.rstrip("\n")) == 24
    code, out, err = run(["predict", model], capsys)
    assert code == 0 and "perplexity" in out and "baselines on the same test data: unigram" in out
    # errors: existing --save path, missing model, text outside the vocabulary, wrong task
    code, _, err = run(["train", "--hidden", "4", "--save", model], capsys)
    assert_usage_error(code, err, "exists; a saved model is never overwritten")
    code, _, err = run(["generate", tmp_path / "none.npz"], capsys)
    assert_usage_error(code, err, "no such model file")
    code, _, err = run(["generate", model, "--prime", "€"], capsys)
    assert_usage_error(code, err, "not in it: '€'")
    code, _, err = run(["predict", model, "--occupancy-test", "x.txt"], capsys)
    assert_usage_error(code, err, "is a language model")


def test_train_predict_classify(tmp_path, capsys):
    model = tmp_path / "cls.npz"
    code, out, err = run(["train", "--task", "classify", "--cell", "isru", "--hidden", "4", "--iterations", "3",
                          "--batch", "4", "--seq-len", "8", "--no-progress", "--save", model], capsys)
    assert code == 0, err
    assert "accuracy" in out and "f1" in out and "best single-feature threshold accuracy" in out
    code, out, err = run(["predict", model], capsys)
    assert code == 0 and "accuracy" in out and "best single-feature threshold accuracy" in out
    code, _, err = run(["generate", model], capsys)
    assert_usage_error(code, err, "is a 'classify' model")
    code, _, err = run(["train", "--task", "classify", "--hidden", "0", "--save", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "--hidden 0: must be positive")
    code, _, err = run(["train", "--cell", "nosuch", "--save", tmp_path / "x"], capsys)
    assert_usage_error(code, err, "unknown function 'nosuch'")
