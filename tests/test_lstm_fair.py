"""Issue 9: the fair LSTM comparison. Default pairs against a vectorized baseline, per-loop
vectorization facts, a validation split with early stopping and checkpoint restore, trivial
baselines with "not trained"/"weak" flags, and intervals that say what they are."""
from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pytest

from lstm_numba import baselines as BL, data as D, findings, sweep
from lstm_numba import network as M
from lstm_numba.train import TrainConfig, train
from mathbench import stats
from mathbench.report import plots

# --------------------------------------------------------------------------------------------
# 1. pairs


def test_default_pairs_start_from_the_vectorized_baseline():
    pairs = sweep.Settings().pairs
    assert pairs[0] == sweep.BASELINE == ("tanh:numba_simd", "sigmoid:numba_simd")
    assert ("isru", "sigmoid:numba_simd") in pairs and ("isru", "isru_sigmoid") in pairs
    assert ("isru:numba_rsqrt", "sigmoid:numba_simd") in pairs and sweep.SEED_PAIR in pairs
    roles = [sweep.Variant("numba", *p).role for p in pairs]
    assert roles[0] == "baseline" and roles[-1] == "seed (scalar libm)" and set(roles[1:-1]) == {"candidate"}
    assert sweep.display_name("tanh/sigmoid", "seed (scalar libm)") == "tanh/sigmoid (seed: scalar libm)"
    # a cell alone pairs with the baseline's gate, not with scalar-libm sigmoid
    assert sweep.parse_pair("isru") == ("isru", "sigmoid:numba_simd")


def test_cell_kernels_carry_the_inlined_scalars_fastmath_flags():
    # numba_simd scalars are inlined at Numba IR level and take the loop's flags (FMA contraction);
    # a scalar compiled on its own keeps its own flags, so isru_rsqrt's arcp/afn stay out of the loop
    assert M.cell_fastmath(*sweep.BASELINE) == {"contract"}
    assert M.cell_fastmath("tanh", "sigmoid") == frozenset()
    assert M.cell_fastmath("isru:numba_rsqrt", "isru_sigmoid") == frozenset()
    from lstm_numba import variants

    assert "fastmath={'contract'}" in variants.model_text(*sweep.BASELINE, False)


# --------------------------------------------------------------------------------------------
# 2. per-loop facts

ASM = """\
\t.text
\t.type\t_ZN8__main__17gate_forward_loopB2v1E5ArrayIfLi1E,@function
_ZN8__main__17gate_forward_loopB2v1E5ArrayIfLi1E:
\tvmulps\t%ymm0, %ymm1, %ymm2
\tcallq\t_ZN8mathbench7scalars11sigmoid_expB2v2Ef
\tretq
.Lfunc_end0:
\t.type\t_ZN8mathbench7scalars11sigmoid_expB2v2Ef,@function
_ZN8mathbench7scalars11sigmoid_expB2v2Ef:
\tcallq\texpf@PLT
\tretq
.Lfunc_end1:
\t.type\t_ZN7cpython8__main__17gate_forward_loopB2v1E5ArrayIfLi1E,@function
_ZN7cpython8__main__17gate_forward_loopB2v1E5ArrayIfLi1E:
\tcallq\ttanhf@PLT
\tretq
\t.type\t_ZN8__main__17cell_forward_loopB2v1E5ArrayIfLi1E,@function
_ZN8__main__17cell_forward_loopB2v1E5ArrayIfLi1E:
\tvaddps\t%zmm0, %zmm1, %zmm2
\tretq
"""


def test_function_asm_follows_calls_and_skips_wrappers_and_other_functions():
    gate = M.function_asm(ASM, "gate_forward_loop")
    assert "expf" in gate and "vmulps" in gate  # the callee LLVM did not inline is part of the loop
    assert "tanhf" not in gate and "zmm" not in gate  # not the CPython wrapper, not another function
    from mathbench.functions.kernels import simd_info

    assert simd_info(gate, "x86_64") == {"vectorized": False, "simd_bits": 256, "libm_calls": "expf"}
    assert simd_info(M.function_asm(ASM, "cell_forward_loop"), "x86_64")["simd_bits"] == 512


@pytest.mark.parametrize("pair,scalar_loops", [(sweep.SEED_PAIR, {"gate_fwd": "expf", "cell_fwd": "tanhf"}),
                                               (sweep.BASELINE, {}), (("isru", "isru_sigmoid"), {})])
