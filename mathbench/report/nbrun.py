"""Execute notebooks headless (``python -m mathbench.report.nbrun [NOTEBOOK ...]``); exit 1 if any cell
fails. The tox environment ``notebooks`` runs this against the committed reference runs."""
from __future__ import annotations

import json
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


def _main(argv: list[str]) -> int:
    from ..core.errors import ArgumentParser, UsageError

    p = ArgumentParser(prog="python -m mathbench.report.nbrun", description="Execute notebooks headless against the "
                       "runs named in results/reference.json (or MATHBENCH_<NAME>_RUN); exit 1 if any cell fails.")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="notebook files (default: every notebook in "
                   "notebooks/)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = p.parse_args(argv)
    paths = [Path(a) for a in args.notebooks] or sorted((project_root() / "notebooks").glob("*.ipynb"))
    if not paths:
        raise UsageError("no notebooks found")
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise UsageError(f"{path}: not a notebook file (.ipynb)")
    if args.timeout < 1:
        raise UsageError(f"--timeout {args.timeout}: must be positive")
    for path in paths:  # every file checked before anything runs, with the standard library only
        try:
            ok = isinstance(json.loads(path.read_text(encoding="utf-8")).get("cells"), list)
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise UsageError(f"{path}: not a readable notebook (not notebook JSON with a list of cells)")
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
        import traitlets  # noqa: F401
    except ImportError as e:
        raise UsageError(f"running notebooks needs Jupyter ({e.name} is missing): pip install -e '.[notebooks]'") \
            from None
    return run(paths, args.timeout)


def main(argv=None) -> int:
    from ..core.errors import run_cli

    return run_cli(_main, argv, prog="mathbench.report.nbrun")


if __name__ == "__main__":
    sys.exit(main())
