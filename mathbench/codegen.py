"""Load generated Numba source from a cache folder so ``cache=True`` works for kernels built
from registry entries.

Numba cannot cache closures over jitted functions (the cache key pickles the closure and
changes every process), nor functions taking a dispatcher argument. A real module whose
globals name the scalar functions caches fine. Its file name carries a hash of its text and of
every source file it depends on, because Numba only invalidates a cache when the file of the
cached function itself changes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numba


def cache_dir() -> Path:
    """``$MATHBENCH_CACHE_DIR``, else ~/.cache/mathbench, else a temp folder."""
    env = os.environ.get("MATHBENCH_CACHE_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.home() / ".cache" / "mathbench", Path(tempfile.gettempdir()) / "mathbench-cache"]
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".write-test"
            probe.write_text("")
            probe.unlink()
            return d
        except OSError:
            continue
    raise OSError("no writable cache folder for compiled kernels; set MATHBENCH_CACHE_DIR")


def source_hash(text: str, depends_on: list[str]) -> str:
    h = hashlib.sha256(text.encode())
    h.update(numba.__version__.encode())
    for path in sorted(set(depends_on)):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def load_module(prefix: str, text: str, depends_on: list[str]):
    """Write ``text`` to ``<cache>/<prefix>_<hash>.py`` (once) and import it."""
    name = f"{prefix}_{source_hash(text, depends_on)}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: concurrent processes never import half a file
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Numba's cache re-imports the module by name when it loads a cached function.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
