"""lstm_numba vs-torch: the bookkeeping of the Numba-against-torch grid (ratio direction, the
passes' median and range, plan crossover text), its bad input, and one tiny real run."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstm_numba import peers, versus
from mathbench.core import runs


def _rows(ratios, plans=("serial fwd=tiled bwd=tiled",)):
    rows = []
    for k, (tr, inf) in enumerate(ratios, 1):
        rows.append(dict(layers=1, hidden=64, batch=4, threads=2, train_ratio=tr, infer_ratio=inf,
                         numba_train_gflops=50.0, sgemm_gflops=100.0, gemm_efficiency=0.5,
                         plan_train=plans[(k - 1) % len(plans)], plan_infer=plans[0]))
    return pd.DataFrame(rows)


def test_summary_is_the_median_of_the_passes_with_their_range():
    s = versus.summarize(_rows([(1.0, 0.5), (3.0, 0.7), (2.0, 0.6)]))
    r = s.iloc[0]
    assert (r.train_ratio, r.train_min, r.train_max) == (2.0, 1.0, 3.0)
    assert (r.infer_ratio, r.infer_min, r.infer_max) == (0.6, 0.5, 0.7)
    assert r.passes == 3
    assert "2.00 [1.00-3.00] (0.60 [0.50-0.70])" in versus.table(s)
    assert "> 1: Numba faster" in versus.table(s)


def test_ratio_is_torch_time_over_numba_time():
    """The row's ratio comes from harness.ratio(torch, numba): > 1 when Numba takes less time."""
    from mathbench.core import harness

    fast = harness.Measurement("numba", 1, np.array([1.0, 1.0, 1.0]), 1.0, 1.0, 1.0, 0)
    slow = harness.Measurement("torch", 1, np.array([2.0, 2.0, 2.0]), 2.0, 2.0, 2.0, 0)
    assert harness.ratio(slow, fast).median == 2.0
    src = open(versus.__file__).read()
    assert 'harness.ratio(tr["torch"], tr["numba"]' in src and 'harness.ratio(inf["torch"], inf["numba"]' in src


def test_crossover_names_the_shapes_that_chose_parallel():
    df = pd.concat([_rows([(1, 1)], ("serial fwd=blas bwd=blas",)),
                    _rows([(1, 1)], ("parallel/batch fwd=blas bwd=blas",)).assign(batch=64)])
    df["plan_infer"] = df["plan_train"]
    lines = versus.crossover(versus.summarize(df))
    assert lines[0] == "2 threads, training: parallel chosen in 1 of 2 shapes (L1 H64 B64); serial in 1"


@pytest.mark.parametrize("args,msg", [(["--hidden", "0"], "hidden"), (["--passes", "0"], "passes"),
                                      (["--batch", "x"], "batch"), (["--sample-time", "nan"], "sample-time")])
def test_bad_input_is_one_line_and_exit_2(args, msg, tmp_path):
    p = subprocess.run([sys.executable, "-m", "lstm_numba", "vs-torch", *args, "--out", str(tmp_path / "r")],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and msg in p.stderr and "Traceback" not in p.stderr


@pytest.mark.skipif(not peers.available(), reason="needs the peers extra (torch)")
def test_tiny_run_writes_rows_summary_and_resumes(tmp_path):
    out = tmp_path / "vs"
    cmd = [sys.executable, "-m", "lstm_numba", "vs-torch", "--hidden", "8", "--batch", "2", "--layers", "1",
           "--threads", "1", "--passes", "2", "--rounds", "3", "--sample-time", "0.001", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    df, meta = runs.load_run(out)
    assert sorted(df["pass"]) == [1, 2] and meta["finished"]
    assert (df["train_ratio"] > 0).all() and (df["numba_train_s"] > 0).all()
    assert np.allclose(df["gemm_efficiency"], df["numba_train_gflops"] / df["sgemm_gflops"])
    assert (out / versus.SUMMARY).exists() and "| 8 |" in p.stdout
    p2 = subprocess.run(cmd, capture_output=True, text=True)  # everything done: nothing measured again
    assert p2.returncode == 0 and "pass 1/2 [" not in p2.stderr
    assert len(runs.load_run(out)[0]) == 2


class _FakeTorch:
    def __init__(self, *a, **kw):
        pass

    def train_step(self, x, y):
        pass

    def predict(self, x):
        pass


def test_measure_shape_ratio_is_torch_over_numba(monkeypatch):
    """Through measure_shape: torch's rounds take 3 s, Numba's 1 s -> both ratios 3 (the wrong
    baseline or direction would give 1/3)."""
    from mathbench.core import harness
    from lstm_numba import data as D

    def fake(cands, **kw):
        secs = {"numba": 1.0, "torch": 3.0}
        return {c.key: harness.Measurement(c.key, 1, np.full(5, secs[c.key]), secs[c.key], secs[c.key],
                                           secs[c.key], 0) for c in cands}

    monkeypatch.setattr(versus.harness, "measure_interleaved", fake)
    monkeypatch.setattr(versus.peers, "engine", _FakeTorch)
    monkeypatch.setattr(versus.sweep, "sgemm_reference", lambda flops, dt, t: (100.0, 64))
    s = versus.Settings(hidden=[4], batch=[2], layers=[1], threads=[1], seq_len=5)
    row = versus.measure_shape(s, (1, 4, 2, 1), D.default_text(), {})
    assert row["train_ratio"] == pytest.approx(3.0) and row["infer_ratio"] == pytest.approx(3.0)
    assert (row["numba_train_s"], row["torch_train_s"]) == (1.0, 3.0)
    assert row["gemm_efficiency"] == pytest.approx(row["train_flops"] / 1e9 / 100.0)
    # the row says what vectorized: the baseline pair's loops, read from the assembly
    assert row["variant"] == "tanh:numba_simd/sigmoid:numba_simd"
    assert all(row[f"{loop}_vectorized"] is True and row[f"{loop}_libm"] == "none" for loop in versus.LOOPS)


def _fake_vs_folder(tmp_path, settings, columns=("train_ratio",)):
    out = tmp_path / "vs"
    out.mkdir()
    meta = runs.metadata(versus.KIND, [], settings=settings, sessions=[{"code_version": versus.code_version()}])
    runs.write_json(out / runs.METADATA, meta)
    (out / runs.RESULTS).write_text(",".join(["unit_id", *columns]) + "\r\n")
    return out


@pytest.mark.skipif(not peers.available(), reason="validation needs the peers extra (torch)")
def test_resuming_with_other_settings_is_refused(tmp_path):
    out = _fake_vs_folder(tmp_path, versus.Settings(hidden=[8]).to_dict())
    before = (out / runs.METADATA).read_text()
    p = subprocess.run([sys.executable, "-m", "lstm_numba", "vs-torch", "--hidden", "16", "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "other settings" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (out / runs.METADATA).read_text() == before  # nothing written


def test_report_refuses_a_vs_torch_folder_without_its_columns(tmp_path):
    out = _fake_vs_folder(tmp_path, versus.Settings().to_dict(), columns=("hidden",))
    p = subprocess.run([sys.executable, "-m", "lstm_numba", "report", str(out)], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "has no train_ratio column; not a vs-torch run" in p.stderr
