"""Models and answers: models, ask (models/, answer/, request/)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, console, err, fail, settings_of
from sekisho.cli.knowledge import empty_store_message


@app.command("models")
def models_command(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check/--no-check", help="接続・読み込みを確認する (probe each backend)")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (for scripts)")] = False,
) -> None:
    """設定済みのモデル一覧と状態. List configured model backends and whether they can serve."""
    import json

    from rich.table import Table

    from sekisho.models import BackendError, backend_names, open_backend

    settings = settings_of(ctx)
    rows = []
    for name in backend_names(settings):
        config = settings.models.backends[name]
        row = {"name": name, "kind": config.kind, "model": config.model, "local": config.local is True,
               "version": "", "default": name == settings.models.default, "ok": None, "status": "not checked"}
        try:
            backend = open_backend(settings, name)
            info = backend.info()
            row.update(model=info.model, local=info.local, version=info.version)
            if check:
                backend.check()
                row.update(ok=True, status="reachable")
        except BackendError as exc:
            row.update(ok=False, status=str(exc))
        rows.append(row)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        table = Table(title="モデル (models)")
        for column in ("名前 name", "種類 kind", "モデル model", "所在 locality", "状態 status"):
            table.add_column(column, overflow="fold")
        for row in rows:
            status = {True: "[green]利用可 reachable[/green]", None: "[dim]未確認 not checked[/dim]"}.get(
                row["ok"], f"[red]{escape(row['status'])}[/red]")
            version = f" [dim]{row['version']}[/dim]" if row["version"] else ""
            table.add_row(escape(row["name"]) + (" *" if row["default"] else ""), row["kind"],
                          escape(row["model"] or "-") + version,
                          "構内 local" if row["local"] else "外部 external", status)
        console.print(table)
    if any(row["ok"] is False for row in rows):
        raise typer.Exit(1)

@app.command("ask")
def ask_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="質問 (question)")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="使うモデル名 (backend name)")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="参照する資料の数 (passages to retrieve)")] = 5,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="この閲覧タグの文書だけ (access tags)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力 (one object)")] = False,
) -> None:
    """知識ベースに質問し、出典付きで回答. Ask the knowledge base; answer with sources and support check.

    The question goes through the same governed request path as the HTTP API: guards on the
    question and the retrieved passages, masking or routing per policy, output checks, review
    holds, audit."""
    import dataclasses
    import json
    import sys

    from sekisho.identity import cli_principal
    from sekisho.request import RequestPath
    from sekisho.retrieval import open_knowledge_base

    if not question.strip():
        raise fail("質問が空です (the question is empty)")
    settings = settings_of(ctx)
    principal = cli_principal()
    if tag:
        principal = dataclasses.replace(principal, tags=tuple(tag))
    path = RequestPath(settings)
    kb = open_knowledge_base(settings)
    try:
        governed = path.ask_stream(question, principal=principal, backend=model or settings.models.default,
                                   kb=kb, k=k)
        for piece in governed:
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
        result = governed.result
        # Only an answer with no hits needs to know why; listing documents on every ask is waste.
        empty = result.answer is not None and not result.answer.hits and not kb.store.documents()
    finally:
        kb.close()
        path.close()
    if result.status != "ok":
        if as_json:
            print(json.dumps({"question": question, "status": result.status, "message": result.message,
                              "review_id": result.review_id, "audit_seq": result.audit_seq,
                              "findings": [f.to_json() for f in result.findings]}, ensure_ascii=False, indent=2))
        else:
            print()
            err.print(f"[yellow]{escape(result.message)}[/yellow]", highlight=False, soft_wrap=True)
        raise typer.Exit(0 if result.status == "held" else 1)
    answer = result.answer
    report = answer.faithfulness
    if as_json:
        print(json.dumps({**_answer_json(answer), "backend": result.backend, "audit_seq": result.audit_seq,
                          "guard": [f.to_json() for f in result.findings]}, ensure_ascii=False, indent=2))
        return
    print()
    console.print(f"[dim]監査記録 (audit record) #{result.audit_seq} · {escape(result.backend)}[/dim]", highlight=False)
    if empty:
        err.print(empty_store_message(settings), highlight=False, soft_wrap=True)
    if answer.citations:
        console.print("\n[bold]出典 (sources)[/bold]")
        for c in answer.citations:
            console.print(f"  [{c.n}] {escape(c.path)}  『{escape(c.title)}』  {escape(c.location)}", highlight=False)
    for n in answer.invalid_citations:
        console.print(f"  [red][{n}] 存在しない資料番号 (cites no retrieved passage)[/red]", highlight=False)
    if answer.not_found:
        return
    unsupported = report.unsupported
    if not unsupported and not report.bad_citations:
        console.print(f"[green]根拠確認: すべての文が資料に支持されています (supported; score {report.score:.2f})[/green]")
    for s in unsupported:
        why = f" — 資料にない: {', '.join(s.missing)}" if s.missing else ""
        console.print(f"[yellow]根拠不十分 (unsupported):[/yellow] {escape(s.text)}{escape(why)}", highlight=False)
    for text, n in report.bad_citations:
        console.print(f"[yellow]出典 [{n}] はこの文を支持しません (citation does not support):[/yellow] {escape(text)}",
                      highlight=False)


def _answer_json(answer) -> dict:
    report = answer.faithfulness
    return {
        "question": answer.question,
        "answer": answer.text,
        "not_found": answer.not_found,
        "model": answer.completion.model,
        "latency_s": round(answer.completion.latency_s, 3),
        "citations": [vars(c) for c in answer.citations],
        "invalid_citations": list(answer.invalid_citations),
        "passages": [{"n": i, "path": h.document.path, "title": h.document.title, "chunk_id": h.chunk.id,
                      "location": h.chunk.location.label(), "score": h.score} for i, h in enumerate(answer.hits, 1)],
        "faithfulness": {
            "score": report.score,
            "faithful": report.faithful,
            "sentences": [{"text": s.text, "cited": list(s.cited), "support": s.support, "supported": s.supported,
                           "missing": list(s.missing), "bad_citations": list(s.bad_citations)}
                          for s in report.sentences],
        },
    }
