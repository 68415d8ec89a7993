"""Execute notebooks headless (``python -m mathbench.nbrun [NOTEBOOK ...]``); exit 1 if any cell
fails. The tox environment ``notebooks`` runs this against the committed reference runs."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .nbtools import project_root


def run(paths: list[Path], timeout: int = 600) -> int:
    from traitlets.config import Config

    # The kernel is local: IPC sockets instead of TCP, which ipykernel >= 7 warns about once per
    # notebook ("running over TCP without encryption"). Their files get an absolute path: the
    # default is relative, and the kernel runs in the notebook's folder, not ours.
    with tempfile.TemporaryDirectory(prefix="mathbench-nbrun-") as sockets:
        config = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        return _run(paths, timeout, config)


def _run(paths: list[Path], timeout: int, config) -> int:
    import nbclient
    import nbformat

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        try:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config,
                                    resources={"metadata": {"path": str(path.parent)}}).execute()
        except nbclient.exceptions.CellExecutionError as e:
            failed += 1
            print(f"FAILED {path.name}: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
            continue
        print(f"ok     {path.name} ({time.perf_counter() - t0:.1f} s)")
    print(f"{len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in argv] or sorted((project_root() / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    return run(paths)


if __name__ == "__main__":
    sys.exit(main())