def test_loop_facts_of_compiled_variants(pair, scalar_loops):
    for task, kw in (("lm", dict(vocab_size=7)), ("classify", dict(n_features=5))):
        facts = M.loop_facts(M.ModelConfig(task, 8, 1, cell=pair[0], gate=pair[1], **kw))
        assert set(facts) == set(M.LOOPS)
        for loop, info in facts.items():
            if loop in scalar_loops:
                assert info["vectorized"] is False and info["libm_calls"] == scalar_loops[loop], (task, loop)
            else:  # the heads' exp is mathbench.functions.simd's, in every variant
                assert info["vectorized"] is True and info["libm_calls"] == "" and info["simd_bits"] >= 128, \
                    (task, loop, info)


# --------------------------------------------------------------------------------------------
# 3. validation split, early stopping, checkpoint restore


def test_text_validation_is_the_end_of_the_training_text():
    t = D.default_text()
    assert t.val_from == round(0.9 * t.train.size) and t.fit.size + t.val.size == t.train.size
    np.testing.assert_array_equal(np.concatenate([t.fit, t.val]), t.train)
    # training windows (inputs and targets) never reach the validation text
    x, y = t.train_batch(np.random.default_rng(0), 500, 32)
    fit_set = set(map(tuple, np.lib.stride_tricks.sliding_window_view(t.fit, 33).tolist()))
    for b in range(0, 500, 50):
        assert tuple(np.r_[x[:, b], y[-1, b]]) in fit_set
    vx, vy = next(t.eval_batches(32, 4, part="val"))
    np.testing.assert_array_equal(vx[:, 0], t.val[:32])


def test_sensor_validation_labels_the_last_rows_of_the_training_series():
    s = D.default_sensor()
    n = s.train_y.size
    assert s.val_from == round(0.9 * n)
    train_ends, val_ends = s._ends("train", 16), s._ends("val", 16)
    assert train_ends.max() < s.val_from <= val_ends.min() and val_ends.max() == n - 1
    X, y = s.windows("val", 16)
    np.testing.assert_array_equal(y, s.train_y[val_ends])
    assert X.shape == (val_ends.size, 16, 5)


def test_early_stopping_restores_the_best_checkpoint(monkeypatch):
    T = importlib.import_module("lstm_numba.train")  # the package re-exports the function as .train

    t = D.default_text()
    m = M.Model(M.ModelConfig("lm", 4, 1, vocab_size=t.n_vocab))
    losses = iter([3.0, 2.0, 2.5, 2.6, 2.7, 1.0])  # best after 4 steps, then 3 worse: patience 3 stops
    snaps = {}

    def fake_eval(model, data, seq_len, batch):
        step = len(snaps) * 2 + 2
        snaps[step] = model.params.flat.copy()
        return {"loss": next(losses)}

    monkeypatch.setattr(T, "_evaluate_data", fake_eval)
    seen = []
    r = train(m, t.fit, TrainConfig(iterations=20, seq_len=8, batch=2, eval_every=2, patience=3),
              validation=t.val, on_validation=lambda step, metrics: seen.append((step, metrics["loss"])))
    assert r.stopped_early and r.iterations == 10  # validations at 2, 4, 6, 8, 10
    assert r.best_iteration == 4 and [s for s, _ in seen] == [2, 4, 6, 8, 10]
    np.testing.assert_array_equal(m.params.flat, snaps[4])  # parameters of the chosen checkpoint
    assert not np.array_equal(snaps[4], snaps[10])


def test_without_patience_training_runs_to_the_end_and_the_end_is_a_candidate(monkeypatch):
    T = importlib.import_module("lstm_numba.train")  # the package re-exports the function as .train

    t = D.default_text()
    m = M.Model(M.ModelConfig("lm", 4, 1, vocab_size=t.n_vocab))
    losses = iter([3.0, 2.9, 2.8])
    monkeypatch.setattr(T, "_evaluate_data", lambda *a: {"loss": next(losses)})
    r = train(m, t.fit, TrainConfig(iterations=5, seq_len=8, batch=2, eval_every=2), validation=t.val)
    assert not r.stopped_early and r.iterations == 5 and r.best_iteration == 5
    assert [s for s, _ in r.val_history] == [2, 4, 5]


def test_sweep_checkpoint_freezes_when_patience_runs_out():
    class Engine:
        def __init__(self):
            self.w, self.losses = 0, iter([2.0, 1.0, 1.5, 1.6, 0.5])

        def evaluate(self, x, y):
            return next(self.losses), np.zeros_like(y)

        def snapshot(self):
            return self.w

        def restore(self, snap):
            self.w = snap

    e = Engine()
    ck = sweep._Checkpoint(e, 2, [(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64))], "lm")
    for step in (10, 20, 30, 40, 50):
        e.w = step
        ck.check(step, step == 50)
    # 1.0 at step 20, then two worse: final; the 0.5 at step 50 is never looked at
    assert ck.final and ck.step == 20 and ck.loss == 1.0
    ck.restore()
    assert e.w == 20


