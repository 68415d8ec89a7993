"""The defects of issue 9 found by using ``python -m lstm_numba train/predict/generate`` on real
files: each bad input is one line on stderr, exit code 2, and nothing written. In-process, like
test_lstm_cli (kernels compile once per session); tiny models, no timing assertions."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lstm_numba import cli, data
from lstm_numba.train import load, save
from mathbench.core.errors import UsageError
from test_lstm_cli import assert_usage_error, run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "occupancy"
HEADER = '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"\n'
SMALL = ["--hidden", "4", "--iterations", "3", "--batch", "2", "--seq-len", "8", "--no-progress"]


def occ_rows(n, start=0, step=60, row_id=True, first_id=1):
    """UCI-format rows, one a minute from 2015-02-04 00:00 + start seconds."""
    t0 = np.datetime64("2015-02-04T00:00:00") + np.timedelta64(start, "s")
    out = []
    for i in range(n):
        date = str(t0 + np.timedelta64(i * step, "s")).replace("T", " ")
        vals = f"{21 + i % 7 * 0.1:.2f},{27 + i % 5 * 0.2:.3f},{(i % 3) * 200},{700 + i % 11},0.0047{i % 9}1,{i % 2}"
        out.append((f'"{first_id + i}",' if row_id else "") + f'"{date}",{vals}\n')
    return "".join(out)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def files_in(folder: Path) -> set:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------------------------
# predict uses the data recorded in the model, or stops; train and predict name their data


@pytest.fixture(scope="module")
def lm_on_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    text = d / "story.txt"
    text.write_text("Once upon a time a small fox met a quiet owl by the river. " * 40)
    model = d / "m.npz"
    assert cli.main(["train", *SMALL, "--data", str(text), "--save", str(model)]) == 0
    return text, model


def test_train_and_predict_name_the_recorded_file(lm_on_file, capsys):
    text, model = lm_on_file
    meta = load(model).meta
    assert meta["data_source"] == {"text": {"source": str(text.resolve()),
                                            "sha256": data.load_text(text).sha256}}
    code, out, err = run(["predict", model], capsys)
    assert code == 0, err
    assert f"data: text {text.resolve()} (sha256 " in out and "embedded" not in out
    # the same numbers as naming the file explicitly, not the embedded corpus's
    code, out_explicit, _ = run(["predict", model, "--data", text], capsys)
    assert out.splitlines()[0] == out_explicit.splitlines()[0]


def test_predict_stops_when_the_recorded_file_changed_or_vanished(lm_on_file, tmp_path, capsys):
    text, model = lm_on_file
    copy = tmp_path / "story.txt"
    copy.write_text(text.read_text())
    m = tmp_path / "m.npz"
    code, _, err = run(["train", *SMALL, "--data", copy, "--save", m], capsys)
    assert code == 0, err
    copy.write_text(copy.read_text().replace("fox", "cat"))
    code, out, err = run(["predict", m], capsys)
    assert_usage_error(code, err, f"{copy.resolve()} has changed since")
    assert "pass --data FILE" in err and out == ""
    copy.unlink()
    code, out, err = run(["predict", m], capsys)
    assert_usage_error(code, err, "which no longer exists; pass --data FILE")
    assert out == ""


def test_predict_stops_when_the_model_records_no_data(lm_on_file, tmp_path, capsys):
    _, model = lm_on_file
    m = load(model)
    for i, meta in enumerate(({k: v for k, v in m.meta.items() if k != "data_source"},
                              {**m.meta, "data_source": {"text": "embedded"}})):
        path = save(m, tmp_path / f"old{i}.npz", meta)
        code, out, err = run(["predict", path], capsys)
        assert_usage_error(code, err, "does not record the data it was trained on")
        assert out == ""


def test_classify_predict_uses_the_recorded_test_file(tmp_path, capsys):
    train_f = write(tmp_path, "train.txt", HEADER + occ_rows(60))
    test_f = write(tmp_path, "test.txt", HEADER + occ_rows(40, start=86400))
    m = tmp_path / "c.npz"
    code, out, err = run(["train", "--task", "classify", *SMALL, "--occupancy-train", train_f,
                          "--occupancy-test", test_f, "--save", m], capsys)
    assert code == 0, err
    assert f"data: train {train_f.resolve()} (sha256 " in out and f"; test {test_f.resolve()} (sha256 " in out
    code, out, err = run(["predict", m], capsys)
    assert code == 0, err
    assert f"data: test {test_f.resolve()}" in out and "n 33" in out  # 40 rows, windows of 8
    test_f.rename(tmp_path / "moved.txt")
    code, out, err = run(["predict", m], capsys)
    assert_usage_error(code, err, "which no longer exists; pass --occupancy-test FILE")


def test_embedded_models_record_and_use_the_embedded_data(tmp_path, capsys):
    m = tmp_path / "c.npz"
    code, out, err = run(["train", "--task", "classify", *SMALL, "--save", m], capsys)
    assert code == 0, err
    assert "data: train embedded (sha256 " in out
    code, out, err = run(["predict", m], capsys)
    assert code == 0 and "data: test embedded (sha256 " in out


# --------------------------------------------------------------------------------------------
# damaged model files


@pytest.fixture(scope="module")
def cls_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cls") / "c.npz"
    assert cli.main(["train", "--task", "classify", *SMALL, "--save", str(path)]) == 0
    return path


@pytest.mark.parametrize("damage, fragment", [
    (lambda b: b"", "is empty (0 bytes)"),
    (lambda b: b[: len(b) // 2], "not an intact lstm_numba model file"),
    (lambda b: b[:-30], "not an intact lstm_numba model file"),
    (lambda b: b[:200] + bytes([b[200] ^ 0x10]) + b[201:], "not an intact lstm_numba model file"),
    (lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 1]) + b[len(b) // 2 + 1:], "Bad CRC-32"),
    (lambda b: b"PK\x03\x04" + b"\x00" * 40, "not an intact lstm_numba model file"),
])
def test_damaged_model_file_is_one_line_exit_2(cls_model, tmp_path, capsys, damage, fragment):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(damage(cls_model.read_bytes()))
    for argv in (["predict", bad], ["generate", bad]):
        code, out, err = run(argv, capsys)
        assert_usage_error(code, err, fragment)
        assert out == ""


def test_every_single_bit_flip_is_caught_or_harmless(cls_model, tmp_path):
    src = cls_model.read_bytes()
    ref = load(cls_model)
    bad = tmp_path / "flip.npz"
    for pos in range(0, len(src), 13):
        b = bytearray(src)
        b[pos] ^= 0x04
        bad.write_bytes(bytes(b))
        try:
            m = load(bad)
        except UsageError:
            continue
        # zip fields nothing reads (times, versions): the same model
        assert m.config == ref.config and m.meta == ref.meta
        np.testing.assert_array_equal(m.params.flat, ref.params.flat)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_rejected(cls_model, tmp_path, capsys, value):
    m = load(cls_model)
    m.params.W_hh[0, 1, 2] = value
    path = save(m, tmp_path / "nan.npz")
    code, out, err = run(["predict", path], capsys)
    assert_usage_error(code, err, "parameter weight_hh_l0 has NaN or infinite values")
    assert "loss nan" not in out and out == ""


def test_finite_weights_that_overflow_are_rejected(cls_model, tmp_path, capsys):
    m = load(cls_model)
    m.params.flat[:] = 3e38  # finite in float32; inf - inf in the forward pass
    path = save(m, tmp_path / "huge.npz")
    code, out, err = run(["predict", path], capsys)
    assert_usage_error(code, err, "held-out loss is nan on that data; its weights overflow float32")
    assert out == ""


@pytest.mark.parametrize("key, value, fragment", [
    ("feature_std", [1.0, 0.0, 1.0, 1.0, 1.0], "feature_std in its metadata has a zero or negative entry"),
    ("feature_std", [1.0, -2.0, 1.0, 1.0, 1.0], "has a zero or negative entry"),
    ("feature_mean", [0.0, 0.0, 0.0], "feature_mean in its metadata must be a list of 5 finite numbers"),
    ("feature_mean", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "must be a list of 5 finite numbers"),
    ("feature_std", [1.0, 1.0, 1.0, 1.0, None], "must be a list of 5 finite numbers"),
    ("feature_mean", "abc", "must be a list of 5 finite numbers"),
    ("seq_len", "32", "seq_len in its metadata is '32', not a positive whole number"),
    ("seq_len", 0, "not a positive whole number"),
])
def test_bad_model_metadata_is_rejected(cls_model, tmp_path, capsys, key, value, fragment):
    m = load(cls_model)
    path = save(m, tmp_path / "meta.npz", {**m.meta, key: value})
    code, out, err = run(["predict", path], capsys)
    assert_usage_error(code, err, fragment)
    assert out == ""


def test_nan_written_into_the_metadata_json_is_rejected(cls_model, tmp_path, capsys):
    # json.dumps writes NaN for float('nan'), and json.loads reads it back: a hand-edited file
    m = load(cls_model)
    path = save(m, tmp_path / "m.npz", {**m.meta, "feature_mean": [float("nan")] * 5})
    code, _, err = run(["predict", path], capsys)
    assert_usage_error(code, err, "feature_mean in its metadata must be a list of 5 finite numbers")


def test_failed_save_leaves_no_file(tmp_path, capsys, monkeypatch):
    def disk_full(file, *a, **kw):
        Path(file).write_bytes(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)  # what train.save writes with
    code, out, err = run(["train", *SMALL, "--save", tmp_path / "m.npz"], capsys)
    assert_usage_error(code, err, "No space left on device")
    assert files_in(tmp_path) == set()


# --------------------------------------------------------------------------------------------
# occupancy files


def test_header_naming_the_row_id_column_is_accepted(tmp_path):
    rows = occ_rows(12)
    ref = data.load_occupancy(write(tmp_path, "uci.txt", HEADER + rows))
    for name, header in (("r.txt", '"no",' + HEADER), ("pandas.txt", '"",' + HEADER),
                         ("pandas_plain.txt", "," + HEADER.replace('"', ""))):
        s = data.load_occupancy(write(tmp_path, name, header + rows))
        np.testing.assert_array_equal(s.x, ref.x)
        np.testing.assert_array_equal(s.y, ref.y)


def test_rows_without_row_id_are_accepted(tmp_path):
    ref = data.load_occupancy(write(tmp_path, "uci.txt", HEADER + occ_rows(12)))
    s = data.load_occupancy(write(tmp_path, "noid.txt", HEADER + occ_rows(12, row_id=False)))
    np.testing.assert_array_equal(s.x, ref.x)
    np.testing.assert_array_equal(s.y, ref.y)


@pytest.mark.parametrize("text, fragment", [
    # a header naming the id column promises an id on every row
    ('"no",' + HEADER + occ_rows(3, row_id=False), "line 2: 7 fields, expected 8 (the row id named in the header"),
    # the first row settles the layout; a later row without the id is named as such
    (HEADER + occ_rows(3) + occ_rows(1, start=600, row_id=False), "line 5: 7 fields, expected 8 like line 2"),
    (HEADER + "".join(reversed(occ_rows(3).splitlines(keepends=True))),
     "line 3: date '2015-02-04 00:01:00' is not after the previous row's '2015-02-04 00:02:00'"),
    (HEADER + occ_rows(2) + occ_rows(1, start=60, first_id=3), "line 4: date '2015-02-04 00:01:00' is not after"),
    (HEADER + occ_rows(2).replace("2015-02-04 00:01:00", "yesterday"), "line 3: date is 'yesterday', not a date"),
    (HEADER + occ_rows(2).replace("2015-02-04 00:01:00", "2015-02-04 00:01:00.7xyz"), "not a date and time"),
    ("   \n\t\n", "contains only whitespace"),
])
def test_bad_occupancy_rows(tmp_path, capsys, text, fragment):
    bad = write(tmp_path, "bad.txt", text)
    with pytest.raises(UsageError, match=re.escape(fragment)):
        data.load_occupancy(bad)
    good = write(tmp_path, "good.txt", HEADER + occ_rows(40))
    model = tmp_path / "m.npz"
    code, out, err = run(["train", "--task", "classify", *SMALL, "--occupancy-train", bad, "--occupancy-test",
                          good, "--save", model], capsys)
    assert_usage_error(code, err, fragment)
    assert out == "" and not model.exists()


def test_windows_never_span_a_gap(tmp_path):
    # two recordings joined across a gap of two days, and a missing minute inside the second
    text = HEADER + occ_rows(20) + occ_rows(6, start=2 * 86400) + occ_rows(15, start=2 * 86400 + 7 * 60)
    s = data.load_occupancy(write(tmp_path, "joined.txt", text))
    assert list(np.unique(s.start)) == [0, 20, 26]
    d = data.sensor_data(s, s, "x")
    X, y = d.windows("test", 8)
    assert len(y) == (20 - 7) + 0 + (15 - 7)  # the 6-row segment is shorter than a window
    ends = d.test_ends(8)
    assert np.all(s.start[ends] == s.start[ends - 7])  # first and last row in one segment
    x, _ = d.train_batch(np.random.default_rng(0), 64, 8)
    starts = x[0, :, 0]  # normalized temperature of each window's first row is some row's
    assert x.shape == (8, 64, 5) and np.isin(starts, d.train_x[:, 0]).all()
    with pytest.raises(UsageError, match="no 21 consecutive rows without a time gap .longest gap-free run: 20"):
        d.check_seq_len(21)


def test_jitter_of_the_real_files_is_no_gap():
    if not (SHARED / "datatest.txt").exists():
        pytest.skip("shared occupancy copy absent")
    s = data.load_occupancy(SHARED / "datatest.txt")  # rows 59-61 s apart
    assert s.start is not None and not s.start.any()


def _hr_last(n):
    """Rows with HumidityRatio as the last column, every value 19 characters wide (as in the UCI
    files), so a cut inside the last one is visible."""
    header = '"date","Temperature","Humidity","Light","CO2","Occupancy","HumidityRatio"\n'
    rows = [f'"{i + 1}","2015-02-04 00:{i:02d}:00",21.5,27.2,0,{700 + i},{i % 2},0.00479298817650{529 + i}\n'
            for i in range(n)]
    return header + "".join(rows)


def test_last_line_cut_inside_a_number_is_detected(tmp_path):
    full = _hr_last(10)
    body = full.rstrip("\n")
    last_value_start = body.rindex(",") + 1
    for cut in range(last_value_start + 1, len(body)):  # every cut inside the last value
        with pytest.raises(UsageError, match="line 11: the file ends without a line break.*truncated") as e:
            data.load_occupancy(write(tmp_path, "cut.txt", body[:cut]))
        assert "HumidityRatio" in str(e.value)
    # the cut that empties the value, and one inside the date, say truncated too
    for cut in (last_value_start, body.index("00:09:00") + 3):
        with pytest.raises(UsageError, match="truncated"):
            data.load_occupancy(write(tmp_path, "cut.txt", body[:cut]))
    # complete: with or without the final line break
    assert data.load_occupancy(write(tmp_path, "ok.txt", body)).y.size == 10
    assert data.load_occupancy(write(tmp_path, "ok.txt", full)).y.size == 10
    # a short value is fine once the file ends with a line break (the message says so)
    assert data.load_occupancy(write(tmp_path, "ok.txt", body[:-5] + "\n")).y.size == 10


def test_real_file_cut_anywhere_in_its_last_line_is_rejected(tmp_path):
    if not (SHARED / "datatest.txt").exists():
        pytest.skip("shared occupancy copy absent")
    raw = (SHARED / "datatest.txt").read_bytes()  # read only; the cut copies live in tmp_path
    body = raw.rstrip(b"\n")
    line_start = body.rindex(b"\n") + 1
    for cut in range(line_start + 1, len(body)):  # every cut but the complete line
        p = tmp_path / "cut.txt"
        p.write_bytes(body[:cut])
        with pytest.raises(UsageError, match="truncated"):
            data.load_occupancy(p)


def test_whitespace_only_files_are_named_so(tmp_path, capsys):
    p = write(tmp_path, "blank.txt", " \n\t \n")
    code, _, err = run(["train", *SMALL, "--data", p, "--save", tmp_path / "m.npz"], capsys)
    assert_usage_error(code, err, f"{p} contains only whitespace")
    assert files_in(tmp_path) == {"blank.txt"}
    with pytest.raises(UsageError, match="contains only whitespace"):
        data.load_occupancy(p)
    empty = write(tmp_path, "empty.txt", "")
    with pytest.raises(UsageError, match="is empty"):
        data.load_text(empty)


# --------------------------------------------------------------------------------------------
# output and help


def test_counts_print_as_whole_numbers_with_separators(cls_model, capsys):
    code, out, err = run(["predict", cls_model], capsys)
    assert code == 0, err
    assert re.search(r"\bn \d{1,3}(,\d{3})+\b", out) and "e+" not in out  # 2,873 windows
    code, out, _ = run(["train", *SMALL, "--save", cls_model.parent / "lm.npz"], capsys)
    assert re.search(r"\btokens \d{1,3}(,\d{3})+\b", out) and "e+" not in out


def test_train_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for fragment in ("--iterations ITERATIONS training steps (default: 300)", "--hidden HIDDEN hidden units per "
                     "layer (default: 64)", "(default: 0.01)", "--seed SEED seed of the initial weights and the "
                     "batch order (default: 0)", "--cell CELL", "(default: tanh:numba_simd)", "(default: sigmoid:numba_simd)",
                     "--patience PATIENCE", "--eval-every EVAL_EVERY", "--task {lm,classify}",
                     "(default: lm)"):
        assert fragment in out
    assert "(default: None)" not in out and "(default: False)" not in out


@pytest.mark.parametrize("env, fragment", [
    ("2", "NUMBA_NUM_THREADS=2 in the environment caps Numba's threads"),
    (None, "NUMBA_NUM_THREADS caps Numba's threads; it defaults to the 2 cores Numba sees"),
])
def test_thread_cap_is_named(tmp_path, capsys, monkeypatch, env, fragment):
    monkeypatch.setattr(cli.threads, "max_threads", lambda: 2)
    if env is None:
        monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("NUMBA_NUM_THREADS", env)
    for argv in (["train", "--threads", "3", "--save", tmp_path / "m.npz"], ["--threads", "3"]):
        code, _, err = run(argv, capsys)
        assert_usage_error(code, err, f"--threads 3: out of range 1..2 ({fragment})")
        assert "this machine's cores" not in err
    assert files_in(tmp_path) == set()
