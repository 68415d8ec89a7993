"""Load generated Numba source from a cache folder so ``cache=True`` works for kernels built
from registry entries.

Numba cannot cache closures over jitted functions (the cache key pickles the closure and
changes every process), nor functions taking a dispatcher argument. A real module whose
globals name the scalar functions caches fine. Its file name carries a hash of its text and of
every source file it depends on, because Numba only invalidates a cache when the file of the
cached function itself changes.

A damaged cache file (a truncated or empty ``.pyc``, ``.nbi`` or ``.nbc``, e.g. from a full disk
or a killed process) would make every later run fail to unpickle it: it is discarded with one
line on stderr and the code is compiled again.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import pickle
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


def save_json(path: Path, data: dict) -> None:
    """Write a cache file (facts, measured plans) atomically: a concurrent process reads the old
    file or the new one, never half. A full or unwritable disk only costs a recomputation in the
    next process, so it is not an error."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # per process: concurrent runs never share one
    try:
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


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
    _check_pyc(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Numba's cache re-imports the module by name when it loads a cached function.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# damaged cache files

#: what unpickling or unmarshalling a truncated/garbled file raises
DAMAGE = (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, ImportError)


def discard(path: Path, why: BaseException) -> None:
    print(f"mathbench: discarded the damaged cache file {path} ({type(why).__name__}); rebuilding it",
          file=sys.stderr)
    try:
        path.unlink()
    except FileNotFoundError:
        pass  # another process discarded it first


def _check_pyc(source: Path) -> None:
    """Python falls back to the source for a bad .pyc header but raises EOFError for a truncated
    body: check the body and drop the file if it does not load."""
    pyc = Path(importlib.util.cache_from_source(str(source)))
    try:
        data = pyc.read_bytes()
    except OSError:
        return
    try:
        if len(data) > 16:  # shorter: Python itself rejects the header and recompiles
            marshal.loads(data[16:])
    except DAMAGE as e:
        discard(pyc, e)


def _numba_file_ok(path: Path) -> bool:
    """Can Numba's index (.nbi: a pickled version, then a pickle) or data (.nbc) file be read?"""
    try:
        with open(path, "rb") as f:
            if path.suffix == ".nbi":
                pickle.load(f)
            pickle.loads(f.read())
        return True
    except FileNotFoundError:
        return True
    except (OSError, *DAMAGE) as e:
        discard(path, e)
        return False


def discard_damaged(folders) -> int:
    """Remove the unreadable Numba cache files in ``folders``; return how many."""
    bad = 0
    for d in {Path(f) for f in folders}:
        for path in sorted(d.glob("*.nb[ic]")) if d.is_dir() else []:
            bad += not _numba_file_ok(path)
    return bad


def compile_cached(dispatcher, sig, related=()) -> None:
    """``dispatcher.compile(sig)``; if loading from Numba's cache fails on a damaged file (its own
    or that of a jitted function it calls, ``related``), discard the damaged files and compile
    again. Any other error, or one that persists, propagates."""
    try:
        dispatcher.compile(sig)
    except DAMAGE:
        folders = [getattr(getattr(d, "_cache", None), "_cache_path", None) for d in (dispatcher, *related)]
        if not discard_damaged(f for f in folders if f):
            raise
        dispatcher.compile(sig)