# --------------------------------------------------------------------------------------------
# 4. baselines and flags


def test_text_baselines_by_hand():
    train_ids = np.array([0, 1, 0, 1, 0, 1, 0])  # unigram counts 4, 3, 0; bigrams 0->1 x3, 1->0 x3
    got = BL.text(train_ids, np.array([0, 1]), np.array([1, 2]), 3)
    uni = np.array([4.5, 3.5, 0.5]) / 8.5
    p01, p12 = 3.5 / 4.5, 0.5 / 4.5  # row 0: counts (0, 3, 0) + 0.5; row 1: (3, 0, 0) + 0.5
    assert got["unigram"] == pytest.approx(-(math.log(uni[1]) + math.log(uni[2])) / 2)
    assert got["bigram"] == pytest.approx(-(math.log(p01) + math.log(p12)) / 2)


def test_classification_baselines_pick_the_informative_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 2] < 0.3).astype(int)  # feature 2, "below" direction
    xt = rng.normal(size=(200, 3))
    yt = (xt[:, 2] < 0.3).astype(int)
    r = BL.classify(x, y, xt, yt)
    assert r["threshold"]["feature"] == 2 and r["threshold"]["accuracy"] > 0.97
    assert r["threshold"]["threshold"] == pytest.approx(0.3, abs=0.1)
    assert r["majority"]["accuracy"] == pytest.approx(max(yt.mean(), 1 - yt.mean()))


def test_flags():
    refs = {"unigram": 3.0, "bigram": 2.2}
    assert BL.flag("lm", {"loss": 3.1}, refs) == BL.flag("lm", {"loss": 3.0}, refs) == "not trained"
    assert BL.flag("lm", {"loss": 2.5}, refs) == "weak" and BL.flag("lm", {"loss": 2.1}, refs) == "trained"
    crefs = {"majority": {"accuracy": 0.7}, "threshold": {"accuracy": 0.9}}
    assert BL.flag("classify", {"accuracy": 0.7}, crefs) == "not trained"
    assert BL.flag("classify", {"accuracy": 0.9}, crefs) == "weak"
    assert BL.flag("classify", {"accuracy": 0.95}, crefs) == "trained"
    assert BL.flag("lm", {"loss": math.nan}, refs) == ""


def _rows(flags, n_quality=3, timing=12, task="lm"):
    """A minimal sweep CSV: one configuration, the baseline and one candidate."""
    base = dict(config_id="c", task=task, layers=1, hidden=8, dtype="float32", threads=1, parallel=False, batch=4,
                backend="numba", repeats=n_quality, timing_samples=timing, latency_samples=timing,
                train_step_s=1e-3, speedup_train=1.0, speedup_train_lo=1.0, speedup_train_hi=1.0,
                speedup_latency=1.0, speedup_latency_lo=1.0, speedup_latency_hi=1.0,
                loss=2.0, loss_lo=1.9, loss_hi=2.1, accuracy=0.5, perplexity=7.4, best_step=40,
                ref_unigram=3.0, ref_bigram=2.2, quality_samples=n_quality,
                timing_interval=stats.interval_kind(timing), latency_interval=stats.interval_kind(timing),
                quality_interval=stats.interval_kind(n_quality), higher_loss_repeats=0)
    b = dict(base, variant="tanh:numba_simd/sigmoid:numba_simd", baseline=True, role="baseline",
             quality_flag=flags[0])
    c = dict(base, variant="isru/sigmoid:numba_simd", baseline=False, role="candidate", quality_flag=flags[1],
             speedup_train=1.2, speedup_train_lo=1.1, speedup_train_hi=1.3, loss_diff=0.05, loss_diff_lo=0.01,
             loss_diff_hi=0.09, accuracy_diff=0.0, accuracy_diff_lo=0.0, accuracy_diff_hi=0.0)
    return pd.DataFrame([b, c])


