"""The generated kernel modules of one variant: which activations, serial or parallel, which task.

Three templates (``mathbench.templating``), each generated per variant and disk-cached:
``lstm_numba.ops`` per (parallel) -- activation-independent, shared by every pair;
``lstm_numba.model`` per (cell, gate, parallel) -- the cell and the stack, its footer binding the
activation scalars and the ops kernels; a task module (``lstm_numba.tasks``) per (task, cell, gate,
parallel) -- the task's heads and entry points, its footer binding the model's and the ops' kernels.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

from mathbench import UsageError, c, exp_core, registry, templating

from . import model as _model, ops as _ops


def resolve_activation(spec: str, slot: str):
    """(Activation, Impl) for a Numba implementation with a backprop form, else UsageError."""
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"{slot} activation must be a registry name, got {spec!r}")
    act, impl = registry.resolve(spec)  # UnknownName for unknown names
    if impl.backend != "numba":
        raise UsageError(f"{slot} activation {spec!r}: the LSTM needs a numba implementation, "
                         f"not {impl.backend}")
    if not act.has_backprop_form or impl.dfdy is None:
        raise UsageError(f"{slot} activation {spec!r} has no backprop form f'(x) = g(f(x)); "
                         "the LSTM backward pass needs one")
    return act, impl


def _scalars(cell: str, gate: str) -> dict:
    _, ci = resolve_activation(cell, "cell")
    _, gi = resolve_activation(gate, "gate")
    return {"CELL_F": ci.forward, "CELL_DY": ci.dfdy, "GATE_F": gi.forward, "GATE_DY": gi.dfdy}


def cell_fastmath(cell: str, gate: str) -> frozenset:
    """The cell kernels' fastmath flags: the union of the four scalars' own. A scalar inlined at
    Numba IR level (``numba_simd``: ``inline="always"``) is lowered with its caller's flags, so
    the loop must carry them (as ``mathbench``'s array kernels do); a scalar called as a function
    keeps its own (``isru:numba_rsqrt``'s arcp/afn must not reach the rest of the loop). Pairs of
    plain scalars (the seed's tanh/sigmoid) get none."""
    flags = set()
    for fn in _scalars(cell, gate).values():
        if fn.targetoptions.get("inline") != "always":  # compiled on its own, with its own flags
            continue
        f = fn.targetoptions.get("fastmath", False)
        flags |= set(f) if isinstance(f, (set, frozenset)) else (set() if not f else {"fast"})
    return frozenset(flags)


def _jit_sources() -> list[str]:
    """Sources every generated module depends on: the JIT options/constants and the SIMD exp."""
    return [inspect.getsourcefile(c), inspect.getsourcefile(exp_core.py_func)]


@lru_cache(maxsize=None)
def ops(parallel: bool):
    """The activation-independent kernels (GEMM wrappers, tiled products, Adam) of one variant."""
    return templating.generate(_ops, f"parallel={bool(parallel)}", [], _jit_sources(), parallel)


def _cell_footer(cell: str, gate: str, parallel: bool) -> tuple[list[str], list[str]]:
    fns = _scalars(cell, gate)
    lines = [f"from {fn.py_func.__module__} import {fn.py_func.__name__} as {alias}" for alias, fn in fns.items()]
    lines += templating.imports_of(_model, {_ops.__name__: ops(parallel)})
    deps = [inspect.getsourcefile(fn.py_func) for fn in fns.values()] + [ops(parallel).__file__]
    return lines, deps


def model_text(cell: str, gate: str, parallel: bool) -> str:
    """The generated cell module's text (for reading and tests)."""
    return templating.module_text(_model, _variant(cell, gate, parallel), _cell_footer(cell, gate, parallel)[0],
                                  parallel, cell_fastmath(cell, gate))


def _variant(cell, gate, parallel) -> str:
    return f"cell={cell!r}, gate={gate!r}, parallel={bool(parallel)}"


@lru_cache(maxsize=None)
def cell_kernels(cell: str, gate: str, parallel: bool):
    """The cell and stack kernels of one (cell, gate, parallel) choice."""
    footer, deps = _cell_footer(cell, gate, parallel)
    return templating.generate(_model, _variant(cell, gate, parallel), footer, _jit_sources() + deps, parallel,
                    cell_fastmath(cell, gate))


@lru_cache(maxsize=None)
def task_kernels(task: str, cell: str, gate: str, parallel: bool):
    """A task's entry points (``forward``/``backward``/``infer`` kernels and its heads) for one
    (cell, gate, parallel) choice: what ``network.Model`` calls."""
    from .tasks import get

    template = get(task).template
    cm, om = cell_kernels(cell, gate, parallel), ops(parallel)
    footer = templating.imports_of(template, {_model.__name__: cm, _ops.__name__: om})
    return templating.generate(template, f"task={task!r}, " + _variant(cell, gate, parallel), footer,
                    _jit_sources() + [cm.__file__, om.__file__], parallel, cell_fastmath(cell, gate))


def template_sources() -> list[str]:
    """Every kernel template's file (what a measured plan depends on)."""
    from . import tasks

    files = {inspect.getsourcefile(m) for m in (_ops, _model, templating)}
    files |= {inspect.getsourcefile(t.template) for t in tasks.TASKS.values()}
    return sorted(files)
