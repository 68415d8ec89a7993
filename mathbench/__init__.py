"""mathbench: what activation functions cost on a CPU, and what they do to accuracy.

The flow: ``functions`` (the activation registry and every implementation) -> ``functions.kernels``
(array kernels generated from it) -> ``core.harness`` (interleaved, calibrated timing) -> a run
folder (``core.runs``: tidy CSV + JSON metadata) -> ``report`` (tables, figures, notebooks).
``accuracy`` measures and proves the formulas against independent references.

This module is the public API: what ``lstm_numba``, the notebooks and users import. Everything
in ``__all__`` is stable; the subpackages' other names are internal. Names load on first use,
so ``import mathbench`` stays cheap (Numba is imported only by what needs it).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_API = {
    # namespaces: the registry, run folders, statistics, the timing harness, threads, code generation
    "registry": ("mathbench.functions.registry", None),
    "runs": ("mathbench.core.runs", None),
    "stats": ("mathbench.core.stats", None),
    "harness": ("mathbench.core.harness", None),
    "threads": ("mathbench.core.threads", None),
    "codegen": ("mathbench.core.codegen", None),
    "templating": ("mathbench.core.templating", None),
    # bad input: one line, exit 2
    "UsageError": ("mathbench.core.errors", "UsageError"),
    "ArgumentParser": ("mathbench.core.errors", "ArgumentParser"),
    "run_cli": ("mathbench.core.errors", "run_cli"),
    "UnknownName": ("mathbench.core.errors", "UnknownName"),
    # command-line values and progress
    "choices": ("mathbench.core.cliargs", "choices"),
    "positive_ints": ("mathbench.core.cliargs", "positive_ints"),
    "split_list": ("mathbench.core.cliargs", "split_list"),
    "progress_factory": ("mathbench.core.cliargs", "progress_factory"),
    # Numba building blocks for kernels written elsewhere (the LSTM's)
    "JIT_OPTIONS": ("mathbench.core.jit", "JIT_OPTIONS"),
    "c": ("mathbench.core.jit", "c"),
    "exp_core": ("mathbench.functions.simd", "exp_core"),
    "log1p_unit": ("mathbench.functions.simd", "_log1p_unit"),
    # kernel templates' marks (``templating``): what a template module decorates its kernels with
    "kernel": ("mathbench.core.templating", "kernel"),
    "pkernel": ("mathbench.core.templating", "pkernel"),
    # what a compiled loop vectorized, read from its assembly, and the facts' cache files
    "simd_info": ("mathbench.functions.kernels", "simd_info"),
    "compiled_asm": ("mathbench.functions.kernels", "compiled_asm"),
    "load_simd_facts": ("mathbench.functions.kernels", "_load_simd_cache"),
    "cpu_info": ("mathbench.core.runs", "_cpu"),
    # reporting: tables, figures, and the notebooks' run loader
    "table": ("mathbench.report.tables", "table"),
    "tables": ("mathbench.report.tables", None),
    "plots": ("mathbench.report.plots", None),
    "nbtools": ("mathbench.report.nbtools", None),
    "htmlpage": ("mathbench.report.html", None),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'mathbench' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
