"""A task app is one small TOML file: the form it shows, the prompt it sends, where it may look in
the knowledge base, which models it may use, what it outputs, and under which purpose it is
governed (the policy holds some purposes for review).

    id = "translate"
    version = "1"
    title_ja = "翻訳"
    title_en = "Translate"
    needs_generation = true          # the extractive answerer cannot do this; say so, do not pretend
    output = "markdown"               # or "text"
    retrieval = "none"                # "all", or a list of access tags
    models = ["*"]                    # or the backends it may use
    purpose = "app"                   # "external": outputs for outside use wait for a reviewer
    system = "..."
    prompt = "...{text}..."           # {name} of each input; {document}: the text of a file input;
                                      # {passages}: what retrieval found, numbered [n];
                                      # kind = "proofread": {findings}, the rules' findings
    [[inputs]]
    name = "text"
    type = "textarea"                 # text | textarea | file | choice
    label_ja = "本文"
    label_en = "Text"
    required = true
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sekisho.config import read_toml
from sekisho.errors import InvalidInput, NotFound

InputType = Literal["text", "textarea", "file", "choice"]
_ID = re.compile(r"[a-z][a-z0-9-]{0,39}")
_KEYS = {"id", "version", "title_ja", "title_en", "description_ja", "description_en", "kind", "needs_generation",
         "output", "retrieval", "k", "models", "purpose", "system", "prompt", "max_tokens", "inputs"}
_INPUT_KEYS = {"name", "type", "label_ja", "label_en", "required", "choices", "default", "max_chars", "help_ja"}


class AppError(InvalidInput):
    """An app file cannot be used; one line naming the file and the key."""

    code = "invalid_app"


class AppNotFound(NotFound):
    """No app has this id."""


@dataclass(frozen=True)
class AppInput:
    name: str
    type: InputType
    label_ja: str
    label_en: str
    required: bool = False
    choices: tuple[str, ...] = ()
    default: str = ""
    max_chars: int = 100_000
    help_ja: str = ""


@dataclass(frozen=True)
class AppSpec:
    id: str
    version: str
    title_ja: str
    title_en: str
    prompt: str
    inputs: tuple[AppInput, ...]
    description_ja: str = ""
    description_en: str = ""
    kind: Literal["prompt", "summary", "proofread"] = "prompt"
    needs_generation: bool = True
    output: Literal["markdown", "text"] = "markdown"
    retrieval: str | tuple[str, ...] = "none"  # "none" | "all" | access tags
    k: int = 5
    models: tuple[str, ...] = ("*",)
    purpose: str = "app"
    system: str = ""
    max_tokens: int = 1024
    source: str = ""  # the file it came from
    shipped: bool = False

    def allows(self, backend: str) -> bool:
        return "*" in self.models or backend in self.models

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "title_ja": self.title_ja, "title_en": self.title_en,
                "description_ja": self.description_ja, "description_en": self.description_en, "kind": self.kind,
                "needs_generation": self.needs_generation, "output": self.output,
                "retrieval": self.retrieval if isinstance(self.retrieval, str) else list(self.retrieval),
                "models": list(self.models), "purpose": self.purpose, "shipped": self.shipped,
                "inputs": [vars(i) | {"choices": list(i.choices)} for i in self.inputs]}


def load_app(path: Path, *, shipped: bool = False) -> AppSpec:
    return parse_app(read_toml(path, "app file", AppError), str(path), shipped=shipped)


def parse_app(data: dict[str, Any], source: str, *, shipped: bool = False) -> AppSpec:
    """An AppSpec from a parsed TOML table; AppError naming `source` and the key otherwise."""

    def fail(key: str, reason: str) -> AppError:
        return AppError(f"{source}: {key}: {reason}")

    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
    for key in ("id", "version", "title_ja", "title_en", "prompt"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise fail(key, "required, a non-empty string")
    if not _ID.fullmatch(data["id"]):
        raise fail("id", "lower-case letters, digits and '-', starting with a letter, at most 40")
    inputs = tuple(_input(item, n, fail) for n, item in enumerate(data.get("inputs") or []))
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise fail("inputs", "input names must be unique")
    fields = {f for _, f, _, _ in string.Formatter().parse(data["prompt"]) if f}
    allowed = set(names) | {"document", "passages"} | ({"findings"} if data.get("kind") == "proofread" else set())
    if fields - allowed:
        raise fail("prompt", f"{{{sorted(fields - allowed)[0]}}} names no input (inputs: {', '.join(names) or 'none'})")
    retrieval = data.get("retrieval", "none")
    if isinstance(retrieval, list) and all(isinstance(t, str) and t for t in retrieval):
        retrieval = tuple(retrieval)
    elif retrieval not in ("none", "all"):
        raise fail("retrieval", 'choose "none", "all" or a list of access tags')
    if "{passages}" in data["prompt"] and retrieval == "none":
        raise fail("prompt", '{passages} needs retrieval = "all" or a list of tags')
    choices = {"kind": ("prompt", "summary", "proofread"), "output": ("markdown", "text")}
    for key, allowed_values in choices.items():
        if key in data and data[key] not in allowed_values:
            raise fail(key, f"choose one of {', '.join(allowed_values)}")
    models = data.get("models", ["*"])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise fail("models", 'a list of backend names, or ["*"]')
    try:
        return AppSpec(
            id=data["id"], version=data["version"], title_ja=data["title_ja"], title_en=data["title_en"],
            prompt=data["prompt"], inputs=inputs, description_ja=str(data.get("description_ja", "")),
            description_en=str(data.get("description_en", "")), kind=data.get("kind", "prompt"),
            needs_generation=bool(data.get("needs_generation", True)), output=data.get("output", "markdown"),
            retrieval=retrieval, k=int(data.get("k", 5)), models=tuple(models),
            purpose=str(data.get("purpose", "app")), system=str(data.get("system", "")),
            max_tokens=int(data.get("max_tokens", 1024)), source=source, shipped=shipped)
    except (TypeError, ValueError) as exc:
        raise AppError(f"{source}: {exc}") from None


def _input(item: Any, n: int, fail: Any) -> AppInput:
    where = f"inputs[{n}]"
    if not isinstance(item, dict):
        raise fail(where, "each input is a table")
    unknown = sorted(set(item) - _INPUT_KEYS)
    if unknown:
        raise fail(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_INPUT_KEYS))})")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or name in ("document", "passages"):
        raise fail(f"{where}.name", "lower-case letters, digits and '_' (not 'document' or 'passages')")
    kind = item.get("type", "text")
    if kind not in ("text", "textarea", "file", "choice"):
        raise fail(f"{where}.type", "choose text, textarea, file or choice")
    choices = tuple(item.get("choices") or ())
    if kind == "choice" and not choices:
        raise fail(f"{where}.choices", "a choice input needs its choices")
    return AppInput(name=name, type=kind, label_ja=str(item.get("label_ja", name)), label_en=str(item.get("label_en", name)),
                    required=bool(item.get("required", False)), choices=choices, default=str(item.get("default", "")),
                    max_chars=int(item.get("max_chars", 100_000)), help_ja=str(item.get("help_ja", "")))
