"""Data for the LSTM benchmark: embedded defaults and the file loaders' error paths."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from lstm_numba import data
from mathbench.core.errors import UsageError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "occupancy"
HEADER = '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"\n'


def occ_row(i, t=23.18, h=27.27, light=426, co2=721.25, hr=0.00479, occ=1):
    return f'"{i}","2015-02-04 17:{i % 60:02d}:00",{t},{h},{light},{co2},{hr},{occ}\n'


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


# --------------------------------------------------------------------------------------------
# embedded defaults


def test_embedded_corpus_is_deterministic_and_pinned():
    a = data.embedded_corpus()
    assert a == data.embedded_corpus()
    assert 40_000 <= len(a) <= 50_000
    # Pinned: the corpus uses its own PRNG, so it is byte-identical on every machine and version.
    assert hashlib.sha256(a.encode()).hexdigest()[:16] == "a8aa16f4f81914eb"
    assert data.embedded_corpus(seed=2) != a


def test_default_text_split_and_batches():
    t = data.default_text()
    assert t.source == "embedded"
    assert t.n_vocab == len(set(t.vocab)) and 20 < t.n_vocab < 80
    n = t.train.size + t.test.size
    assert abs(t.test.size - 0.1 * n) <= 1
    assert t.decode(t.encode("the river")) == "the river"
    x, y = t.train_batch(np.random.default_rng(0), batch=4, seq_len=16)
    assert x.shape == y.shape == (16, 4) and x.dtype == np.int64
    np.testing.assert_array_equal(x[1:], y[:-1])  # targets are the inputs shifted by one
    x2, _ = t.train_batch(np.random.default_rng(0), batch=4, seq_len=16)
    np.testing.assert_array_equal(x, x2)  # same seed, same data order
    batches = list(t.eval_batches(seq_len=32, batch=50))
    windows = sum(b[0].shape[1] for b in batches)
    assert windows == (t.test.size - 1) // 32
    assert sum(b[0].shape[1] for b in t.eval_batches(32, 8, max_chars=320)) == 10


def test_default_sensor_deterministic_and_normalized():
    s = data.default_sensor()
    s2 = data.default_sensor()
    assert s.fingerprint == s2.fingerprint
    np.testing.assert_array_equal(s.train_x, s2.train_x)
    assert s.train_x.shape[1] == s.test_x.shape[1] == 5
    fit = s.train_x[:s.val_from]  # normalized with the rows the model fits, not the validation rows
    assert s.val_from == round(0.9 * s.train_y.size)
    np.testing.assert_allclose(fit.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(fit.std(axis=0), 1, atol=1e-9)
    assert set(np.unique(s.train_y)) == {0, 1} and set(np.unique(s.test_y)) == {0, 1}
    assert 0.15 < s.train_y.mean() < 0.6  # both classes well represented
    x, y = s.train_batch(np.random.default_rng(1), batch=3, seq_len=10, dtype=np.float32)
    assert x.shape == (10, 3, 5) and x.dtype == np.float32 and y.shape == (3,)
    ends = s.test_ends(10)
    assert ends[0] == 9 and ends[-1] == s.test_y.size - 1
    xs, ys = next(s.eval_batches(10, batch=len(ends)))
    np.testing.assert_array_equal(xs[-1, 0], s.test_x[9])  # window ends at its labelled row
    np.testing.assert_array_equal(ys, s.test_y[ends])
    assert s.test_ends(10, max_windows=7).size == 7


def test_binary_scores():
    sc = data.binary_scores([1, 0, 1, 1], [1, 0, 0, 1])
    assert sc["accuracy"] == 0.75 and sc["f1"] == pytest.approx(0.8)
    assert data.binary_scores([0, 0], [0, 0])["f1"] == 0.0


# --------------------------------------------------------------------------------------------
# text files


def test_load_text(tmp_path):
    p = write(tmp_path, "t.txt", "héllo wörld, " * 50)
    t = data.load_text(p)
    assert t.source == str(p) and "é" in t.vocab
    assert t.train.size + t.test.size == len("héllo wörld, " * 50)
    t.check_seq_len(16)
    with pytest.raises(UsageError, match="too short for --seq-len 100"):
        t.check_seq_len(100)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\n", "contains only whitespace"),
    (b"ok line\n\xff\xfe bad", r"line 2: not UTF-8"),
    (b"abc\x00def", "NUL"),
    (b"aaaaaaaa", "two distinct characters"),
])
def test_load_text_bad(tmp_path, content, message):
    p = write(tmp_path, "bad.txt", content, "wb")
    with pytest.raises(UsageError, match=message) as e:
        data.load_text(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_load_text_missing_and_folder(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        data.load_text(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="is a folder"):
        data.load_text(tmp_path)


# --------------------------------------------------------------------------------------------
# occupancy files


def test_load_occupancy_small(tmp_path):
    rows = "".join(occ_row(i, t=20 + i, occ=i % 2) for i in range(1, 21))
    p = write(tmp_path, "occ.txt", HEADER + rows + "\n")  # trailing blank line is fine
    s = data.load_occupancy(p)
    assert s.x.shape == (20, 5) and s.y.shape == (20,)
    assert s.x[0, 0] == 21 and list(s.y[:4]) == [1, 0, 1, 0]
    d = data.occupancy_data(p, p)
    assert d.train_x.shape == (20, 5) and d.val_from == 18
    np.testing.assert_allclose(d.train_x[:18, 0].mean(), 0, atol=1e-12)


def test_load_occupancy_header_in_other_order(tmp_path):
    header = '"date","Occupancy","CO2","Temperature","Humidity","Light","HumidityRatio"\n'
    p = write(tmp_path, "o.txt", header + '"1","2015-02-04 17:51:00",1,700,23.5,27,400,0.0047\n')
    s = data.load_occupancy(p)
    np.testing.assert_array_equal(s.x[0], [23.5, 27, 400, 700, 0.0047])
    assert s.y[0] == 1


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("\n\n", "contains only whitespace"),
    (HEADER, "no data rows"),
    (HEADER.replace(',"CO2"', ""), "line 1: header lacks column CO2"),
    ('"date","Temperature"\n', "header lacks columns Humidity, Light, CO2, HumidityRatio, Occupancy"),
    (HEADER.replace('"Occupancy"', '"Occupancy","Extra"'), "header has 8 names"),
    (HEADER + occ_row(1) + '"2","2015-02-04 17:52:00",23.1,27.2', r"line 3: 4 fields, expected 8.*truncated"),
    (HEADER + occ_row(1) + '"2","2015-02-04 17:52:00",23.1,27.2,426,721,0.0047,1,9\n', "line 3: 9 fields"),
    (HEADER + occ_row(1) + occ_row(2, co2="abc"), "line 3: CO2 is 'abc', not a number"),
    (HEADER + occ_row(1, light=""), "line 2: Light is '', not a number"),
    (HEADER + occ_row(1) + occ_row(2, t="nan"), "line 3: Temperature is 'nan', not a finite number"),
    (HEADER + occ_row(1, hr="inf"), "line 2: HumidityRatio is 'inf', not a finite"),
    (HEADER + occ_row(1, occ=2), "line 2: Occupancy is '2', expected 0 or 1"),
    (HEADER + occ_row(1, occ="yes"), "line 2: Occupancy is 'yes', not a number"),
])
def test_load_occupancy_bad(tmp_path, text, message):
    p = write(tmp_path, "bad.txt", text)
    with pytest.raises(UsageError, match=message) as e:
        data.load_occupancy(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_load_occupancy_binary_and_missing(tmp_path):
    p = write(tmp_path, "bin.txt", b"\x89PNG\r\n\x1a\n\xff\xff", "wb")
    with pytest.raises(UsageError, match="not UTF-8"):
        data.load_occupancy(p)
    with pytest.raises(UsageError, match="does not exist"):
        data.load_occupancy(tmp_path / "missing.txt")


def test_sensor_too_short_for_seq_len(tmp_path):
    p = write(tmp_path, "o.txt", HEADER + "".join(occ_row(i, occ=i % 2) for i in range(1, 6)))
    d = data.occupancy_data(p, p)
    d.check_seq_len(4)  # training windows end before row 4 (the last 10% label validation windows)
    with pytest.raises(UsageError, match=r"training \(without its last 10%, kept for validation\) series has 4 rows, "
                                         "fewer than --seq-len 5"):
        d.check_seq_len(5)
    d.check_seq_len(5, parts=("test",))
    with pytest.raises(UsageError, match="test series has 5 rows, fewer than --seq-len 6"):
        d.check_seq_len(6, parts=("test",))


@pytest.mark.skipif(not (SHARED / "datatraining.txt").exists(), reason="shared occupancy copy absent")
def test_real_occupancy_files():
    d = data.occupancy_data(SHARED / "datatraining.txt", SHARED / "datatest.txt")
    assert d.train_x.shape == (8143, 5) and d.test_x.shape == (2665, 5)
    assert d.train_y.shape == (8143,) and set(np.unique(d.train_y)) == {0, 1}
    assert 0.15 < d.train_y.mean() < 0.3
    assert np.all(np.isfinite(d.test_x))
    x, y = d.train_batch(np.random.default_rng(0), 8, 30)
    assert x.shape == (30, 8, 5)
