"""Suites: TOML files listing tasks (data source, prompt template, scorer) and default models."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.errors import InvalidInput

SUITES_DIR = Path(__file__).parent / "suites"
DEFAULT_DATA_ROOT = Path("../shared/data")  # relative to the working directory (the repo root)

# kind -> (how an item is asked, default scorer)
KINDS = {
    "reading": "squad",  # the gold paragraph is given with the question
    "open_domain": "squad",  # retrieve from a knowledge base built in the run dir, then answer
    "choice": "accuracy",  # multiple choice: log-likelihood of the choices, or a parsed letter
    "leak": "leak",  # red-team prompts/documents with PII and confidential markings
    "refusal": "refusal",  # answer not in the documents: expect 資料に記載がありません
}
SCORERS = {"squad", "accuracy", "leak", "refusal", "keyfacts"}
FORMATS = {"jsquad", "jcommonsenseqa", "questions", "redteam", "refusal"}
PRIMARY = {"squad": "f1", "accuracy": "accuracy", "leak": "leak", "refusal": "refusal",
           "keyfacts": "keyfact_recall"}


class ArenaError(InvalidInput):
    """A suite, data file, model name or run directory is unusable; one line saying which."""


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    format: str
    scorer: str
    title_ja: str
    title_en: str
    data: str = ""  # path relative to the data root, or absolute; "" for generated data
    documents: str = ""  # questions format: a folder/file of documents for the knowledge base
    system: str = ""
    prompt: str = ""  # str.format template: {question} {context} {choices} {title}
    max_tokens: int = 64
    k: int = 3  # passages retrieved for open-domain tasks
    limit: int | None = None  # items per model unless --limit says otherwise
    headline: str = ""  # the metric that ranks models on this task; the scorer's default if empty
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return self.headline or PRIMARY[self.scorer]


@dataclass(frozen=True)
class Suite:
    name: str
    title_ja: str
    title_en: str
    description: str
    models: tuple[str, ...]
    tasks: tuple[Task, ...]
    seed: int
    source: str  # the TOML text, stored with the results so a report can be rebuilt
    path: str

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise ArenaError(f"suite {self.name}: no task {task_id!r}")


_TASK_KEYS = {"id", "kind", "format", "scorer", "title_ja", "title_en", "data", "documents", "system",
              "prompt", "max_tokens", "k", "limit", "headline"}


def _task(raw: dict[str, Any], where: str) -> Task:
    tid = raw.get("id")
    if not isinstance(tid, str) or not tid:
        raise ArenaError(f"{where}: every [[tasks]] needs an id")
    kind = raw.get("kind", "")
    if kind not in KINDS:
        raise ArenaError(f"{where}: task {tid}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    scorer = raw.get("scorer", KINDS[kind])
    if scorer not in SCORERS:
        raise ArenaError(f"{where}: task {tid}: unknown scorer {scorer!r} (one of {', '.join(sorted(SCORERS))})")
    fmt = raw.get("format", "")
    if fmt not in FORMATS:
        raise ArenaError(f"{where}: task {tid}: unknown format {fmt!r} (one of {', '.join(sorted(FORMATS))})")
    from sekisho.arena.scorers import METRICS

    if raw.get("headline", "") and raw["headline"] not in METRICS:
        raise ArenaError(f"{where}: task {tid}: unknown headline metric {raw['headline']!r}")
    known = {k: v for k, v in raw.items() if k in _TASK_KEYS}
    options = {k: v for k, v in raw.items() if k not in _TASK_KEYS}
    known.setdefault("title_ja", tid)
    known.setdefault("title_en", tid)
    try:
        return Task(**{**known, "kind": kind, "scorer": scorer, "format": fmt}, options=options)
    except TypeError as exc:
        raise ArenaError(f"{where}: task {tid}: {exc}") from None


def parse_suite(text: str, path: str) -> Suite:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ArenaError(f"{path}: not valid TOML: {exc}") from None
    tasks = tuple(_task(t, path) for t in raw.get("tasks", []))
    if not tasks:
        raise ArenaError(f"{path}: the suite has no [[tasks]]")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ArenaError(f"{path}: task ids must be unique")
    name = raw.get("name") or Path(path).stem
    return Suite(
        name=name,
        title_ja=raw.get("title_ja", name),
        title_en=raw.get("title_en", name),
        description=raw.get("description", ""),
        models=tuple(raw.get("models", ["extractive"])),
        tasks=tasks,
        seed=int(raw.get("seed", 0)),
        source=text,
        path=path,
    )


def shipped_suites() -> list[Path]:
    return sorted(SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (e.g. "ja-standard") or any suite TOML file by path."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = SUITES_DIR / f"{name_or_path}.toml"
        if not shipped.exists():
            names = ", ".join(p.stem for p in shipped_suites())
            raise ArenaError(f"suite {name_or_path!r} not found (shipped suites: {names}; or give a .toml path)")
        path = shipped
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArenaError(f"{path}: cannot read suite: {exc}") from None
    return parse_suite(text, str(path))


def suite_hash(suite: Suite, data_digests: dict[str, str]) -> str:
    """Identifies what was asked: the suite text plus the content of every data file it read.
    Results are keyed by it, so editing a prompt or the data starts fresh instead of mixing."""
    h = hashlib.sha256(suite.source.encode("utf-8"))
    for task_id in sorted(data_digests):
        h.update(f"\0{task_id}\0{data_digests[task_id]}".encode())
    return h.hexdigest()[:16]
