"""The guard as it was at another commit, importable beside the current one in the same process,
so a benchmark can time or score both under the same load (ratios, not absolute seconds).

    old = load_guard("305bc43")          # module sekisho_guard_<commit>, same public face
    old.scan("電話 03-1234-5678")

`git archive` extracts src/sekisho/guard at that commit into a temporary folder as a package of
another name, its own `sekisho.guard` imports rewritten to that name; everything else it imports
(sekisho.text, sekisho.identity, sekisho.errors) is today's, which is what both versions share.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
# The commit this branch started from: the guard before the registry and the canonical view.
BEFORE = "305bc4390b7fa84eaaa37be6f3933710bd51d85f"


def load_guard(commit: str = BEFORE) -> ModuleType:
    """`sekisho.guard` as of `commit`, imported as sekisho_guard_<short commit>."""
    name = f"sekisho_guard_{commit[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src/sekisho/guard"],
                             check=True, capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="sekisho-guard-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "src" / "sekisho" / "guard"
    for path in package.rglob("*.py"):
        path.write_text(path.read_text(encoding="utf-8").replace("sekisho.guard", name), encoding="utf-8")
    package.rename(folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def load_module(commit: str, module: str) -> ModuleType:
    """One submodule (e.g. "masking") of the guard as of `commit`."""
    load_guard(commit)
    return importlib.import_module(f"sekisho_guard_{commit[:10]}.{module}")
