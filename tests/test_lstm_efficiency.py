"""Issue 10, item 4: the training step's matrix-product GFLOP/s and the GFLOP/s of one plain GEMM
with the same FLOPs, per sweep row. The FLOP count is checked against a product-by-product
enumeration of the model's GEMMs; the columns against their definitions (no timing asserted)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from lstm_numba import cli, sweep
from lstm_numba.network import ModelConfig, matmul_flops
from mathbench.core import runs


def _gemms(task: str, T: int, B: int, F: int, H: int, L: int, V: int) -> tuple[list, list]:
    """Every matrix product of one training step as (m, k, n), listed as the math reads (see the
    model's docstring): (forward, backward)."""
    G, N = 4 * H, T * B
    fwd, bwd = [], []
    for layer in range(L):
        if layer > 0:
            fwd.append((N, H, G))  # input projection of the layer below's outputs
        elif task == "classify":
            fwd.append((N, F, G))  # sensors -> gates (the LM gathers embedding rows instead)
        fwd += [(B, H, G)] * T  # h_{t-1} W_hh^T, every step
    fwd.append((N, H, V) if task == "lm" else (B, H, 1))  # head
    bwd += [(V, N, H), (N, V, H)] if task == "lm" else [(1, B, H), (B, 1, H)]  # dW_out, dh
    for layer in range(L):
        bwd += [(B, G, H)] * (T - 1)  # da_{t+1} W_hh
        bwd.append((G, N, H))  # dW_hh
        if layer > 0:
            bwd += [(G, N, H), (N, G, H)]  # dW_ih, d(layer below)
        elif task == "classify":
            bwd.append((G, N, F))  # dW_ih of layer 0
    return fwd, bwd


def _total(gemms) -> int:
    return sum(2 * m * k * n for m, k, n in gemms)


@pytest.mark.parametrize("task, layers, hidden, T, B", [("classify", 2, 8, 5, 3), ("lm", 3, 16, 4, 2),
                                                        ("classify", 1, 512, 32, 4), ("lm", 1, 4, 1, 1)])
def test_flops_match_the_enumerated_products(task, layers, hidden, T, B):
    kw = dict(vocab_size=11) if task == "lm" else dict(n_features=5)
    cfg = ModelConfig(task, hidden=hidden, layers=layers, **kw)
    got = matmul_flops(cfg, T, B)
    fwd, bwd = _gemms(task, T, B, cfg.n_in, hidden, layers, cfg.n_out)
    assert got["forward"] == _total(fwd)
    assert got["train"] == _total(fwd) + _total(bwd)


def test_sgemm_reference_is_a_gemm_of_the_same_work():
    gflops, n = sweep.sgemm_reference(2 * 64 ** 3, "float32", 1, rounds=3)
    assert n == 64 and gflops > 0 and math.isfinite(gflops)


def test_sweep_rows_carry_the_efficiency_columns(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["--tasks", "classify", "--layers", "1", "--hidden", "8", "--iterations", "4", "--repeats", "2",
            "--chunks", "2", "--seq-len", "8", "--batch", "2", "--eval-batch", "8", "--threads", "1",
            "--peers", "off", "--no-progress", "--pairs", "isru", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    df = pd.read_csv(out / runs.RESULTS)
    cfg = ModelConfig("classify", hidden=8, layers=1, n_features=5)
    flops = matmul_flops(cfg, 8, 2)["train"]
    for _, r in df.iterrows():
        assert r["train_gflops"] == pytest.approx(flops / r["train_step_s"] / 1e9)
        assert r["gemm_efficiency"] == pytest.approx(r["train_gflops"] / r["sgemm_gflops"])
        assert 2 * r["sgemm_n"] ** 3 == pytest.approx(flops, rel=0.2)
    assert df["sgemm_gflops"].nunique() == 1  # one reference per configuration, shared by its rows
    assert "against one sgemm of the same FLOPs" in text
