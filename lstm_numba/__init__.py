"""lstm_numba: a multi-layer LSTM in Numba with pluggable cell/gate activations.

The math (cell and stack kernels) is in ``lstm_numba.model``, the activation-independent kernels in
``lstm_numba.ops``, the tasks (lm, classify: heads, data, scores) in ``lstm_numba.tasks``, the
model object (config, parameters, buffers, plans) in ``lstm_numba.network``; kernel templates
become disk-cached Numba modules through ``mathbench.templating``/``lstm_numba.variants``; peers
(torch) are in ``lstm_numba.peers``; training, evaluation, inference, save/load and thread control
in ``lstm_numba.train``; the optimizer in ``lstm_numba.optim``; an independent NumPy reference for
tests in ``lstm_numba.reference``.
Each module's docstring documents its public API.
"""
from .network import Model, ModelConfig, Params, compile_model, init_params
from .optim import Adam
from .train import (NonFiniteLoss, TrainConfig, TrainResult, evaluate, generate, load, predict,
                    predict_proba_batch, save, thread_limits, train)

__all__ = [
    "Model", "ModelConfig", "Params", "compile_model", "init_params", "Adam",
    "NonFiniteLoss", "TrainConfig", "TrainResult", "evaluate", "generate", "load", "predict",
    "predict_proba_batch", "save", "thread_limits", "train",
]
