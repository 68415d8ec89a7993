"""An independent NumPy reference of the LSTM, for tests only: slow and plain.

Independent of ``model`` on purpose: it works from the torch-named tensor dict, computes in
float64 with per-timestep NumPy matrix products over explicit one-hot inputs, splits gates with
``np.split``, and differentiates through the registry's *NumPy* implementations and their
derivatives in x (``dfdx`` of the stored pre-activations) -- not the Numba scalars and their
backprop forms ``dfdy`` of the outputs that the model uses.

``forward(config, tensors, inputs, targets, state=None) -> (loss, probs, cache)``
``backward(cache) -> {name: gradient}`` with the names of ``Params.tensors()``.
Inputs and targets are laid out as for ``Model.forward`` (time-major).
"""
from __future__ import annotations

import numpy as np

from mathbench import registry


def _numpy_forms(spec: str):
    """(f, f') as float64 array functions from the registry's NumPy implementation."""
    act = registry.get(spec.partition(":")[0])
    impl = act.impls["numpy"]
    p = np.float64(act.param_default)

    def f(x):
        out = np.empty_like(x)
        impl.forward(x, p, out)
        return out

    def df(x):
        out = np.empty_like(x)
        impl.dfdx(x, p, out)
        return out

    return f, df


def forward(config, tensors: dict, inputs, targets, state=None):
    L, H = config.layers, config.hidden
    cell, dcell = _numpy_forms(config.cell)
    gate, dgate = _numpy_forms(config.gate)
    W = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    if config.task == "lm":
        idx = np.asarray(inputs)
        T, B = idx.shape
        xs = np.eye(config.vocab_size)[idx]  # (T, B, V) one-hot
    else:
        xs = np.asarray(inputs, dtype=np.float64)
        T, B = xs.shape[:2]
    if state is None:
        h0 = np.zeros((L, B, H))
        c0 = np.zeros((L, B, H))
    else:
        h0, c0 = (np.asarray(s, dtype=np.float64) for s in state)
    layer_in = list(xs)
    steps = []  # per layer: list of per-timestep dicts
    for layer in range(L):
        Wih, Whh = W[f"weight_ih_l{layer}"], W[f"weight_hh_l{layer}"]
        bias = W[f"bias_ih_l{layer}"] + W[f"bias_hh_l{layer}"]
        h, c = h0[layer], c0[layer]
        out, rec = [], []
        for t in range(T):
            a = layer_in[t] @ Wih.T + h @ Whh.T + bias
            ai, af, ag, ao = np.split(a, 4, axis=1)
            i, f, g, o = gate(ai), gate(af), cell(ag), gate(ao)
            c_new = f * c + i * g
            h_new = o * cell(c_new)
            rec.append(dict(x=layer_in[t], h=h, c=c, a=(ai, af, ag, ao), gates=(i, f, g, o), c_new=c_new))
            h, c = h_new, c_new
            out.append(h)
        steps.append(rec)
        layer_in = out
    top = np.stack(layer_in)  # (T, B, H)
    if config.task == "lm":
        logits = top @ W["head_weight"].T + W["head_bias"]  # (T, B, V)
        m = logits.max(axis=2, keepdims=True)
        lse = m + np.log(np.exp(logits - m).sum(axis=2, keepdims=True))
        probs = np.exp(logits - lse)
        tgt = np.asarray(targets)
        loss = float(np.mean(lse[..., 0] - np.take_along_axis(logits, tgt[..., None], axis=2)[..., 0]))
    else:
        z = top[-1] @ W["head_weight"][0] + W["head_bias"][0]  # (B,)
        probs = 1.0 / (1.0 + np.exp(-z))
        y = np.asarray(targets, dtype=np.float64)
        loss = float(np.mean(np.logaddexp(0.0, z) - z * y))
        tgt = y
    cache = dict(config=config, W=W, steps=steps, top=top, probs=probs, targets=tgt,
                 forms=(cell, dcell, gate, dgate), T=T, B=B)
    return loss, probs, cache


def backward(cache) -> dict:
    config, W, steps, top = cache["config"], cache["W"], cache["steps"], cache["top"]
    cell, dcell, gate, dgate = cache["forms"]
    T, B, L, H = cache["T"], cache["B"], config.layers, config.hidden
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    probs, tgt = cache["probs"], cache["targets"]
    if config.task == "lm":
        dlogits = probs.copy()
        V = config.vocab_size
        dlogits -= np.eye(V)[tgt]
        dlogits /= T * B
        grads["head_weight"] = np.einsum("tbv,tbh->vh", dlogits, top)
        grads["head_bias"] = dlogits.sum(axis=(0, 1))
        d_out = list(dlogits @ W["head_weight"])  # per t: (B, H)
    else:
        dz = (probs - tgt) / B
        grads["head_weight"] = (dz @ top[-1])[None, :]
        grads["head_bias"] = np.array([dz.sum()])
        d_out = [np.zeros((B, H)) for _ in range(T)]
        d_out[-1] = np.outer(dz, W["head_weight"][0])
    for layer in range(L - 1, -1, -1):
        Wih, Whh = W[f"weight_ih_l{layer}"], W[f"weight_hh_l{layer}"]
        dh_next = np.zeros((B, H))
        dc_next = np.zeros((B, H))
        d_in = [None] * T
        for t in range(T - 1, -1, -1):
            s = steps[layer][t]
            ai, af, ag, ao = s["a"]
            i, f, g, o = s["gates"]
            dh = d_out[t] + dh_next
            tc = cell(s["c_new"])
            do = dh * tc
            dc = dc_next + dh * o * dcell(s["c_new"])
            di, df, dg = dc * g, dc * s["c"], dc * i
            da = np.concatenate([di * dgate(ai), df * dgate(af), dg * dcell(ag), do * dgate(ao)], axis=1)
            grads[f"weight_ih_l{layer}"] += da.T @ s["x"]
            grads[f"weight_hh_l{layer}"] += da.T @ s["h"]
            grads[f"bias_ih_l{layer}"] += da.sum(axis=0)
            grads[f"bias_hh_l{layer}"] += da.sum(axis=0)
            dh_next = da @ Whh
            dc_next = dc * f
            d_in[t] = da @ Wih
        d_out = d_in
    return grads
