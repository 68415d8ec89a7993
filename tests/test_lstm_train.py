"""Training, repeatability, divergence handling, Adam, evaluation, save/load, predict, generate."""
import math

import numpy as np
import pytest

from lstm_numba.network import Model, ModelConfig
from lstm_numba.optim import Adam
from lstm_numba.train import (NonFiniteLoss, TrainConfig, classification_metrics, evaluate, generate, load,
                              predict, predict_proba_batch, save, train)
from mathbench.core.errors import UsageError

TEXT = ("the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat. " * 12)
VOCAB = sorted(set(TEXT))
IDS = np.array([VOCAB.index(ch) for ch in TEXT])


def lm_model(**kw):
    return Model(ModelConfig("lm", hidden=kw.pop("hidden", 32), vocab_size=len(VOCAB), **kw))


def cls_data(n=240, T=8, seed=0):
    """Label: is the sum of feature 0 over time positive? Needs the whole sequence."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    return X, y


def cls_model(**kw):
    return Model(ModelConfig("classify", hidden=kw.pop("hidden", 16), n_features=2, **kw))


# ---------------------------------------------------------------------------------------------
# training


def test_lm_training_reduces_loss():
    m = lm_model(layers=2)
    before = evaluate(m, IDS, seq_len=50, batch=4)
    assert before["loss"] == pytest.approx(math.log(len(VOCAB)), rel=0.1)
    r = train(m, IDS, TrainConfig(iterations=150, seq_len=16, batch=4, lr=1e-2))
    assert r.iterations == 150 and np.all(np.isfinite(r.losses))
    assert r.losses[-20:].mean() < 0.5 * r.losses[:5].mean()
    after = evaluate(m, IDS, seq_len=50, batch=4)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]))
    assert after["tokens"] > 0.9 * IDS.size


def test_classification_training_learns():
    X, y = cls_data()
    Xv, yv = cls_data(seed=1)
    m = cls_model()
    r = train(m, (X, y), TrainConfig(iterations=150, batch=16, lr=1e-2))
    assert r.losses[-20:].mean() < 0.6 * r.losses[:5].mean()
    res = evaluate(m, (Xv, yv))
    assert res["accuracy"] > 0.85 and res["f1"] > 0.85 and res["n"] == len(yv)


def test_timings_are_split_and_compile_is_separate():
    m = lm_model(hidden=8)
    rows = []
    r = train(m, IDS, TrainConfig(iterations=5, seq_len=10), on_iteration=rows.append)
    assert r.compile_seconds > 0
    for arr in (r.t_forward, r.t_backward, r.t_optimizer, r.grad_norms):
        assert arr.shape == (5,) and np.all(arr > 0)
    np.testing.assert_array_equal(r.step_seconds, r.t_forward + r.t_backward + r.t_optimizer)
    assert [row["iteration"] for row in rows] == list(range(5))
    assert rows[-1]["loss"] == r.losses[-1]


@pytest.mark.parametrize("kind", ["lm", "classify"])
def test_compile_covers_every_signature_used_later(kind):
    """After compile(), training, evaluation and inference compile nothing new (no JIT inside
    a timing)."""
    m = lm_model(hidden=8) if kind == "lm" else cls_model(hidden=8)
    m.compile()
    from numba.core.registry import CPUDispatcher

    from lstm_numba import variants

    # every kernel of the generated modules this model runs: the task's, the cell's, the ops'
    mods = (m.kernels, variants.cell_kernels(m.config.cell, m.config.gate, False), m.ops)
    disp = {f"{mod.__name__}.{n}": d for mod in mods for n, d in vars(mod).items()
            if isinstance(d, CPUDispatcher) and d.py_func.__module__ == mod.__name__}
    short = {"lm": "lm", "classify": "cls"}[kind]
    assert {"forward_" + short, "backward_" + short, "step_forward", "adam_update"} <= \
        {n.rsplit(".", 1)[1] for n in disp}
    before = {n: len(d.signatures) for n, d in disp.items()}
    if kind == "lm":
        train(m, IDS, TrainConfig(iterations=3, seq_len=10, batch=3))
        evaluate(m, IDS[:200], seq_len=30, batch=2)
        generate(m, [1, 2], 5)
    else:
        X, y = cls_data(n=20)
        train(m, (X, y), TrainConfig(iterations=3, batch=4))
        predict(m, X)
    assert {n: len(d.signatures) for n, d in disp.items()} == before


def test_on_iteration_can_stop_early():
    r = train(lm_model(hidden=8), IDS, TrainConfig(iterations=50, seq_len=10),
              on_iteration=lambda row: row["iteration"] == 2)
    assert r.iterations == 3 and r.stopped_early


@pytest.mark.parametrize("kind", ["lm", "classify"])
def test_seeded_serial_runs_are_bit_for_bit_repeatable(kind):
    def run(seed=0):
        if kind == "lm":
            m = lm_model(hidden=16, layers=2)
            r = train(m, IDS, TrainConfig(iterations=30, seq_len=12, batch=2, seed=seed))
        else:
            m = cls_model()
            r = train(m, cls_data(), TrainConfig(iterations=30, batch=8, seed=seed))
        return r.losses, m.params.flat.copy()

    (l1, p1), (l2, p2) = run(), run()
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(p1, p2)
    if kind == "classify":  # the data order follows the train seed
        l3, _ = run(seed=1)
        assert not np.array_equal(l1, l3)


def test_train_rejects_bad_data():
    with pytest.raises(UsageError):
        train(lm_model(), IDS[:10], TrainConfig(seq_len=25))  # too short
    with pytest.raises(UsageError):
        train(lm_model(), np.full(100, len(VOCAB)), TrainConfig(seq_len=5))  # id out of range
    X, y = cls_data(n=10)
    with pytest.raises(UsageError):
        train(cls_model(), (X, y), TrainConfig(batch=11))
    with pytest.raises(UsageError):
        train(cls_model(), (X, y + 2), TrainConfig(batch=2))
    with pytest.raises(UsageError):
        train(cls_model(), (X[:, :, :1], y), TrainConfig(batch=2))


@pytest.mark.parametrize("kw", [dict(lr=0), dict(lr=float("nan")), dict(iterations=-1), dict(batch=0),
                                dict(seq_len=0), dict(clip=-1), dict(beta1=1.0), dict(threads=0)])
def test_bad_train_config_raises_usage_error(kw):
    with pytest.raises(UsageError):
        TrainConfig(**kw)


# ---------------------------------------------------------------------------------------------
# divergence


def test_nan_loss_stops_with_clear_message():
    m = lm_model(hidden=8)
    m.params.W_out[0, 0] = np.nan
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at iteration 0") as e:
        train(m, IDS, TrainConfig(iterations=5, seq_len=10))
    assert e.value.iteration == 0 and e.value.what == "loss"
    assert e.value.result.iterations == 0


def test_nan_mid_training_keeps_finished_iterations():
    m = cls_model()
    rows = []

    def poison(row):
        rows.append(row)
        if row["iteration"] == 2:
            m.params.W_hh[0, 0, 0] = np.inf

    with pytest.raises(NonFiniteLoss) as e:
        train(m, cls_data(), TrainConfig(iterations=10, batch=8), on_iteration=poison)
    r = e.value.result
    assert e.value.iteration == 3 and r.iterations == 3 and len(rows) == 3
    assert np.all(np.isfinite(r.losses)) and r.t_forward.shape == (3,)
    assert "finished iterations kept" in str(e.value)


# ---------------------------------------------------------------------------------------------
# Adam


def test_adam_with_clipping_matches_formula():
    m = cls_model(hidden=8, dtype="float64")
    rng = np.random.default_rng(0)
    p = m.params.flat.copy()
    mom, vel = np.zeros_like(p), np.zeros_like(p)
    lr, clip, b1, b2, eps = 0.01, 1.0, 0.9, 0.999, 1e-8
    opt = Adam(m, lr=lr, clip=clip, beta1=b1, beta2=b2, eps=eps)
    for t in (1, 2, 3):
        g = rng.normal(size=p.size) * (10.0 if t == 1 else 0.01)  # clipped, then not
        m.grads.flat[:] = g
        norm = opt.step()
        assert norm == pytest.approx(np.linalg.norm(g))
        if norm > clip:
            g = g * clip / (norm + 1e-6)
        mom = b1 * mom + (1 - b1) * g
        vel = b2 * vel + (1 - b2) * g * g
        p = p - lr / (1 - b1 ** t) * mom / (np.sqrt(vel) / math.sqrt(1 - b2 ** t) + eps)
        np.testing.assert_allclose(m.params.flat, p, rtol=1e-12, atol=1e-15)


def test_adam_skips_update_on_non_finite_gradient():
    m = cls_model(hidden=8)
    before = m.params.flat.copy()
    m.grads.flat[:] = 1.0
    m.grads.flat[3] = np.nan
    assert math.isnan(Adam(m).step())
    np.testing.assert_array_equal(m.params.flat, before)


# ---------------------------------------------------------------------------------------------
# metrics, predict, generate, save/load


def test_classification_metrics():
    r = classification_metrics([0.9, 0.2, 0.6, 0.4], [1, 0, 0, 1])
    assert r["accuracy"] == 0.5 and r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    assert r["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.4])))
    assert classification_metrics([0.1, 0.2], [0, 0])["f1"] == 0.0


def test_predict_and_batch_latency_call_agree():
    X, y = cls_data(n=20)
    m = cls_model()
    p = predict(m, X, batch=7)
    assert p.shape == (20,) and np.all((p > 0) & (p < 1))
    one = predict_proba_batch(m, np.ascontiguousarray(X[3:4].transpose(1, 0, 2), dtype=np.float32))
    assert one.shape == (1,) and one[0] == pytest.approx(p[3], abs=1e-6)
    with pytest.raises(UsageError):
        predict(lm_model(hidden=8), X)
    with pytest.raises(UsageError):
        generate(m, [0], 5)


def test_generate_is_seeded_and_in_vocabulary():
    m = lm_model(hidden=16)
    train(m, IDS, TrainConfig(iterations=60, seq_len=16, batch=4, lr=1e-2))
    prime = [VOCAB.index(ch) for ch in "the "]
    a = generate(m, prime, 40, seed=3)
    b = generate(m, prime, 40, seed=3)
    assert a.shape == (40,) and a.min() >= 0 and a.max() < len(VOCAB)
    np.testing.assert_array_equal(a, b)
    cold = generate(m, prime, 40, temperature=0.05, seed=4)
    text = "".join(VOCAB[i] for i in cold)
    assert set(text) <= set(TEXT)
    with pytest.raises(UsageError):
        generate(m, [], 5)


@pytest.mark.parametrize("kind", ["lm", "classify"])
def test_save_load_round_trip_reproduces_predictions(tmp_path, kind):
    if kind == "lm":
        m = lm_model(hidden=16, layers=2)
        train(m, IDS, TrainConfig(iterations=10, seq_len=12))
    else:
        m = cls_model(layers=2)
        X, y = cls_data(n=30)
        train(m, (X, y), TrainConfig(iterations=10, batch=8))
    path = save(m, tmp_path / "model", meta={"vocab": VOCAB, "task": "demo"})
    assert path.name == "model.npz"
    m2 = load(path)
    assert m2.config == m.config and m2.meta == {"vocab": VOCAB, "task": "demo"}
    np.testing.assert_array_equal(m2.params.flat, m.params.flat)
    if kind == "lm":
        np.testing.assert_array_equal(generate(m2, [1, 2], 30, seed=5), generate(m, [1, 2], 30, seed=5))
        x = IDS[:20].reshape(10, 2)
        m.forward(x)
        m2.forward(x)
        np.testing.assert_array_equal(m2.outputs(), m.outputs())
    else:
        np.testing.assert_array_equal(predict(m2, X), predict(m, X))
    assert load(tmp_path / "model").config == m.config  # the .npz suffix is optional


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(UsageError, match="no such model"):
        load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UsageError):
        load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(UsageError):
        load(other)
