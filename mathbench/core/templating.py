"""Kernel templates: ordinary modules whose marked functions become Numba kernels in generated variants.

Why generate at all: Numba caches a kernel on disk only if it is a plain function of a real module
(not a closure over jitted functions, not a function taking a dispatcher argument), and its cache
key ignores globals. So every variant (a scalar function, an activation pair, serial or parallel)
needs a module file of its own whose globals name the chosen scalars.

A *template* is an importable module (``mathbench.functions.loops``, ``lstm_numba.ops``,
``lstm_numba.model``, an LSTM task module). It marks its kernels with ``@kernel``, ``@pkernel``
(may use ``prange``; parallel in the parallel variant) or a ``fixed(...)`` mark (its own fastmath
flags). Imported as plain Python the marks change nothing, so the template runs (slowly) as it
reads -- that is how its tests use it. A template imports with absolute names only: its text
becomes a top-level module.

``generate(template, variant, footer, depends_on)`` writes the template's source text, WHOLE and
unchanged (same line numbers: Numba's errors and tracebacks point at the template's lines), plus a
footer that names the template and the variant, rebinds globals (the scalars, the other templates'
kernels by their generated variants, ``PARALLEL``) and ends with ``jit_all(globals(), ...)``,
which replaces every marked function by its Numba dispatcher. Numba reads globals when it
compiles, so the footer's rebindings are what the kernels see. The module is loaded through
``codegen.load_module``: its name hashes its text and its dependencies' sources, so an edit to
any of them recompiles, and ``cache=True`` keeps the compiled code between processes.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from . import codegen
from .jit import JIT_OPTIONS

_MARK = "__template_kernel__"  # attribute the marks set: None (variant's flags) or fixed options


class TemplateError(RuntimeError):
    """A template and its footer disagree (a bug in the generation code, not bad input)."""


def _marked(fn, how):
    setattr(fn, _MARK, how)
    return fn


def kernel(fn):
    """A serial kernel, compiled with the variant's fastmath flags."""
    return _marked(fn, ("kernel", None))


def pkernel(fn):
    """A kernel that may use ``prange``: ``parallel=True`` in the parallel variant."""
    return _marked(fn, ("pkernel", None))


def fixed(**options):
    """A mark for kernels with their own Numba options (e.g. ``fastmath``) in every variant."""
    frozen = tuple(sorted((k, frozenset(v) if isinstance(v, (set, frozenset)) else v) for k, v in options.items()))
    return lambda fn: _marked(fn, ("fixed", frozen))


def mark_of(obj):
    """("kernel" | "pkernel" | "fixed", options) of a marked plain function, else None."""
    return getattr(obj, _MARK, None) if inspect.isfunction(obj) else None


def marked(module) -> list[str]:
    """Names of the kernels ``module`` defines itself (not the ones it imports), in source order."""
    ns = vars(module)
    return [n for n, v in ns.items() if mark_of(v) and v.__module__ == ns["__name__"]]


def jit_all(namespace: dict, parallel: bool, fastmath) -> list[str]:
    """Replace every marked function defined in ``namespace`` (a generated module's globals) by
    ``numba.njit`` with its options. A marked function of another template still bound here (the
    footer forgot to rebind it to its generated variant) would run as plain Python inside nopython
    code: that is a TemplateError. Returns the names jitted."""
    from numba import njit

    done, stray = [], []
    for name, fn in list(namespace.items()):
        how = mark_of(fn)
        if how is None:
            continue
        if fn.__module__ != namespace["__name__"]:
            stray.append(f"{name} (from {fn.__module__})")
            continue
        kind, opts = how
        options = {"fastmath": fastmath} if kind == "kernel" else \
            {"parallel": bool(parallel), "fastmath": fastmath} if kind == "pkernel" else \
            {k: (set(v) if isinstance(v, frozenset) else v) for k, v in opts}
        namespace[name] = njit(**options, **JIT_OPTIONS)(fn)
        done.append(name)
    if stray:
        raise TemplateError(f"{namespace['__name__']}: template kernels not rebound by the footer: {', '.join(stray)}")
    return done


def flags_text(flags) -> str:
    """A fastmath value as source text, sorted: a set's repr order changes between processes, and
    the text is the module's cache key."""
    if isinstance(flags, (set, frozenset)):
        return "{" + ", ".join(map(repr, sorted(flags))) + "}" if flags else "False"
    return repr(bool(flags))


def source_file(template) -> Path:
    return Path(inspect.getsourcefile(template))


def module_text(template, variant: str, footer: list[str], parallel: bool, fastmath=frozenset()) -> str:
    """The generated module's text: the template's file unchanged, then the footer (see module doc)."""
    text = source_file(template).read_text()
    if not text.endswith("\n"):
        text += "\n"
    return text + "\n".join([
        "",
        "",
        "# " + "=" * 97,
        f"# GENERATED from the template {template.__name__} ({source_file(template).name}) for {variant}.",
        "# Everything above is that file unchanged (same line numbers); below, what makes it this variant.",
        *footer,
        f"PARALLEL = {bool(parallel)}",
        f"from {__name__} import jit_all as _jit_all",
        f"_jit_all(globals(), parallel={bool(parallel)}, fastmath={flags_text(fastmath)})",
        "",
    ])


def generate(template, variant: str, footer: list[str], depends_on: list[str], parallel: bool,
             fastmath=frozenset(), prefix: str = ""):
    """Write (once) and import the generated module of ``template`` for one variant. Its name is
    ``prefix`` (default: the template's dotted name with underscores) and the hash."""
    text = module_text(template, variant, footer, parallel, fastmath)
    deps = sorted({str(source_file(template)), __file__, *map(str, depends_on)})
    return codegen.load_module(prefix or template.__name__.replace(".", "_"), text, deps)


def imports_of(template, generated: dict) -> list[str]:
    """Footer lines rebinding the kernels ``template`` imports from other templates to their
    generated variants (``generated``: template module name -> generated module). The names come
    from the marks (each function knows its template by ``__module__``), never from the text."""
    wanted: dict = {}
    for n, v in vars(template).items():
        if mark_of(v) and v.__module__ != template.__name__:
            wanted.setdefault(v.__module__, []).append(n)
    lines = []
    for src, names in sorted(wanted.items()):
        if src not in generated:
            raise TemplateError(f"{template.__name__} imports kernels of {src}, which has no generated variant here")
        gen = generated[src]
        missing = [n for n in names if mark_of(getattr(gen, n, None)) is not None or not hasattr(gen, n)]
        if missing:
            raise TemplateError(f"{gen.__name__} does not define the kernels {', '.join(missing)}")
        lines.append(f"from {gen.__name__} import {', '.join(names)}")
    return lines
