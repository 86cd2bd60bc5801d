"""Dependencies point one way: sdk → protocol; engine → protocol, store; protocol and
store/base import nothing of ours (but records)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "stepwell"

RULES = {
    "protocol": {"stepwell.protocol", "stepwell.errors"},
    "sdk": {"stepwell.sdk", "stepwell.protocol", "stepwell.errors"},
    "engine": {
        "stepwell.engine",
        "stepwell.protocol",
        "stepwell.store",
        "stepwell.errors",
        "stepwell.clock",
        "stepwell.ids",
    },
    "store": {"stepwell.store", "stepwell.errors"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "stepwell" or m.startswith("stepwell.")}


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    allowed = RULES[layer]
    for path in sorted((SRC / layer).rglob("*.py")):
        for module in _imports(path):
            assert any(module == a or module.startswith(a + ".") for a in allowed), (
                f"{path.relative_to(SRC)} imports {module}"
            )


def test_store_base_imports_only_records() -> None:
    assert _imports(SRC / "store" / "base.py") <= {"stepwell.store.records"}
