"""Loading a task's items: JSQuAD, JCommonsenseQA, the organisation's own CSV/JSONL question
set, and the generated red-team and refusal sets."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from sekisho.arena.builtin import REFUSAL_CORPUS, REFUSAL_QUESTIONS, CorpusDoc, redteam_cases
from sekisho.arena.scorers import split_facts
from sekisho.arena.suite import DEFAULT_DATA_ROOT, ArenaError, Task


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    context: str = ""  # the gold paragraph (reading comprehension)
    context_id: str = ""  # corpus path of the gold paragraph (retrieval recall)
    title: str = ""
    choices: tuple[str, ...] = ()
    label: int | None = None
    key_facts: tuple[str, ...] = ()
    documents: tuple[CorpusDoc, ...] = ()  # red team: passages handed over with the prompt
    protected: tuple[str, ...] = ()  # red team: personal data
    confidential: tuple[str, ...] = ()  # red team: confidential terms (must not leave the premises)


@dataclass(frozen=True)
class TaskData:
    items: list[Item]
    corpus: list[CorpusDoc]  # documents for the task's knowledge base (open-domain, refusal)
    digest: str  # content hash of what was read, part of the suite hash
    skipped: list[str]  # one line per bad input row that was left out


def resolve_data(relative: str, data: Path | None) -> Path:
    """A suite path: absolute as written, else under the data root (--data DIR, by default
    ../shared/data from the working directory)."""
    p = Path(relative)
    return p if p.is_absolute() else (data if data is not None and not data.is_file() else DEFAULT_DATA_ROOT) / p


def data_path(task: Task, data: Path | None) -> Path:
    """Where a task's file is: --data FILE itself, else the task's path under the data root."""
    if data is not None and data.is_file():
        return data
    return resolve_data(task.data, data)


def _read_bytes(path: Path, task: Task) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArenaError(f"task {task.id}: data file {path} not found (give --data PATH)") from None
    except OSError as exc:
        raise ArenaError(f"task {task.id}: cannot read {path}: {exc.strerror}") from None


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 first (with or without BOM); Shift_JIS/EUC-JP files from office software otherwise."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        best = from_bytes(raw).best()
        if best is None:
            raise ArenaError(f"{path}: cannot tell the text encoding") from None
        return str(best)


def _jsquad(raw: bytes, path: Path, task: Task) -> tuple[list[Item], list[CorpusDoc]]:
    try:
        articles = json.loads(raw)["data"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ArenaError(f"task {task.id}: {path} is not a SQuAD-format JSON file") from None
    items, corpus = [], []
    for article in articles:
        for n, para in enumerate(article["paragraphs"]):
            title, sep, body = para["context"].partition(" [SEP] ")
            if not sep:
                title, body = article.get("title", ""), para["context"]
            pid = para["qas"][0]["id"].rsplit("q", 1)[0] if para["qas"] else f"{title}-{n}"
            doc = CorpusDoc(path=f"jsquad/{pid}", title=title, text=body)
            corpus.append(doc)
            for qa in para["qas"]:
                if qa.get("is_impossible"):
                    continue
                items.append(Item(id=qa["id"], question=qa["question"], title=title, context=body,
                                  context_id=doc.path, answers=tuple(a["text"] for a in qa["answers"])))
    return items, corpus


def _jcommonsenseqa(raw: bytes, path: Path, task: Task) -> tuple[list[Item], list[str]]:
    items, skipped = [], []
    for n, line in enumerate(_decode(raw, path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            choices = tuple(row[f"choice{i}"] for i in range(5))
            items.append(Item(id=str(row["q_id"]), question=row["question"], choices=choices, label=int(row["label"])))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            skipped.append(f"{path}:{n}: not a JCommonsenseQA row ({exc.__class__.__name__})")
    return items, skipped


def _as_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(split_facts(str(value)))


def _questions(raw: bytes, path: Path, task: Task) -> tuple[list[Item], list[str]]:
    """The organisation's set: CSV with a header (question, answer and/or key_facts, optional id;
    Japanese headers 質問/回答/要点 work too) or JSONL with the same keys."""
    text = _decode(raw, path)
    aliases = {"質問": "question", "回答": "answer", "正解": "answer", "要点": "key_facts", "キーファクト": "key_facts"}
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError:
                    rows.append((n, None))
    else:
        reader = csv.DictReader(io.StringIO(text))
        rows = [(n, row) for n, row in enumerate(reader, 2)]
    items, skipped = [], []
    for n, row in rows:
        if not isinstance(row, dict):
            skipped.append(f"{path}:{n}: not a JSON object")
            continue
        row = {aliases.get(str(k).strip(), str(k).strip().lower()): v for k, v in row.items() if k is not None}
        question = str(row.get("question") or "").strip()
        answers = _as_list(row.get("answer"))
        facts = _as_list(row.get("key_facts")) or answers
        if not question or not facts:
            skipped.append(f"{path}:{n}: needs a question and an answer or key facts")
            continue
        items.append(Item(id=str(row.get("id") or f"q{n}"), question=question, answers=answers, key_facts=facts))
    if not items and skipped:
        raise ArenaError(f"task {task.id}: {path}: no usable questions ({skipped[0]})")
    return items, skipped


def load_task(task: Task, data: Path | None, *, seed: int = 0) -> TaskData:
    """All of a task's items, in a seeded shuffled order so that --limit takes a spread sample
    (JSQuAD's first hundred questions are all about one article)."""
    corpus: list[CorpusDoc] = []
    skipped: list[str] = []
    if task.format == "redteam":
        n = int(task.options.get("items", 24))
        items = [Item(id=c.id, question=c.prompt, documents=c.documents,
                      protected=c.protected, confidential=c.confidential)
                 for c in redteam_cases(n, seed=seed)]
        digest = hashlib.sha256(repr(items).encode()).hexdigest()
        return TaskData(items, corpus, digest, skipped)
    if task.format == "refusal":
        items = [Item(id=qid, question=q) for qid, q in REFUSAL_QUESTIONS]
        corpus = list(REFUSAL_CORPUS)
        digest = hashlib.sha256(repr((items, corpus)).encode()).hexdigest()
        return TaskData(items, corpus, digest, skipped)
    path = data_path(task, data)
    raw = _read_bytes(path, task)
    if task.format == "jsquad":
        items, corpus = _jsquad(raw, path, task)
    elif task.format == "jcommonsenseqa":
        items, skipped = _jcommonsenseqa(raw, path, task)
    else:
        items, skipped = _questions(raw, path, task)
    random.Random(seed).shuffle(items)
    digest = hashlib.sha256(raw)
    if task.documents:  # the knowledge base follows the documents: rebuild when they change
        root = resolve_data(task.documents, data)
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                st = f.stat()
                digest.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return TaskData(items, corpus, digest.hexdigest(), skipped)
