"""Folder imports point one way, down the data flow (docs/architecture.md): a package imports only
packages on floors below its own. The ground floor (text, identity, errors, config, db) imports
nothing of sekisho's above it. Every import counts, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sekisho"

# Bottom to top: document -> chunks -> index -> hits -> prompt -> model -> answer -> checks ->
# audit, then the request path that runs them, then the doors. Packages on one floor do not
# import each other.
FLOORS: list[set[str]] = [
    {"errors"},
    {"text", "identity", "config", "db"},
    {"store"},
    {"ingest"},
    {"retrieval"},
    {"models"},
    {"answer"},
    {"guard", "proofread"},
    {"audit"},
    {"request"},
    {"conversations", "apps"},
    {"arena", "server", "check"},
    {"cli"},
    {"__main__"},
]
FLOOR = {package: n for n, floor in enumerate(FLOORS) for package in floor}
# The ground floor's own order: config and db raise errors; nothing else.
GROUND = {"errors": set(), "text": set(), "identity": set(), "config": {"errors"}, "db": {"errors"}}


def package_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[0]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names if node.module == "sekisho"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sekisho" and len(parts) > 1:
                found.add(parts[1])
    return found


def modules() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC]


def test_every_package_has_a_floor():
    packages = {package_of(p) for p in modules()}
    assert packages <= set(FLOOR), f"packages without a floor: {sorted(packages - set(FLOOR))}"


def test_imports_point_down_the_data_flow():
    wrong = []
    for path in modules():
        here = package_of(path)
        for there in imported_packages(path) - {here, "__version__"}:
            if there not in FLOOR:
                continue
            allowed = GROUND[here] if here in GROUND else FLOOR[there] < FLOOR[here]
            if (there not in allowed) if isinstance(allowed, set) else not allowed:
                wrong.append(f"{path.relative_to(SRC)}: {here} imports {there}")
    assert not wrong, "\n".join(wrong)
