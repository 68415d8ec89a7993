"""The array-kernel template (``mathbench.templating``): the loops every timed Numba kernel runs.

``elementwise`` applies one scalar function f(x, p) of the registry to an array; ``copy`` is the
memory roof, the same loop doing no arithmetic. Both have the call signature the harness uses for
every candidate, ``(x, p, out)``.

Imported as plain Python this runs as it reads (``prange`` is ``range``), with the default SCALAR
below. ``functions.kernels`` generates one module per (registry scalar, serial or parallel): this
file unchanged plus a footer binding SCALAR to the registry's Numba scalar and compiling both loops
with that scalar's fastmath flags (a scalar inlined at Numba IR level, the ``numba_simd`` ones,
is lowered with its caller's flags; the loop itself does no arithmetic), ``parallel=True`` in the
parallel variant. The copy kernel comes from a variant of its own, without flags.
"""
from __future__ import annotations

import math

from numba import prange

from mathbench.core.templating import pkernel  # absolute: the text becomes a top-level module


def SCALAR(x, p):  # noqa: N802 -- a slot the generated variants rebind, named like the LSTM's
    """Default scalar for reading and running the template as plain Python."""
    return math.tanh(x)


@pkernel
def elementwise(x, p, out):
    """out[i] = SCALAR(x[i], p)."""
    for i in prange(x.shape[0]):
        out[i] = SCALAR(x[i], p)


@pkernel
def copy(x, p, out):
    """out[i] = x[i]: what moving the data alone costs."""
    for i in prange(x.shape[0]):
        out[i] = x[i]
