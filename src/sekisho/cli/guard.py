"""`sekisho guard scan`: PII, markings and copyright in a text (guard/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sekisho.cli.base import app, err, fail, settings_of

guard_app = typer.Typer(help="個人情報・機密表示・著作権の検査. Scan text for PII, markings and copyright issues.",
                        no_args_is_help=True)
app.add_typer(guard_app, name="guard")


def _read_scan_input(file: str) -> str:
    """The text of FILE (any format ingest reads; Shift_JIS/EUC-JP detected) or of stdin ('-')."""
    import sys

    from sekisho.ingest import IngestError, decode_text, extract, media_type_for
    from sekisho.ingest.decode import UndecodableText

    name = "stdin.txt" if file == "-" else file
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        if media_type_for(name) in (None, "text/plain"):
            return decode_text(data)[0]  # .log, .csv and unknown suffixes are scanned as text
        return extract(data, name=name).text
    except UndecodableText as exc:
        raise IngestError(file, str(exc)) from None


@guard_app.command("scan")
def guard_scan(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="検査するファイル、'-' で標準入力 (file to scan, '-' for stdin)")] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="1 行 1 件の JSON (one JSON object per line)")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="送信先モデル (decides local/external policy)")] = None,
    role: Annotated[Optional[str], typer.Option("--role", help="利用者の役割 (admin, reviewer, user, auditor)")] = None,
    entity: Annotated[Optional[list[str]], typer.Option("--entity", "-e", help="検査する種別に限定 (e.g. MY_NUMBER; PERSON needs GiNZA)")] = None,
) -> None:
    """検出結果 (種別・位置・該当文字列・ポリシー上の処置) を表示. Print every finding and the action the policy would take."""
    import json

    from sekisho.config import resolve_path
    from sekisho.guard import check_output, check_prompt, load_registry, scan
    from sekisho.guard.policy import policy_from_settings
    from sekisho.identity import Role, cli_principal
    from sekisho.models import open_backend

    settings = settings_of(ctx)
    try:
        who = Role(role) if role else cli_principal().role
    except ValueError:
        raise fail(f"--role: unknown role {role!r}; choose from {', '.join(r.value for r in Role)}") from None
    backend_name = backend or settings.models.default
    local = open_backend(settings, backend_name).info().local
    policy = policy_from_settings(settings)
    text = _read_scan_input(file)
    findings = scan(text, entities=entity or None)
    if settings.guard.copyright_registry and not entity:
        # Both readings of the registry: a request to imitate, and text resembling a work.
        registry = load_registry(resolve_path(settings, settings.guard.copyright_registry))
        copyright_findings = check_prompt(text, registry) + check_output(text, registry, policy.copyright_threshold)
        findings = sorted(findings + copyright_findings, key=lambda f: (f.start, f.end))
    for f in findings:
        action = policy.action_for(f.entity, local=local, role=who).value
        if as_json:
            print(json.dumps({**f.to_dict(), "action": action}, ensure_ascii=False))
        else:
            shown = f.text.replace("\n", "\\n").replace("\t", "\\t")  # one finding, one line
            print(f"{f.start}-{f.end}\t{f.entity} ({f.label})\t{shown}\t{action}")
    if not as_json:
        where = "ローカル (local)" if local else "外部 (external)"
        err.print(f"{len(findings)} 件 (findings); backend {backend_name}: {where}; role {who.value}", highlight=False,
                  soft_wrap=True)
