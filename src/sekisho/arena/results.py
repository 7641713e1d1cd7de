"""Per-item results in the run directory: SQLite, one committed row per finished item.

synchronous=FULL makes every commit durable before the next item starts, so a crash or Ctrl-C
loses at most the item in flight; re-running looks rows up by (suite hash, task, model, item) and
skips them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sekisho.arena.suite import ArenaError

RESULTS_FILE = "results.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    suite_hash TEXT NOT NULL, model TEXT NOT NULL, info TEXT NOT NULL, energy_source TEXT NOT NULL,
    PRIMARY KEY (suite_hash, model));
CREATE TABLE IF NOT EXISTS items (
    suite_hash TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL,
    result TEXT NOT NULL, finished_at REAL NOT NULL,
    PRIMARY KEY (suite_hash, task, model, item_id));
CREATE TABLE IF NOT EXISTS errors (
    suite_hash TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL,
    message TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (suite_hash, task, model, item_id));
"""


@dataclass(frozen=True)
class ItemResult:
    task: str
    model: str
    item_id: str
    metrics: dict[str, float]
    prompt: str
    answer: str
    expected: str = ""
    sources: list[str] = field(default_factory=list)  # cited/retrieved passages, "title: text"
    status: str = "ok"  # the request path's verdict: ok | blocked | held
    method: str = ""  # choice tasks: "logprob" or "generate"
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_j: float = 0.0
    findings: int = 0  # guard findings on the way in and out


class ResultStore:
    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / RESULTS_FILE
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ArenaError(f"{self.path}: not an arena results database ({exc})") from None

    @classmethod
    def open_existing(cls, run_dir: Path) -> ResultStore:
        if not (run_dir / RESULTS_FILE).exists():
            raise ArenaError(f"{run_dir}: no arena results here ({RESULTS_FILE} missing)")
        return cls(run_dir)

    def close(self) -> None:
        self.db.close()

    # -- metadata: the suite text, data root and environment, for rebuilding the report --------
    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, ensure_ascii=False)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_model(self, suite_hash: str, model: str, info: dict[str, Any], energy_source: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
                            (suite_hash, model, json.dumps(info, ensure_ascii=False), json.dumps(energy_source)))

    def models(self, suite_hash: str) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        rows = self.db.execute("SELECT model, info, energy_source FROM models WHERE suite_hash = ?", (suite_hash,))
        return {m: (json.loads(i), json.loads(e)) for m, i, e in rows}

    # -- items ----------------------------------------------------------------------------------
    def done_ids(self, suite_hash: str, task: str, model: str) -> set[str]:
        rows = self.db.execute("SELECT item_id FROM items WHERE suite_hash = ? AND task = ? AND model = ?",
                               (suite_hash, task, model))
        return {r[0] for r in rows}

    def add(self, suite_hash: str, result: ItemResult) -> None:
        with self.db:
            self.db.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
                            (suite_hash, result.task, result.model, result.item_id,
                             json.dumps(asdict(result), ensure_ascii=False), time.time()))
            self.db.execute("DELETE FROM errors WHERE suite_hash = ? AND task = ? AND model = ? AND item_id = ?",
                            (suite_hash, result.task, result.model, result.item_id))

    def add_error(self, suite_hash: str, task: str, model: str, item_id: str, message: str) -> None:
        """A failed item is recorded but not finished, so the next run tries it again."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO errors VALUES (?, ?, ?, ?, ?, ?)",
                            (suite_hash, task, model, item_id, message, time.time()))

    def results(self, suite_hash: str) -> list[ItemResult]:
        rows = self.db.execute("SELECT result FROM items WHERE suite_hash = ? ORDER BY finished_at, rowid", (suite_hash,))
        return [ItemResult(**json.loads(r[0])) for r in rows]

    def errors(self, suite_hash: str) -> list[tuple[str, str, str, str]]:
        return list(self.db.execute("SELECT task, model, item_id, message FROM errors WHERE suite_hash = ?",
                                    (suite_hash,)))
