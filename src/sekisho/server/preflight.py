"""`sekisho config check FILE`: everything the server would load from a configuration, loaded
now, so a mistake is found before a restart rather than by the first user after it.

Each check loads the real thing (the policy parser, the registry, the apps, the embedder's
weights from disk, the model file's header) and says in one line what it found or what is wrong.
Nothing is created: a store or audit log that does not exist yet only needs a writable folder.
`reach=True` also calls every model backend (a remote server must answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sekisho.config import Settings, resolve_path


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def run_checks(settings: Settings, *, reach: bool = False) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("store 知識ベース", lambda: _store(settings)),
        ("embedder 埋め込み", lambda: _embedder(settings)),
        ("audit 監査ログ", lambda: _audit(settings)),
        ("policy ポリシー", lambda: _policy(settings)),
        ("copyright 著作物台帳", lambda: _copyright(settings)),
        ("proofread 校正辞書", lambda: _dictionary(settings)),
        ("apps 業務アプリ", lambda: _apps(settings)),
    ]
    checks += [(f"backend {name}", lambda name=name: _backend(settings, name, reach))
               for name in settings.models.backends]
    checks.append(("default model 既定モデル", lambda: _default_model(settings)))
    results = []
    for name, check in checks:
        try:
            results.append(CheckResult(name, True, check()))
        except Exception as exc:  # noqa: BLE001 - every failure is reported as its one line
            results.append(CheckResult(name, False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    return results


def _writable_folder(path: Path, what: str) -> str:
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: folder {folder} does not exist (the {what} would be created there)")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{path}: folder {folder} is not writable (the {what} would be created there)")
    return f"{path} (new; folder writable)"


def _store(settings: Settings) -> str:
    from sekisho.db import redacted
    from sekisho.store import open_store

    path = resolve_path(settings, settings.store.path)
    if not settings.store.url and not path.exists():
        return _writable_folder(path, "store")
    store = open_store(settings.store.url or path)
    try:
        return f"{redacted(settings.store.url) if settings.store.url else path}: {len(store.documents())} documents"
    finally:
        store.close()


def _embedder(settings: Settings) -> str:
    from sekisho.retrieval import load_embedder

    embedder = load_embedder(settings.retrieval.embedder)  # weights from the package, offline
    return f"{settings.retrieval.embedder}: {embedder.dim} dimensions, loaded offline"


def _audit(settings: Settings) -> str:
    from sekisho.audit.log import AuditLog

    path, key = resolve_path(settings, settings.audit.path), resolve_path(settings, settings.audit.key_path)
    if key.exists() and not os.access(key, os.R_OK):
        raise ValueError(f"{key}: signing key not readable")
    url = settings.audit.url if settings.audit.url is not None else settings.store.url
    if not url and not path.exists():
        return _writable_folder(path, "audit log")
    log = AuditLog(url or path, key_path=None)
    try:
        seq, _ = log.head()
    finally:
        log.close()
    return f"{log.where}: {seq} records; key {key}{'' if key.exists() else ' (new)'}"


def _policy(settings: Settings) -> str:
    from sekisho.guard.policy import load_policy

    path = resolve_path(settings, settings.guard.policy) if settings.guard.policy else None
    policy = load_policy(path)
    return f"{policy.source}: {len(policy.registry.recognizers)} recognisers"


def _copyright(settings: Settings) -> str:
    if not settings.guard.copyright_registry:
        return "not configured"
    from sekisho.guard.copyright import load_registry

    path = resolve_path(settings, settings.guard.copyright_registry)
    registry = load_registry(path)
    return f"{path}: {len(registry.works)} works"


def _dictionary(settings: Settings) -> str:
    from sekisho.proofread.dictionary import configured_dictionary

    dictionary = configured_dictionary(settings)
    if dictionary is None:
        return "not configured"
    return f"{dictionary.path}: {len(dictionary.replace)} replacements, {len(dictionary.keep)} words kept"


def _apps(settings: Settings) -> str:
    from sekisho.apps import Catalog

    catalog = Catalog.from_settings(settings)
    if catalog.folder is not None and not catalog.folder.is_dir():
        raise ValueError(f"{catalog.folder}: apps folder does not exist")
    apps = catalog.apps()
    if catalog.problems:
        raise ValueError(catalog.problems[0] + (f" (and {len(catalog.problems) - 1} more)" if len(catalog.problems) > 1 else ""))
    return f"{len(apps)} apps ({', '.join(sorted(apps))})"


def _backend(settings: Settings, name: str, reach: bool) -> str:
    from sekisho.models import open_backend

    config = settings.models.backends[name]
    backend = open_backend(settings, name)
    info = backend.info()
    if config.kind == "llama.cpp":
        model = Path(getattr(backend, "path", config.model))
        if not model.is_file():
            raise ValueError(f"{model}: model file not found")
        with model.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ValueError(f"{model}: not a GGUF model file")
        detail = f"llama.cpp {model} ({model.stat().st_size / 2**30:.2f} GiB)"
    else:
        detail = f"{config.kind} {info.model or ''}".strip()
    if reach:
        backend.check()
        detail += ", reachable"
    return f"{detail}; {'local' if info.local else 'external'}"


def _default_model(settings: Settings) -> str:
    if settings.models.default not in settings.models.backends:
        raise ValueError(f"models.default = {settings.models.default!r} is not a configured backend "
                         f"({', '.join(settings.models.backends)})")
    return settings.models.default
