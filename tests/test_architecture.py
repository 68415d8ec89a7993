"""The package structure the README's "Architecture" section describes, checked from the source:
the public API is the only way from lstm_numba into mathbench, and mathbench's layers only
import downwards (core <- functions <- accuracy <- report <- the commands)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mathbench

ROOT = Path(__file__).resolve().parents[1]

# subpackage -> the subpackages it may import (besides itself); "" is the top (bench, cli, worker)
LAYERS = {
    "core": set(),
    "functions": {"core"},
    "accuracy": {"core", "functions"},
    "report": {"core", "functions"},
    "": {"core", "functions", "accuracy", "report"},
}


def _imports(path: Path):
    """(module imported, names) for every import statement, relative ones made absolute."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            yield mod, [a.name for a in node.names]


def test_public_api_resolves():
    for name in mathbench.__all__:
        assert getattr(mathbench, name) is not None, name
    with pytest.raises(AttributeError):
        mathbench.no_such_name  # noqa: B018


def test_lstm_numba_uses_only_the_public_api():
    seen = set()
    for path in sorted((ROOT / "lstm_numba").rglob("*.py")):
        for mod, names in _imports(path):
            if mod == "mathbench" or mod.startswith("mathbench."):
                assert mod == "mathbench", f"{path.name} imports {mod}: use `from mathbench import ...`"
                assert set(names) <= set(mathbench.__all__), f"{path.name}: {set(names) - set(mathbench.__all__)}"
                seen |= set(names)
    assert {"registry", "runs", "UsageError"} <= seen  # the check read real imports


@pytest.mark.parametrize("sub", sorted(LAYERS))
def test_mathbench_layers_import_downwards(sub):
    folder = ROOT / "mathbench" / sub
    files = sorted(folder.glob("*.py")) if sub else sorted((ROOT / "mathbench").glob("*.py"))
    assert files
    for path in files:
        for mod, _ in _imports(path):
            assert mod.split(".")[0] != "lstm_numba", f"mathbench/{sub}/{path.name} imports {mod}"
            if not mod.startswith("mathbench.") or mod == "mathbench":
                continue
            target = mod.split(".")[1]
            target = target if target in LAYERS else ""
            assert target == sub or target in LAYERS[sub], f"mathbench/{sub}/{path.name} imports {mod}"
