"""Resuming an LSTM sweep: the resume key holds every setting that changes a row, a folder
measured by other code is refused (one line, exit 2, nothing touched) unless --resume-anyway,
every session is recorded, and the output says what was skipped and what was measured."""
from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
from test_lstm_cli import TINY, run  # a 2-configuration sweep, in process

from lstm_numba import data as D, optim, peers, sweep
from lstm_numba import model as lstm_model, network, ops, variants
from lstm_numba.peers import torch as torch_peer
from lstm_numba.tasks import classify as task_classify, lm as task_lm
from mathbench.core import codegen, harness, jit, runs, stats, templating, threads
from mathbench.functions import registry

# --------------------------------------------------------------------------------------------
# the key

# settings that change rows of a configuration, each with another valid value
KEYED = {"iterations": 81, "repeats": 4, "chunks": 5, "seq_len": 16, "batch": 8, "eval_batch": 16, "seed": 1,
         "optimizer": "sgd", "lr": 0.02, "clip": 1.0, "pairs": [sweep.BASELINE, ("isru", "isru_sigmoid")],
         "peers": "on", "latency_rounds": 6, "prediction_time": 0.1, "eval_chars": 100, "eval_windows": 100,
         "val_every": 7, "patience": 2}
PER_CONFIG = {"tasks", "layers", "hidden", "dtypes", "threads"}  # fields of sweep.Config
VIA_DATA = {"data", "occupancy_train", "occupancy_test"}  # the data's fingerprint is in the key


def test_every_setting_is_classified():
    # a new setting must be added to one of these sets (and to the key if it changes rows)
    assert {f.name for f in dataclasses.fields(sweep.Settings)} == set(KEYED) | PER_CONFIG | VIA_DATA


@pytest.fixture(scope="module")
def text():
    return D.default_text()


CONFIG = sweep.Config("lm", 1, 16, "float32", 1)


@pytest.mark.parametrize("name", list(KEYED))
def test_each_setting_that_changes_rows_is_in_the_key(name, text):
    s = sweep.Settings(peers="off")
    changed = dataclasses.replace(s, **{name: KEYED[name]})
    assert sweep.config_id(changed, CONFIG, text) != sweep.config_id(s, CONFIG, text)


@pytest.mark.parametrize("field,value", [("task", "classify"), ("layers", 2), ("hidden", 32), ("dtype", "float64"),
                                         ("threads", 2)])
def test_configuration_and_data_are_in_the_key(field, value, text):
    s = sweep.Settings(peers="off")
    assert (sweep.config_id(s, dataclasses.replace(CONFIG, **{field: value}), text)
            != sweep.config_id(s, CONFIG, text))
    other = D.TextData("other", text.vocab, text.train[1:], text.test)
    assert sweep.config_id(s, CONFIG, other) != sweep.config_id(s, CONFIG, text)


MEASURING = [sweep, lstm_model, network, ops, variants, task_lm, task_classify, torch_peer, optim, D, peers, harness, stats,
             registry, threads, jit, codegen, templating]


@pytest.mark.parametrize("module", MEASURING, ids=lambda m: m.__name__)
def test_code_version_covers_the_measuring_sources(module):
    assert module.__file__ in sweep.code_files(sweep.Settings().pairs)


def test_code_version_covers_the_pairs_scalars():
    impl = registry.resolve("isru")[1]
    files = sweep.code_files([sweep.BASELINE, ("isru", "sigmoid")])
    assert {inspect.getsourcefile(impl.forward.py_func), inspect.getsourcefile(impl.dfdy.py_func)} <= files


def test_code_version_follows_contents_not_paths(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("x = 1\n")
    assert sweep.hash_files([a]) == sweep.hash_files([b])
    b.write_text("x = 2\n")
    assert sweep.hash_files([a]) != sweep.hash_files([b])


# --------------------------------------------------------------------------------------------
# end to end


def meta_of(out) -> dict:
    return json.loads((out / runs.METADATA).read_text())


def test_other_code_version_is_refused_unless_resume_anyway(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, stdout, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    assert "2 configurations: 2 measured" in stdout and "skipped" not in stdout
    first = meta_of(out)["sessions"][0]
    assert first["code_version"] == sweep.code_version(sweep.Settings(pairs=[sweep.BASELINE, ("isru", "sigmoid")]))
    assert set(first["git"]) == {"commit", "dirty"} and first["command"].startswith("python -m lstm_numba --tasks")
    assert set(first["machine_state"]) == {"before", "after"}

    files = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(sweep, "code_version", lambda s: "0123456789abcdef")
    code, _, err = run([*TINY, "--out", out], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "other code" in lines[0] and first["code_version"] in lines[0] and "--resume-anyway" in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # nothing touched

    code, stdout, err = run([*TINY, "--out", out, "--resume-anyway"], capsys)
    assert code == 0, err
    assert "2 configurations: 0 measured" in stdout and "2 already finished in this folder (skipped)" in stdout
    sessions = meta_of(out)["sessions"]
    assert [s["code_version"] for s in sessions] == [first["code_version"], "0123456789abcdef"]
    assert sessions[1]["configs_already_done"] == 2 and sessions[1]["configs_measured"] == 0
    assert "--resume-anyway" in sessions[1]["command"]
    # this version is now part of the run: resuming with it again needs no flag
    code, _, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err


def test_changed_iterations_are_measured_not_skipped(tmp_path, capsys):
    out = tmp_path / "run"
    assert run([*TINY, "--out", out], capsys)[0] == 0
    i = TINY.index("--iterations") + 1
    argv = [*TINY[:i], str(int(TINY[i]) + 2), *TINY[i + 1:]]
    code, stdout, err = run([*argv, "--out", out], capsys)
    assert code == 0, err
    assert "2 configurations: 2 measured" in stdout and "skipped" not in stdout
    df = runs.read_rows(out)
    assert sorted(df["iterations"].unique()) == [int(TINY[i]), int(TINY[i]) + 2] and len(df) == 8


def test_resumed_run_and_report_say_what_was_done(tmp_path, capsys):
    out = tmp_path / "run"
    assert run([*TINY, "--out", out], capsys)[0] == 0
    path = out / runs.RESULTS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # the second configuration's rows never written
    code, stdout, _ = run(["report", out], capsys)
    assert code == 0 and "incomplete (1 of 2 configurations)" in stdout
    code, stdout, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    assert "2 configurations: 1 measured" in stdout and "1 already finished in this folder (skipped)" in stdout
    code, stdout, _ = run(["report", out], capsys)
    assert code == 0 and "incomplete" not in stdout
