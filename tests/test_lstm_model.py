"""The LSTM's math: finite-difference gradients, an independent NumPy reference, torch.nn.LSTM,
serial == parallel, initialisation and config validation.

Shapes are tiny (2 layers, hidden 4-5) so the cost is compiling, which Numba caches on disk."""
import json
import math

import numba
import numpy as np
import pytest

from lstm_numba import reference
from lstm_numba import network as M
from lstm_numba.network import Model, ModelConfig, Params, Plan, init_params
from lstm_numba.optim import Adam
from lstm_numba.train import thread_limits
from mathbench.functions import registry
from mathbench.core.errors import UsageError

# (cell, gate, head): the defaults, ISRU in each slot, and softsign in both. Every pair compiles
# its own kernels (~10 s per head on a cold cache) and the activation code is the same for both
# heads, so two pairs check both heads and the others one head each.
TASKS = ["lm", "classify"]
CASES = [("tanh", "sigmoid", "lm"), ("tanh", "sigmoid", "classify"),
         ("isru", "isru_sigmoid", "lm"), ("isru", "isru_sigmoid", "classify"),
         ("isru", "sigmoid", "classify"), ("tanh", "isru_sigmoid", "lm"),
         ("softsign", "softsign", "lm"),
         # the sweep's vectorized baseline and the rsqrt ISRU (references: the NumPy tanh/sigmoid/isru)
         ("tanh:numba_simd", "sigmoid:numba_simd", "lm"), ("tanh:numba_simd", "sigmoid:numba_simd", "classify"),
         ("isru:numba_rsqrt", "sigmoid:numba_simd", "classify")]
V, F, H, L = 5, 3, 4, 2


def make_config(task, cell="tanh", gate="sigmoid", dtype="float64", hidden=H, **kw):
    return ModelConfig(task, hidden=hidden, layers=L, vocab_size=V if task == "lm" else 0,
                       n_features=F if task == "classify" else 0, cell=cell, gate=gate, dtype=dtype, **kw)


def make_batch(cfg, T=4, B=3, seed=0):
    """Inputs, targets and a non-zero initial state (exercises the TBPTT carry)."""
    rng = np.random.default_rng(seed)
    if cfg.task == "lm":
        x = rng.integers(0, cfg.vocab_size, (T, B))
        y = rng.integers(0, cfg.vocab_size, (T, B))
    else:
        x = rng.normal(size=(T, B, cfg.n_features))
        y = np.array([0.0, 1.0, 1.0] * B)[:B]
    state = (0.5 * rng.normal(size=(cfg.layers, B, cfg.hidden)), 0.5 * rng.normal(size=(cfg.layers, B, cfg.hidden)))
    return x, y, state


def perturbed_model(cfg, seed=1):
    """Init weights plus noise on everything, so biases and gates sit away from special points."""
    m = Model(cfg)
    rng = np.random.default_rng(seed)
    m.params.flat[:] += rng.normal(0, 0.3, m.params.flat.size).astype(cfg.dtype)
    return m


# ---------------------------------------------------------------------------------------------
# finite differences


@pytest.mark.parametrize("cell,gate,task", CASES)
def test_gradient_matches_finite_differences(cell, gate, task):
    cfg = make_config(task, cell, gate)
    m = perturbed_model(cfg)
    x, y, state = make_batch(cfg)
    _, g = m.loss_and_grads(x, y, state)
    grads = {k: v.copy() for k, v in g.tensors().items()}
    rng = np.random.default_rng(2)
    eps = 1e-6
    for name, view in m.params.tensors().items():
        ga = grads[name].ravel()
        # the largest analytic entries (never all-zero columns) plus random ones
        picks = set(np.argsort(-np.abs(ga))[:4].tolist())
        picks |= set(rng.choice(view.size, size=min(4, view.size), replace=False).tolist())
        num, ana = [], []
        for flat_i in sorted(picks):
            ix = np.unravel_index(flat_i, view.shape)
            old = view[ix]
            view[ix] = old + eps
            up = m.forward(x, y, state)
            view[ix] = old - eps
            down = m.forward(x, y, state)
            view[ix] = old
            num.append((up - down) / (2 * eps))
            ana.append(ga[flat_i])
        num, ana = np.array(num), np.array(ana)
        denom = np.linalg.norm(num) + np.linalg.norm(ana)
        assert denom > 1e-6, f"{name}: gradient too small to check"
        rel = np.linalg.norm(num - ana) / denom
        assert rel < 1e-6, f"{cell}/{gate} {task} {name}: relative error {rel:.2e}"


