"""The apps an organisation offers: the shipped ones (apps/shipped/) and its own, one TOML file
each in `apps.folder`, read again whenever a file there changes (an admin drops a file in the
folder, or uploads it in the UI, and it is there at the next request)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sekisho.apps.spec import AppError, AppNotFound, AppSpec, load_app, parse_app
from sekisho.config import Settings, resolve_path

SHIPPED = Path(__file__).with_name("shipped")


class Catalog:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._seen: tuple = ()
        self._apps: dict[str, AppSpec] = {}
        self.problems: list[str] = []  # files that could not be read, one line each

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls(resolve_path(settings, settings.apps.folder) if settings.apps.folder else None)

    def _files(self) -> list[tuple[Path, bool]]:
        files = [(p, True) for p in sorted(SHIPPED.glob("*.toml"))]
        if self.folder is not None and self.folder.is_dir():
            files += [(p, False) for p in sorted(self.folder.glob("*.toml"))]
        return files

    def apps(self) -> dict[str, AppSpec]:
        """Every app by id; an organisation's file replaces a shipped app of the same id."""
        files = self._files()
        seen = tuple((str(p), p.stat().st_mtime_ns) for p, _ in files)
        with self._lock:
            if seen != self._seen:
                apps, problems = {}, []
                for path, shipped in files:
                    try:
                        spec = load_app(path, shipped=shipped)
                    except AppError as exc:
                        problems.append(str(exc))
                        continue
                    apps[spec.id] = spec
                self._apps, self.problems, self._seen = apps, problems, seen
            return dict(self._apps)

    def get(self, app_id: str) -> AppSpec:
        app = self.apps().get(app_id)
        if app is None:
            raise AppNotFound(f"app {app_id!r}: no such app (GET /api/apps lists them)")
        return app

    def add(self, text: str) -> AppSpec:
        """Validate an app file's text and write it into the organisation's folder (atomically)."""
        import tomllib

        if self.folder is None:
            raise AppError("apps.folder is not configured: set [apps] folder = 'apps' in sekisho.toml")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AppError(f"app file: not valid TOML: {exc}") from None
        spec = parse_app(data, "app file")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{spec.id}.toml"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return self.get(spec.id)