def test_summary_leaves_untrained_models_out_and_says_speed_only():
    text = sweep.summary(_rows(["trained", "not trained"]))
    assert "(not trained)" in text and "+0.050" not in text
    assert "unigram 3.000, bigram 2.200" in text and "1 of 2 Numba rows trained" in text
    text = sweep.summary(_rows(["weak", "weak"]))
    assert "speed only for task lm" in text and "+0.050" not in text
    text = sweep.summary(_rows(["trained", "trained"]))
    assert "+0.050 {+0.010..+0.090}" in text and "speed only" not in text  # 3 seeds: a range
    assert "held-out loss" in text and "2.000" in text  # absolute quality beside the difference


def test_findings_leave_untrained_models_out():
    lines = findings.quality(_rows(["trained", "not trained"]))
    assert lines == ["1 candidate rows left out of the quality comparison: they or their baseline are not trained "
                     "(no better than the unigram / majority-class baseline)."]
    assert "minus" in findings.quality(_rows(["trained", "weak"]))[0]


def test_findings_say_speed_only_when_no_model_is_trained():
    lines = findings.quality(_rows(["weak", "weak"]))
    assert lines[0].startswith("lm: speed only") and not any("minus" in line for line in lines)


# --------------------------------------------------------------------------------------------
# 6. intervals


def test_few_samples_give_the_range_not_a_bootstrap():
    x = [1.0, 5.0, 2.0]
    assert stats.median_interval(x) == (2.0, 1.0, 5.0) and stats.interval_kind(3) == "range"
    assert stats.ratio_interval([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == (3.0, 2.0, 4.0)
    many = np.linspace(1, 2, 40)
    med, lo, hi = stats.median_interval(many)
    assert stats.interval_kind(40) == "95% CI" and 1.0 < lo < med < hi < 2.0  # a CI, narrower than the range


def test_summary_labels_each_interval_by_its_sample_count():
    few = sweep.summary(_rows(["trained", "trained"], n_quality=3, timing=4))
    assert "1.20 {1.10..1.30}" in few and "timing from 4 samples" in few and "quality from 3 seeds" in few
    many = sweep.summary(_rows(["trained", "trained"], n_quality=12, timing=12))
    assert "1.20 [1.10, 1.30]" in many and "+0.050 [+0.010, +0.090]" in many


@pytest.mark.parametrize("n,label", [(3, "range (min..max) of 3 samples"), (12, "percentile bootstrap (older run")])
def test_figure_bands_say_what_they_are(n, label):
    df = _rows(["trained", "trained"], n_quality=n, timing=n)
    assert label in plots.lstm_band_label(df, "loss_diff") and label in plots.lstm_band_label(df, "speedup_train")
    old = df.drop(columns=["quality_interval", "quality_samples", "timing_interval"])  # a run from before
    assert label in plots.lstm_band_label(old, "loss_diff") and label in plots.lstm_band_label(old, "speedup_train")
    fig = plots.lstm_vs_hidden(df, "loss_diff", "loss diff", ref=0.0)
    assert label in fig.axes[0].get_title()


def test_rows_of_this_code_name_their_95_interval():
    df = _rows(["trained", "trained"], n_quality=12, timing=12).assign(interval_method=stats.CI_METHOD)
    assert plots.lstm_band_label(df, "speedup_train") == "bands: order-statistic 95% CI"
    assert "[lo, hi] = order-statistic 95% interval of the median" in sweep.summary(df)
    old = df.drop(columns=["interval_method"])  # a run made before the rule: said to be a bootstrap
    assert "percentile-bootstrap interval (an older run" in sweep.summary(old)


def test_findings_call_a_few_seed_interval_a_range():
    df = _rows(["trained", "trained"], n_quality=3)
    assert "the range of all 3 seeds is above 0" in findings.quality(df)[0]
    df12 = _rows(["trained", "trained"], n_quality=12)
    assert "the 95% interval is above 0" in findings.quality(df12)[0]
    few = findings.speed(_rows(["trained", "trained"], timing=4))[0]
    assert "95%" not in few.split("(")[1] or "too few samples for a 95% interval" in few


# --------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written


@pytest.mark.parametrize("argv,fragment", [
    (["--patience", "-1"], "--patience -1: must be >= 0"),
    (["--val-every", "0"], "--val-every 0: must be positive"),
    (["train", "--patience", "-2"], "--patience -2: must be >= 0"),
    (["train", "--eval-every", "0"], "--eval-every 0: must be positive"),
])
def test_bad_validation_options(tmp_path, capsys, argv, fragment):
    from test_lstm_cli import assert_usage_error, run

    extra = ["--save", tmp_path / "m"] if argv[0] == "train" else ["--out", tmp_path / "run"]
    code, out, err = run([*argv, *extra], capsys)
    assert_usage_error(code, err, fragment)
    assert list(tmp_path.iterdir()) == []
