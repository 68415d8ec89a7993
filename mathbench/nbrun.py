"""Execute notebooks headless (``python -m mathbench.nbrun [NOTEBOOK ...]``); exit 1 if any cell
fails. The tox environment ``notebooks`` runs this against the committed reference runs."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .nbtools import project_root


def run(paths: list[Path], timeout: int = 600) -> int:
    import nbclient
    import nbformat

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        try:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
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
