"""The one small helper every notebook uses to find and load a run folder.

Which run: an explicit path, else the environment variable ``MATHBENCH_<NAME>_RUN``, else the
committed reference run named in ``results/reference.json``. NAME is the kind (mathbench, lstm,
verify, accuracy, lstm-accuracy) or another entry of reference.json of that kind (``lstm-batch1`` reads
``MATHBENCH_LSTM_BATCH1_RUN``).
Notebooks read these files and plot; they measure nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..core import runs
from ..core.errors import UsageError

KINDS = ("mathbench", "lstm", "verify", "accuracy", "lstm-accuracy")


def project_root() -> Path:
    """The checkout holding ``results/reference.json``: the package's own source tree (editable
    install), else the current folder or one of its parents (a notebook runs in notebooks/)."""
    for root in (runs.PROJECT_ROOT, *[Path.cwd(), *Path.cwd().parents]):
        if (root / "results" / "reference.json").exists():
            return root
    raise UsageError("no results/reference.json here or in a parent folder; run from the project checkout "
                     "or point MATHBENCH_<KIND>_RUN at a run")


def reference_runs() -> dict:
    path = project_root() / "results" / "reference.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def locate(kind: str, path: str | os.PathLike | None = None, name: str | None = None) -> Path:
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    name = name or kind
    chosen = path or os.environ.get(f"MATHBENCH_{name.upper().replace('-', '_')}_RUN")
    if not chosen:
        ref = reference_runs()
        if name not in ref:
            raise UsageError(f"no reference run {name!r} in results/reference.json")
        chosen = project_root() / ref[name]
    return Path(chosen)


def load(kind: str, path=None, name: str | None = None):
    """``(rows, metadata, folder)`` of a run; ``verify`` gives ``(report dict, None, file)``.
    A folder that is not a run of that kind is refused with a UsageError saying why."""
    where = locate(kind, path, name)
    if kind == "verify":
        try:
            return json.loads(Path(where).read_text()), None, Path(where)
        except FileNotFoundError:
            raise UsageError(f"{where} does not exist") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"{where} is not a verify JSON file: {e}") from None
    df, meta = runs.load_run(where)
    if meta.get("kind") != kind:
        raise UsageError(f"{where} is a {meta.get('kind')!r} run, not a {kind!r} run")
    return df, meta, where


def save_figure(fig, folder, name: str) -> Path:
    """Save a PNG under ``<folder>/figures/`` (or ``$MATHBENCH_FIGURES_DIR``, which the tox run
    sets so that checking the notebooks does not rewrite committed figures), with no timestamp in
    it, so re-running a notebook on the same data rewrites the same bytes."""
    out = Path(os.environ.get("MATHBENCH_FIGURES_DIR") or Path(folder) / "figures")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    return path