# ---------------------------------------------------------------------------------------------
# the NumPy reference


def _compare_with_reference(cfg, rtol):
    m = perturbed_model(cfg)
    x, y, state = make_batch(cfg, T=5, B=3)
    loss, g = m.loss_and_grads(x, y, state)
    tensors64 = {k: v.astype(np.float64) for k, v in m.params.tensors().items()}
    r_loss, r_probs, cache = reference.forward(cfg, tensors64, x, y, state)
    r_grads = reference.backward(cache)
    assert loss == pytest.approx(r_loss, rel=rtol)
    np.testing.assert_allclose(m.outputs(), r_probs, rtol=0, atol=rtol)
    for name, v in g.tensors().items():
        scale = np.max(np.abs(r_grads[name]))
        assert scale > 0, name
        err = np.max(np.abs(v - r_grads[name])) / scale
        assert err < rtol, f"{name}: {err:.2e}"
    # the forward-only route: the same probabilities and final state, nothing kept for backward
    h, c = m.final_state()
    np.testing.assert_allclose(m.predict(x, state), r_probs, rtol=0, atol=rtol)
    for a, b in zip(m.final_state(), (h, c)):
        np.testing.assert_allclose(a, b, rtol=0, atol=rtol)
    with pytest.raises(UsageError, match="backward"):
        m.backward()
    return m, cache


@pytest.mark.parametrize("cell,gate,task", CASES)
def test_float64_equals_numpy_reference(cell, gate, task):
    _compare_with_reference(make_config(task, cell, gate), 1e-10)


@pytest.mark.parametrize("task", TASKS)
def test_float32_close_to_numpy_reference(task):
    cfg = make_config(task, dtype="float32")
    m, _ = _compare_with_reference(cfg, 2e-4)
    assert m.params.flat.dtype == np.float32 and m.grads.flat.dtype == np.float32
    assert m.outputs().dtype == np.float32


@pytest.mark.parametrize("task", TASKS)
def test_six_layers_equal_numpy_reference(task):
    cfg = ModelConfig(task, hidden=3, layers=6, vocab_size=V if task == "lm" else 0,
                      n_features=F if task == "classify" else 0, dtype="float64")
    _compare_with_reference(cfg, 1e-10)


def test_reference_catches_a_wrong_derivative():
    """The comparison can fail: the reference with the gate's derivative scaled is far off."""
    cfg = make_config("lm")
    m = perturbed_model(cfg)
    x, y, state = make_batch(cfg)
    _, g = m.loss_and_grads(x, y, state)
    _, _, cache = reference.forward(cfg, m.params.tensors(), x, y, state)
    cell, dcell, gate, dgate = cache["forms"]
    cache["forms"] = (cell, dcell, gate, lambda a: 1.01 * dgate(a))
    bad = reference.backward(cache)
    assert np.max(np.abs(g.tensors()["weight_hh_l0"] - bad["weight_hh_l0"])) > 1e-6


