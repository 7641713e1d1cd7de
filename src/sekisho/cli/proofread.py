"""`sekisho proofread`: 公用文 checks with a diff for --fix (proofread/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sekisho.cli.base import app, console, err, fail, settings_of


@app.command("proofread")
def proofread_command(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="校正するファイル、または - で標準入力 (txt/md/html/pdf/docx; UTF-8/Shift_JIS/EUC-JP)")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON で出力: start/end は本文の文字位置 (character offsets)")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="修正を適用し差分を表示 (apply the suggestions; shows a diff)")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="修正後の文章の書き出し先 (write the corrected text here, UTF-8)")] = None,
    dictionary: Annotated[Optional[Path], typer.Option("--dictionary", "-d", help="組織の辞書 TOML (default: [proofread] dictionary)")] = None,
) -> None:
    """公用文の表記を校正する. Proofread a document against the official style (公用文作成の考え方).

    Each finding names its rule, the guideline and section it comes from, and the suggested form.
    --fix rewrites a .txt/.md file in its own encoding (or writes --output, or prints the corrected
    text when reading standard input), always showing the diff; nothing is sent to any model."""
    import bisect
    import difflib
    import json
    import sys

    from sekisho.proofread import (
        ProofreadError,
        apply_fixes,
        configured_dictionary,
        load_dictionary,
        proofread,
        read_document,
    )

    try:
        org = load_dictionary(dictionary) if dictionary else configured_dictionary(settings_of(ctx))
        document = read_document(sys.stdin.buffer.read(), name="stdin.txt") if file == "-" else read_document(file)
    except ProofreadError as exc:
        raise fail(str(exc)) from None
    if fix and file != "-" and output is None and not document.rewritable:
        raise fail(f"{file}: a {document.media_type} file cannot be rewritten in place; use --output FILE.txt")
    text = document.text
    findings = proofread(text, dictionary=org)
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def place(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(line_starts, offset)
        return line, offset - line_starts[line - 1] + 1

    name = "-" if file == "-" else file
    if as_json:
        rows = [{**f.to_json(), "line": place(f.start)[0], "column": place(f.start)[1]} for f in findings]
        extracted = {} if document.rewritable else {"text": text}  # what the offsets index in a PDF, DOCX or HTML
        print(json.dumps({"file": name, "media_type": document.media_type, "encoding": document.encoding,
                          "chars": len(text), **extracted, "findings": rows}, ensure_ascii=False, indent=2))
    else:
        report = err if fix and file == "-" and output is None else console  # keep stdout for the corrected text
        for f in findings:
            line, column = place(f.start)
            change = f"「{f.text}」→「{f.suggestion}」" if f.suggestion is not None else f"「{f.text[:20]}{'…' if len(f.text) > 20 else ''}」"
            report.print(f"{escape(name)}:{line}:{column}  [bold]{escape(f.family_label)}[/bold]  {escape(change)}  "
                         f"[dim]{escape(f.rule)} · {escape(str(f.source))}[/dim]", highlight=False, soft_wrap=True)
        fixable = sum(f.suggestion is not None for f in findings)
        report.print(f"指摘 {len(findings)} 件、うち修正案あり {fixable} 件 ({len(findings)} findings, {fixable} with a "
                     f"suggestion) · {len(text):,} 字", highlight=False)
    if not fix:
        return
    corrected = apply_fixes(text, findings)
    if corrected == text:
        err.print("修正する指摘はありません (nothing to fix)", highlight=False)
        return
    diff = difflib.unified_diff(text.splitlines(keepends=True), corrected.splitlines(keepends=True),
                                fromfile=name, tofile=f"{name} (修正後 / corrected)")
    # The diff goes where it cannot mix with the corrected text or the JSON on stdout.
    (sys.stderr if file == "-" and output is None or as_json else sys.stdout).writelines(
        line if line.endswith("\n") else line + "\n" for line in diff)
    try:
        if output is not None:
            output.write_text(corrected, encoding="utf-8")
            where = str(output)
        elif file == "-":
            sys.stdout.write(corrected)
            return
        else:
            Path(file).write_bytes(document.encode(corrected))
            where = f"{file} ({document.encoding})"
    except ProofreadError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{output or file}: cannot write: {exc.strerror or exc}") from None
    err.print(f"修正を書き込みました (wrote the corrected text): {escape(where)}", highlight=False, soft_wrap=True)
