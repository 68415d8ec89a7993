"""Adam with bias correction and global gradient-norm clipping, on a model's flat buffers.

``Adam(model, lr=2e-3, clip=5.0, beta1=0.9, beta2=0.999, eps=1e-8)``; ``.step() -> float`` clips
``model.grads`` to global norm ``clip`` (torch's ``clip_grad_norm_`` rule; ``clip=0`` disables),
applies one Adam update (torch's formula) and returns the gradient norm before clipping. A
non-finite norm leaves the parameters and moments untouched (the caller decides what to do).
The update is one njit call (``adam_update`` in ``lstm_numba.ops``) over every parameter at once.
"""
from __future__ import annotations

import math

import numpy as np

from mathbench import UsageError


class Adam:
    def __init__(self, model, lr: float = 2e-3, clip: float = 5.0, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        for name, v in (("lr", lr), ("eps", eps)):
            if not (math.isfinite(v) and v > 0):
                raise UsageError(f"{name} must be a positive number, got {v!r}")
        if not (math.isfinite(clip) and clip >= 0):
            raise UsageError(f"clip must be >= 0 (0 = no clipping), got {clip!r}")
        for name, v in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= v < 1:
                raise UsageError(f"{name} must be in [0, 1), got {v!r}")
        self.model = model
        self.lr, self.clip, self.beta1, self.beta2, self.eps = lr, clip, beta1, beta2, eps
        flat = model.params.flat
        self.m = np.zeros_like(flat)
        self.v = np.zeros_like(flat)
        self.t = 0
        dt = flat.dtype.type
        self._consts = (dt(beta1), dt(1.0 - beta1), dt(beta2), dt(1.0 - beta2), dt(eps))
        self._clip = dt(clip)
        self._dt = dt

    def step(self) -> float:
        t = self.t + 1
        bc1 = 1.0 - self.beta1 ** t
        bc2 = 1.0 - self.beta2 ** t
        model = self.model
        b1, omb1, b2, omb2, eps = self._consts
        dt = self._dt
        norm = model.ops.adam_update(
            model.params.flat, model.grads.flat, self.m, self.v, dt(self.lr / bc1), b1, omb1, b2, omb2,
            eps, dt(1.0 / math.sqrt(bc2)), self._clip, model.nchunks)
        if math.isfinite(norm):
            self.t = t
        return float(norm)