def test_final_state_and_state_carry_match_one_long_sequence():
    """Two chunks with the state carried equal one forward over the whole sequence."""
    cfg = make_config("lm")
    m = perturbed_model(cfg)
    x, y, _ = make_batch(cfg, T=6, B=2)
    m.forward(x, y)
    whole = m.outputs().copy()
    h, c = m.final_state()
    m.forward(x[:3], y[:3])
    first = m.outputs().copy()
    m.forward(x[3:], y[3:], m.final_state())
    np.testing.assert_allclose(np.concatenate([first, m.outputs()]), whole, rtol=0, atol=1e-14)
    h2, c2 = m.final_state()
    np.testing.assert_allclose(h2, h, atol=1e-14)
    np.testing.assert_allclose(c2, c, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# torch.nn.LSTM


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", TASKS)
def test_equals_torch_lstm(task, dtype):
    torch = pytest.importorskip("torch")
    cfg = make_config(task, dtype=dtype)
    m = perturbed_model(cfg)
    x, y, state = make_batch(cfg, T=5, B=3)
    loss = m.forward(x, y, state)
    tdt = torch.float64 if dtype == "float64" else torch.float32
    lstm = torch.nn.LSTM(cfg.n_in, cfg.hidden, num_layers=cfg.layers).to(tdt)
    head = torch.nn.Linear(cfg.hidden, cfg.n_out).to(tdt)
    tensors = m.params.tensors()
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(torch.from_numpy(np.array(tensors[name])))
        head.weight.copy_(torch.from_numpy(np.array(tensors["head_weight"])))
        head.bias.copy_(torch.from_numpy(np.array(tensors["head_bias"])))
    if task == "lm":
        inp = torch.nn.functional.one_hot(torch.from_numpy(x), cfg.vocab_size).to(tdt)
    else:
        inp = torch.from_numpy(x).to(tdt)
    h0, c0 = (torch.from_numpy(s).to(tdt) for s in state)
    out, (hn, cn) = lstm(inp, (h0, c0))
    if task == "lm":
        logits = head(out)
        probs = torch.softmax(logits, dim=-1)
        t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), torch.from_numpy(y).reshape(-1))
    else:
        z = head(out[-1])[:, 0]
        probs = torch.sigmoid(z)
        t_loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.from_numpy(y).to(tdt))
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(m.outputs(), probs.detach().numpy(), rtol=0, atol=tol)
    np.testing.assert_allclose(m.hidden(), out.detach().numpy(), rtol=0, atol=tol)
    h, c = m.final_state()
    np.testing.assert_allclose(h, hn.detach().numpy(), atol=tol)
    np.testing.assert_allclose(c, cn.detach().numpy(), atol=tol * 10)
    assert loss == pytest.approx(t_loss.item(), rel=tol * 10)
    if dtype == "float64":  # the backward too, while we have torch here
        t_loss.backward()
        g = m.backward().tensors()
        for name, p in lstm.named_parameters():
            np.testing.assert_allclose(g[name], p.grad.numpy(), rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(g["head_weight"], head.weight.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(g["head_bias"], head.bias.grad.numpy(), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# plans: every way of running the recurrence gives the reference's numbers

PLANS = [Plan(), Plan(fwd="blas", bwd="blas"), Plan(fwd="tiled", bwd="blas"), Plan(fwd="blas", bwd="tiled"),
         Plan(parallel=True), Plan(parallel=True, split="batch"), Plan(parallel=True, fwd="blas", bwd="blas", split="batch")]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.label.replace(" ", "_"))
def test_every_plan_matches_the_reference(task, plan):
    """Tiled and BLAS products, serial and both parallel splits, at batch sizes that leave every
    remainder of the 4-row tiles (1, 2, 3, 5, 6) and an odd hidden size (odd weight-row tails and
    uneven unit chunks): loss, gradients, outputs and the forward-only route equal the NumPy
    reference."""
    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    cfg = make_config(task, hidden=5, parallel=plan.parallel)
    with thread_limits(numba_threads=threads, blas_threads=1):
        for B in (1, 2, 3, 5, 6):
            m = perturbed_model(cfg)
            m.use_plan(plan)
            assert m.plan(4, B) == plan and m.plan(4, B, train=False) == plan
            x, y, state = make_batch(cfg, T=4, B=B, seed=B)
            loss, g = m.loss_and_grads(x, y, state)
            tensors64 = {k: v.astype(np.float64) for k, v in m.params.tensors().items()}
            r_loss, r_probs, cache = reference.forward(cfg, tensors64, x, y, state)
            r_grads = reference.backward(cache)
            assert loss == pytest.approx(r_loss, rel=1e-12), B
            for name, v in g.tensors().items():
                np.testing.assert_allclose(v, r_grads[name], rtol=0, atol=1e-12, err_msg=f"{name} B={B}")
            np.testing.assert_allclose(m.predict(x, state), r_probs, rtol=0, atol=1e-12)


def test_parallel_plan_needs_a_parallel_model():
    with pytest.raises(UsageError, match="parallel=True"):
        Model(make_config("lm")).use_plan(Plan(parallel=True))
    with pytest.raises(UsageError, match="tiled"):
        Plan(parallel=True, fwd="blas")  # unit chunks write rows of R: no BLAS call does that
    with pytest.raises(UsageError):
        Plan(fwd="mkl")


def test_tune_plan_picks_a_plan_and_leaves_the_model_as_it_was():
    cfg = make_config("lm", parallel=True)
    m = perturbed_model(cfg)
    x, y, state = make_batch(cfg)
    loss, g = m.loss_and_grads(x, y, state)
    before = g.flat.copy(), m.outputs().copy()
    with thread_limits(numba_threads=min(2, numba.config.NUMBA_NUM_THREADS), blas_threads=1):
        for train in (True, False):
            plan = M.tune_plan(m, 6, 2, train)
            assert isinstance(plan, Plan) and plan.parallel in (False, numba.get_num_threads() > 1)
    np.testing.assert_array_equal(m.grads.flat, before[0])
    np.testing.assert_array_equal(m.outputs(), before[1])
    np.testing.assert_array_equal(m.backward().flat, before[0])  # the last batch is still the one


def test_plans_are_measured_once_and_cached_and_a_corrupt_cache_is_measured_over(tmp_path, monkeypatch):
    monkeypatch.setattr(M.codegen, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(M, "_PLANS", {})
    calls = []
    real = M.tune_plan
    monkeypatch.setattr(M, "tune_plan", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    (tmp_path / "lstm-plans.json").write_text('{"truncated": ')
    cfg = make_config("classify")
    a = Model(cfg)
    pa = a.plan(4, 3)
    assert calls == [(4, 3, True)]
    saved = json.loads((tmp_path / "lstm-plans.json").read_text())
    assert [Plan(**v) for v in saved.values()] == [pa]
    monkeypatch.setattr(M, "_PLANS", {})  # a new process: reads the file, measures nothing
    assert Model(cfg).plan(4, 3) == pa and len(calls) == 1
    assert Model(cfg).plan(4, 3, train=False) and len(calls) == 2  # the forward-only route is its own


# ---------------------------------------------------------------------------------------------
# serial == parallel


@pytest.mark.parametrize("task", TASKS)
def test_parallel_equals_serial(task):
    threads = min(2, numba.config.NUMBA_NUM_THREADS)
    ser = perturbed_model(make_config(task, hidden=5))  # odd hidden: uneven chunks
    par = perturbed_model(make_config(task, hidden=5, parallel=True))
    np.testing.assert_array_equal(ser.params.flat, par.params.flat)
    x, y, state = make_batch(ser.config, T=4, B=3)
    with thread_limits(numba_threads=threads, blas_threads=1):
        assert par.nchunks == threads
        lp, gp = par.loss_and_grads(x, y, state)
        Adam(par, lr=0.01, clip=0.5).step()
    ls, gs = ser.loss_and_grads(x, y, state)
    assert lp == pytest.approx(ls, rel=1e-13)
    np.testing.assert_allclose(par.outputs(), ser.outputs(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(gp.flat, gs.flat, rtol=0, atol=1e-13)
    Adam(ser, lr=0.01, clip=0.5).step()
    np.testing.assert_allclose(par.params.flat, ser.params.flat, rtol=0, atol=1e-13)


def test_thread_limits_restores_numba_threads():
    before = numba.get_num_threads()
    with thread_limits(numba_threads=1, blas_threads=1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with pytest.raises(UsageError):
        with thread_limits(numba_threads=numba.config.NUMBA_NUM_THREADS + 1):
            pass


# ---------------------------------------------------------------------------------------------
# initialisation


def test_init_depends_only_on_seed_and_shapes():
    a = init_params(make_config("lm", "tanh", "sigmoid"))
    b = init_params(make_config("lm", "isru", "isru_sigmoid", parallel=True))
    np.testing.assert_array_equal(a.flat, b.flat)
    c32 = init_params(make_config("lm", dtype="float32"))
    np.testing.assert_array_equal(c32.flat, a.flat.astype(np.float32))
    other = init_params(make_config("lm", seed=1))
    assert not np.array_equal(other.flat, a.flat)


def test_init_is_glorot_with_forget_bias():
    cfg = ModelConfig("lm", hidden=16, layers=3, vocab_size=30, forget_bias=1.0)
    t = init_params(cfg).tensors()
    assert list(t) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l1",
                       "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_ih_l2", "weight_hh_l2",
                       "bias_ih_l2", "bias_hh_l2", "head_weight", "head_bias"]
    assert t["weight_ih_l0"].shape == (64, 30) and t["weight_ih_l1"].shape == (64, 16)
    assert t["head_weight"].shape == (30, 16)
    for name, w in t.items():
        if w.ndim == 2:
            bound = math.sqrt(6 / sum(w.shape))
            assert np.abs(w).max() <= bound
            assert np.abs(w).max() > 0.8 * bound  # uniform over the whole range
            assert abs(w.mean()) < 0.2 * bound
    np.testing.assert_array_equal(t["bias_ih_l1"][16:32], 1.0)
    assert not t["bias_ih_l1"][:16].any() and not t["bias_hh_l1"].any() and not t["head_bias"].any()


def test_params_are_views_of_one_flat_buffer():
    p = Params(make_config("classify"))
    for v in p.tensors().values():
        v[...] = 1
    assert np.count_nonzero(p.flat) == sum(v.size for v in p.tensors().values())


# ---------------------------------------------------------------------------------------------
# bad configuration and inputs


def test_unknown_activation_raises_unknown_name():
    with pytest.raises(registry.UnknownName):
        make_config("lm", cell="nope")
    with pytest.raises(registry.UnknownName):
        make_config("lm", gate="tanh:nope")


def test_activation_without_backprop_form_raises_usage_error(monkeypatch):
    act = registry.get("tanh")
    fake = registry.Activation("fake", "no backprop form", "approx", f=act.f, dfdx=act.dfdx, dfdy=None,
                               antiderivative=None, out_range=act.out_range, impls=act.impls)
    monkeypatch.setitem(registry.REGISTRY, "fake", fake)
    with pytest.raises(UsageError, match="backprop"):
        make_config("lm", gate="fake")


@pytest.mark.parametrize("kw", [
    dict(hidden=0), dict(hidden=-3), dict(hidden=2.5), dict(layers=0), dict(dtype="float16"),
    dict(task="regress"), dict(vocab_size=0), dict(cell="tanh:numpy"), dict(seed=-1),
    dict(parallel="yes"), dict(forget_bias=float("nan")),
])
def test_bad_config_raises_usage_error(kw):
    base = dict(task="lm", hidden=8, layers=1, vocab_size=5)
    with pytest.raises(UsageError):
        ModelConfig(**{**base, **kw})
    with pytest.raises(UsageError):
        ModelConfig("classify", hidden=8, n_features=0)


def test_bad_inputs_raise_usage_error():
    m = Model(make_config("lm"))
    with pytest.raises(UsageError):
        m.forward(np.zeros((3,), int))
    with pytest.raises(UsageError):
        m.forward(np.full((3, 1), V))  # token id out of range
    with pytest.raises(UsageError):
        m.forward(np.zeros((3, 1)), np.zeros((3, 1)))  # float ids
    with pytest.raises(UsageError):
        m.forward(np.zeros((3, 1), int), np.zeros((2, 1), int))
    with pytest.raises(UsageError):
        m.backward()  # no forward yet
    with pytest.raises(UsageError, match="validate=False"):  # would compile inside a timing
        m.forward(np.zeros((3, 1), np.int32), np.zeros((3, 1), np.int64), validate=False)
    c = Model(make_config("classify"))
    with pytest.raises(UsageError, match="validate=False"):
        c.forward(np.zeros((3, 2, F), np.float32), validate=False)  # model is float64
    with pytest.raises(UsageError):
        c.forward(np.zeros((3, 2, F + 1)))
    with pytest.raises(UsageError):
        c.forward(np.zeros((3, 2, F)), np.zeros(3))


@pytest.mark.parametrize("task", TASKS)
def test_kernel_source_runs_as_plain_python_with_same_result(task):
    """The kernel templates (model.py, ops.py, the task module), run uncompiled as plain Python
    (prange = range, np.dot with out), give bit-identical results to the generated, compiled
    modules: generation changes nothing. (The
    BLAS plan: the tiled products are compiled with reassociation, whose sums no uncompiled
    loop reproduces bit for bit; ``test_every_plan_matches_the_reference`` covers them.)"""
    cfg = ModelConfig(task, hidden=3, layers=2, vocab_size=4 if task == "lm" else 0,
                      n_features=2 if task == "classify" else 0, dtype="float64")
    compiled, plain = perturbed_model(cfg), perturbed_model(cfg)
    plain._kernels = cfg.task_def.template  # imports lstm_numba.model and .ops: plain Python too
    for m in (compiled, plain):
        m.use_plan(Plan(fwd="blas", bwd="blas"))
    x, y, state = make_batch(cfg, T=3, B=2)
    lc, gc = compiled.loss_and_grads(x, y, state)
    lp, gp = plain.loss_and_grads(x, y, state)
    assert lc == lp
    np.testing.assert_array_equal(gc.flat, gp.flat)
