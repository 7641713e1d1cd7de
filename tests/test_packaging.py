"""What an installed sekisho (a wheel, not this checkout) carries: every data file the package
reads at run time must be named in pyproject's package-data, or a deployment silently lacks it
(the shipped task apps once were missing from the wheel)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "sekisho"


def test_every_data_file_is_in_the_wheel():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["sekisho"]
    data = [PurePosixPath(p.relative_to(PACKAGE).as_posix()) for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "the package has data files"
    missing = [str(p) for p in data if not any(_included(p, pattern) for pattern in patterns)]
    assert missing == []


def _included(path: PurePosixPath, pattern: str) -> bool:
    """setuptools' reading of a package-data glob: `dir/*.toml` is the files directly in dir."""
    folder, _, name = pattern.rpartition("/")
    if "**" in folder:
        return str(path).startswith(folder.split("**")[0])
    return str(path.parent) == (folder or ".") and fnmatch.fnmatch(path.name, name)
