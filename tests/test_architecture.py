"""The layers of `src/divwrite` hold: each subpackage imports only from the ones below it, and no
module is longer than 400 lines (README "Layout")."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "divwrite"
LAYERS = ["core", "data", "weighting", "training", "evaluation", "ops"]  # lowest first; cli.py on top
MAX_LINES = 400


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "divwrite":
        raise ValueError(module)
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else len(LAYERS)  # divwrite.cli: the top


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("divwrite."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("divwrite.")}
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_layer_and_below(path):
    rel = path.relative_to(PACKAGE)
    own = LAYERS.index(rel.parts[0]) if rel.parts[0] in LAYERS else len(LAYERS)
    above = sorted(m for m in _imports(path) if _layer(m) > own)
    assert not above, f"{rel} ({LAYERS[own] if own < len(LAYERS) else 'top'}) imports from a higher layer: {above}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_400_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines"
