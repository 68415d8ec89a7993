"""Run folders: a tidy CSV written row by row plus a JSON metadata sidecar.

Every benchmark (mathbench kernels, the LSTM sweep) writes one folder per run:
``results.csv`` (one row per measured configuration, appended and flushed as each finishes, so an
interrupted run keeps what it finished) and ``metadata.json`` (machine, versions, threads,
command line, git commit). Reports, plots and notebooks only read these files.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from .errors import UsageError

RESULTS = "results.csv"
METADATA = "metadata.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_results_dir() -> Path:
    """``results/`` of the source checkout when run from one, else ./results."""
    root = PROJECT_ROOT
    if (root / "pyproject.toml").exists() and (root / "results").is_dir():
        return root / "results"
    return Path.cwd() / "results"


def _writable_parent(path: Path) -> None:
    parent = path.parent if not path.exists() else path
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {path}: {parent} is not writable")


def new_run_dir(kind: str, out: Optional[str] = None, resume: bool = False) -> Path:
    """Create the folder for a new run and return it.

    ``out=None``: ``results/<kind>-<timestamp>`` (suffixed ``-2``, ``-3``... if taken).
    ``out`` given: it must not hold an earlier run, unless ``resume`` is True and it is a run
    folder of the same kind (then it is reused and its finished rows are kept).
    """
    if out is None:
        base = default_results_dir()
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = base / f"{kind}-{stamp}"
        n = 2
        while path.exists():
            path = base / f"{kind}-{stamp}-{n}"
            n += 1
    else:
        path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not resume:
            raise UsageError(f"--out {path} already holds files; earlier results are never overwritten, "
                             "choose a new folder")
        if not (path / METADATA).exists():
            raise UsageError(f"--out {path} is not empty and is not a {kind} run folder; choose a new folder")
        meta = read_metadata(path)
        if meta.get("kind") != kind:
            raise UsageError(f"--out {path} is a {meta.get('kind')!r} run, not a {kind} run")
    _writable_parent(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write to {path}")
    return path


# --------------------------------------------------------------------------------------------
# metadata


def _cpu() -> dict:
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
                info["model"] = val.strip()
            elif key in ("flags", "Features") and not info["flags"]:
                info["flags"] = sorted(f for f in val.split() if f.startswith(("sse", "avx", "fma", "asimd", "sve", "neon")))
    except OSError:
        pass
    return info


def _git() -> dict:
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=PROJECT_ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=5)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "llvmlite", "scipy", "sympy", "pandas", "torch"):
        m = sys.modules.get(mod)
        if m is None and mod != "torch":
            try:
                m = __import__(mod)
            except ImportError:
                m = None
        out[mod] = getattr(m, "__version__", None) if m else None
    return out


def machine_metadata() -> dict:
    import numba

    from .threads import thread_info

    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "versions": _versions(),
        "svml": bool(getattr(numba.config, "USING_SVML", False)),
        "threads": thread_info(),
    }


def metadata(kind: str, argv: Iterable[str], **extra) -> dict:
    return {
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name if sys.argv else kind, *argv]),
        "argv": list(argv),
        "git": _git(),
        **machine_metadata(),
        **extra,
    }


def write_json(path: Path, data: dict) -> None:
    """Atomic write: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_metadata(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / METADATA).read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a run folder: no {METADATA}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{run_dir}/{METADATA} is malformed: {e}") from None


# --------------------------------------------------------------------------------------------
# results CSV


class ResultsWriter:
    """Append rows to ``results.csv`` one at a time, flushed to disk after each, so an
    interrupted run keeps every finished row. A torn last line (killed mid-write) is dropped
    when the file is reopened."""

    def __init__(self, run_dir: Path, columns: list[str]):
        self.path = Path(run_dir) / RESULTS
        self.columns = list(columns)
        existing = self.path.exists() and self.path.stat().st_size > 0
        if existing:
            self._repair()
        self._fh = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="raise")
        if not existing:
            self._w.writeheader()
            self._flush()

    def _repair(self) -> None:
        text = self.path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text)
        header = next(csv.reader(io.StringIO(text)), [])
        if header != self.columns:
            raise UsageError(f"{self.path} has different columns; it was written by another version")

    def _flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write(self, row: dict) -> None:
        self._w.writerow({k: _cell(row.get(k)) for k in self.columns})
        self._flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def read_rows(run_dir: Path):
    """The finished rows of a run as a pandas DataFrame (UsageError if missing or malformed)."""
    import pandas as pd

    path = Path(run_dir) / RESULTS
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a folder")
    if not path.exists():
        raise UsageError(f"{run_dir} is not a run folder: no {RESULTS}")
    try:
        return pd.read_csv(path)
    except Exception as e:  # pandas raises several parser error types
        raise UsageError(f"{path} is malformed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def load_run(run_dir) -> tuple:
    """(rows DataFrame, metadata dict) of a run folder; UsageError if it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UsageError(f"{run_dir} does not exist")
    meta = read_metadata(run_dir)
    return read_rows(run_dir), meta
