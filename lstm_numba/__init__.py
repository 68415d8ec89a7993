"""lstm_numba: a multi-layer LSTM in Numba with pluggable cell/gate activations.

The model (math, forward/backward kernels, parameters) is in ``lstm_numba.model``; training,
evaluation, inference, save/load and thread control in ``lstm_numba.train``; the optimizer in
``lstm_numba.optim``; an independent NumPy reference for tests in ``lstm_numba.reference``.
Each module's docstring documents its public API.
"""
from .model import Model, ModelConfig, Params, compile_model, init_params
from .optim import Adam
from .train import (NonFiniteLoss, TrainConfig, TrainResult, evaluate, generate, load, predict,
                    predict_proba_batch, save, thread_limits, train)

__all__ = [
    "Model", "ModelConfig", "Params", "compile_model", "init_params", "Adam",
    "NonFiniteLoss", "TrainConfig", "TrainResult", "evaluate", "generate", "load", "predict",
    "predict_proba_batch", "save", "thread_limits", "train",
]
