"""Timing peers: the same network in another framework, trained and timed beside the Numba model.

One module per peer; ``_MODULES`` maps its name to it (adding a backend such as JAX = one module
plus its line there). A peer module provides:

``NAME``; ``available() -> bool`` (importable; imported lazily, nothing loads without the extra);
``version() -> str | None``; ``MISSING`` (the one-line message when it is not installed);
``Engine(config, optimizer="adam", lr=1e-2, clip=None, init_weights=None)``: one network of
``config``'s shape (a ``network.ModelConfig``: task, sizes, dtype, seed; its task says the input
and head kinds, ``Task.INPUT``/``Task.OUTPUT``) with ``train_step(x, y) -> (forward, backward,
optimizer seconds, loss)``, ``snapshot()``/``restore(snap)``, ``predict(x)`` (probabilities
without a gradient tape), ``evaluate(x, y) -> (loss, labels)``, ``init`` ("copied" when it starts
from ``init_weights``, the Numba model's ``Params.tensors()``). Thread counts are set around it
by ``mathbench.threads.limit`` (the sweep's ``config_threads``).

The functions below act on the default peer (``DEFAULT``) unless given a name.
"""
from __future__ import annotations

import importlib

from mathbench import UsageError

DEFAULT = "torch"
_MODULES = {"torch": "lstm_numba.peers.torch"}
NAMES = tuple(_MODULES)


def get(name: str = DEFAULT):
    """The peer module called ``name``."""
    if name not in _MODULES:
        raise UsageError(f"unknown peer {name!r}; valid: {', '.join(NAMES)}")
    return importlib.import_module(_MODULES[name])


def available(name: str = DEFAULT) -> bool:
    return get(name).available()


def version(name: str = DEFAULT):
    return get(name).version()  # None when it is not installed


def require(name: str = DEFAULT) -> None:
    """UsageError with the peer's own message (``MISSING``) when it is not installed."""
    if not available(name):
        raise UsageError(get(name).MISSING)


def engine(config, name: str = DEFAULT, **options):
    """A fresh peer network of ``config``'s shape (see module doc for ``options``)."""
    return get(name).Engine(config, **options)
