"""The torch timing peer: the same network in ``torch.nn.LSTM`` (CPU), with the ``peers`` extra.

Same task, layers, hidden size, dtype, batch, sequence length, head, loss and optimizer as the
Numba model, trained on the same batches in the same run at the same thread count. torch's
LSTM has fixed tanh/sigmoid activations, so it is a peer of the baseline pair only. Its initial
weights are copied from the Numba baseline when the model exposes them in PyTorch's layout
(gate order i, f, g, o, both biases), so the peer starts where the Numba baseline starts.
The interface is ``lstm_numba.peers``'s; the task's input and head kinds (``Task.INPUT``,
``Task.OUTPUT``) map to torch operations here.
"""
from __future__ import annotations

import sys
import time
from typing import Optional

import numpy as np

from mathbench import UsageError

NAME = "torch"


def available() -> bool:
    """torch importable (imported lazily: without the extra, nothing here is loaded)."""
    if "torch" in sys.modules:
        return True
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> Optional[str]:
    return sys.modules["torch"].__version__ if available() else None


MISSING = "torch is not installed; the peer row needs the peers extra: pip install -e '.[peers]'"


# the task kinds (``Task.INPUT``, ``Task.OUTPUT``) this peer knows
_INPUTS = ("tokens", "features")  # integer ids (one-hot) / floats per timestep
_OUTPUTS = ("softmax_every_step", "sigmoid_last_step")  # V-way cross-entropy per step / one logit, BCE


class Engine:
    """One torch.nn.LSTM network with a linear head, trained and timed step by step.

    ``config``: the Numba model's ``ModelConfig`` (task, sizes, dtype, seed). Its task's input
    kind: "tokens" (one-hot ids) or "features"; output kind: "softmax_every_step" (logits at every
    step, mean cross-entropy) or "sigmoid_last_step" (one logit from the last step's output,
    binary cross-entropy). ``optimizer``: "adam" or "sgd" with ``lr``; ``clip`` the global
    gradient norm (None: no clipping), all as in the Numba trainer.
    """

    backend = NAME

    def __init__(self, config, optimizer: str = "adam", lr: float = 1e-2, clip: Optional[float] = None,
                 init_weights: Optional[dict] = None):
        if not available():
            raise UsageError(MISSING)
        import torch

        task = config.task_def
        if task.INPUT not in _INPUTS or task.OUTPUT not in _OUTPUTS:
            raise UsageError(f"the torch peer has no {task.INPUT} input / {task.OUTPUT} head (task {task.name})")
        self.torch = torch
        self.tokens = task.INPUT == "tokens"
        self.every_step = task.OUTPUT == "softmax_every_step"
        n_in, hidden = config.n_in, config.hidden
        self.dtype = getattr(torch, config.dtype)
        torch.manual_seed(config.seed)
        self.lstm = torch.nn.LSTM(n_in, hidden, num_layers=config.layers).to(self.dtype)
        self.head = torch.nn.Linear(hidden, config.n_out).to(self.dtype)
        self.init = "torch"
        if init_weights is not None:
            self.load_weights(init_weights)
            self.init = "copied"
        params = list(self.lstm.parameters()) + list(self.head.parameters())
        self.params = params
        if optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=lr)
        elif optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=lr)
        else:
            raise ValueError(f"unknown optimizer {optimizer!r}")
        self.clip = clip
        self._eye = torch.eye(n_in, dtype=self.dtype) if self.tokens else None

    def load_weights(self, tensors: dict) -> None:
        """Copy ``{name: array}`` with torch.nn.LSTM names (``weight_ih_l0`` ..., gate order
        i, f, g, o) plus ``head_weight`` and ``head_bias``: what ``model.Params.tensors()``
        returns, so both backends start from the same weights."""
        t = self.torch
        own = dict(self.lstm.named_parameters())
        own["head_weight"] = self.head.weight
        own["head_bias"] = self.head.bias
        missing = sorted(set(own) - set(tensors))
        if missing:
            raise ValueError(f"missing tensors for the torch peer: {', '.join(missing)}")
        with t.no_grad():
            for name, p in own.items():
                p.copy_(t.as_tensor(np.asarray(tensors[name])).to(self.dtype))

    # ---------------------------------------------------------------------------------------
    def _inputs(self, x):
        t = self.torch
        if self.tokens:
            return self._eye[t.as_tensor(np.asarray(x, dtype=np.int64))]  # (T, B, V) one-hot
        return t.as_tensor(np.ascontiguousarray(x)).to(self.dtype)

    def _forward(self, x):
        out, _ = self.lstm(self._inputs(x))
        if self.every_step:
            return self.head(out)  # (T, B, V)
        return self.head(out[-1])[:, 0]  # (B,)

    def _loss(self, logits, y):
        t = self.torch
        F = t.nn.functional
        if self.every_step:
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   t.as_tensor(np.asarray(y, dtype=np.int64)).reshape(-1))
        return F.binary_cross_entropy_with_logits(logits, t.as_tensor(np.asarray(y)).to(self.dtype))

    def train_step(self, x, y) -> tuple[float, float, float, float]:
        """One step; returns (forward, backward, optimizer) seconds and the loss."""
        clock = time.perf_counter
        t0 = clock()
        loss = self._loss(self._forward(x), y)
        t1 = clock()
        loss.backward()
        t2 = clock()
        if self.clip is not None:
            self.torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=False)
        t3 = clock()
        return t1 - t0, t2 - t1, t3 - t2, float(loss.detach())

    def snapshot(self):
        """Copies of the weights (the sweep's validation-chosen checkpoint)."""
        return [p.detach().clone() for p in self.params]

    def restore(self, snap) -> None:
        with self.torch.no_grad():
            for p, q in zip(self.params, snap):
                p.copy_(q)

    def predict(self, x):
        """Probabilities for a batch without a gradient tape (what inference pays): softmax at
        every step, or sigmoid of the last step's logit."""
        with self.torch.inference_mode():
            z = self._forward(x)
            return z.softmax(-1) if self.every_step else z.sigmoid()

    def evaluate(self, x, y) -> tuple[float, np.ndarray]:
        """(mean loss, predicted labels) on a held-out batch: the most likely class at every step
        (T, B), or 0/1 (B,)."""
        with self.torch.inference_mode():
            z = self._forward(x)
            loss = float(self._loss(z, y))
            pred = z.argmax(-1) if self.every_step else (z > 0).to(self.torch.int64)
            return loss, pred.numpy()
