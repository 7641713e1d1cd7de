"""公用文校正 benchmark: sekisho's proofreader and textlint on the same labelled sentences, in the
same run; plus sekisho's throughput against Sudachi tokenisation alone, in the same process.

    (cd bench/proofread && npm ci)          # textlint + the Japanese rules, pinned in package-lock.json
    PYTHONPATH=src python bench/proofread.py

Sets (bench/proofread/): heldout.txt (written before any result on it was seen; reported first)
and dev.txt (the rules were tuned on it). One text per line; {{written|suggestion|family}} marks
a violation, "-" a violation whose fix needs rewording. A finding counts as correct when it
overlaps a marked span (one finding per mark); precision is over all findings, recall over all
marks. Per family: recall over that family's marks, precision over the tool's findings of that
family (textlint's rules are reported by rule, having no families of ours).

Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent / "proofread"
TEXTLINT = HERE / "node_modules" / ".bin" / "textlint"
TEXTLINT_RULES = {"ja-hiragana-keishikimeishi": True, "ja-hiragana-hojodoushi": True, "ja-hiragana-fukushi": True,
                  "preset-jtf-style": True}
MARK = re.compile(r"\{\{([^|{}]+)\|([^|{}]*)\|([a-z-]+)\}\}")


@dataclass
class Gold:
    start: int
    end: int
    family: str
    suggestion: str | None


@dataclass
class Item:
    text: str
    gold: list[Gold]


@dataclass
class Prediction:
    start: int
    end: int
    label: str  # sekisho: its family; textlint: its rule id


@dataclass
class Score:
    predictions: Counter = field(default_factory=Counter)  # label -> findings
    correct: Counter = field(default_factory=Counter)  # label -> findings on a mark
    marks: Counter = field(default_factory=Counter)  # family -> marks
    found: Counter = field(default_factory=Counter)  # family -> marks found

    def overall(self) -> dict:
        p, c = sum(self.predictions.values()), sum(self.correct.values())
        m, f = sum(self.marks.values()), sum(self.found.values())
        return {"precision": round(c / p, 4) if p else None, "recall": round(f / m, 4) if m else None,
                "findings": p, "correct": c, "marks": m, "found": f}


def parse(path: Path) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, gold, at = [], [], 0
        for m in MARK.finditer(line):
            text.append(line[at:m.start()])
            start = sum(len(t) for t in text)
            text.append(m.group(1))
            gold.append(Gold(start, start + len(m.group(1)), m.group(3), None if m.group(2) == "-" else m.group(2)))
            at = m.end()
        text.append(line[at:])
        if "{{" in line[at:] or "}}" in line[at:]:
            raise SystemExit(f"{path.name}: malformed mark in: {line}")
        items.append(Item("".join(text), gold))
    return items


def score(items: list[Item], predictions: list[list[Prediction]]) -> Score:
    s = Score()
    for item, preds in zip(items, predictions):
        matched: set[int] = set()
        for g in item.gold:
            s.marks[g.family] += 1
        for p in sorted(preds, key=lambda p: (p.start, p.end)):
            s.predictions[p.label] += 1
            open_ = [k for k, g in enumerate(item.gold) if k not in matched and p.start < g.end and g.start < p.end]
            if not open_:
                continue
            # Prefer the mark of the finding's own family, then the tightest one.
            k = min(open_, key=lambda k: (item.gold[k].family != p.label, item.gold[k].end - item.gold[k].start))
            matched.add(k)
            s.correct[p.label] += 1
            s.found[item.gold[k].family] += 1
    return s


def run_sekisho(items: list[Item]) -> tuple[list[list[Prediction]], dict]:
    from sekisho.proofread import apply_fixes, proofread

    predictions, fixable, fixed = [], 0, 0
    for item in items:
        findings = proofread(item.text)
        predictions.append([Prediction(f.start, f.end, f.family) for f in findings])
        if item.gold and all(g.suggestion is not None for g in item.gold):
            fixable += 1
            expected, at = [], 0
            for g in item.gold:
                expected += [item.text[at:g.start], g.suggestion]
                at = g.end
            fixed += apply_fixes(item.text, findings) == "".join(expected) + item.text[at:]
    return predictions, {"lines": fixable, "exact": fixed, "rate": round(fixed / fixable, 4) if fixable else None}


def run_textlint(items: list[Item]) -> list[list[Prediction]]:
    """Each text is its own file, so textlint's document-wide checks (its 敬体/常体 rule) see one
    text at a time, as sekisho does."""
    with tempfile.TemporaryDirectory(prefix="proofread-bench-") as tmp:
        folder = Path(tmp)
        (folder / "textlintrc.json").write_text(json.dumps({"rules": TEXTLINT_RULES}), encoding="utf-8")
        files = []
        for n, item in enumerate(items):
            f = folder / f"{n:05d}.txt"
            f.write_text(item.text + "\n", encoding="utf-8")
            files.append(str(f))
        done = subprocess.run([str(TEXTLINT), "--config", str(folder / "textlintrc.json"), "--format", "json", *files],
                              capture_output=True, text=True, cwd=HERE, timeout=900)
        try:
            results = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise SystemExit(f"textlint failed (exit {done.returncode}): {done.stderr.strip()[:400]}") from None
    by_file = {Path(r["filePath"]).name: r["messages"] for r in results}
    predictions = []
    for n, _ in enumerate(items):
        preds = []
        for msg in by_file.get(f"{n:05d}.txt", []):
            start, end = (msg.get("fix") or {}).get("range") or msg.get("range") or (msg["index"], msg["index"] + 1)
            preds.append(Prediction(start, max(end, start + 1), msg["ruleId"]))
        predictions.append(preds)
    return predictions


def throughput(items: list[Item], target_chars: int = 400_000) -> dict:
    from sekisho.proofread import proofread
    from sekisho.proofread.analysis import tokenize_only

    block = "\n".join(item.text for item in items) + "\n"
    text = block * (target_chars // len(block) + 1)
    proofread("準備")  # load the dictionary and the rules outside the timing

    def rate(fn) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            fn(text)
            best = min(best, time.perf_counter() - start)
        return len(text) / best

    sudachi, sekisho = rate(tokenize_only), rate(proofread)
    return {"chars": len(text), "sudachi_chars_per_s": round(sudachi), "sekisho_chars_per_s": round(sekisho),
            "share_of_sudachi": round(sekisho / sudachi, 3)}


def table(name: str, sek: Score, tl: Score) -> list[str]:
    from sekisho.proofread import FAMILIES

    def pct(a: int, b: int) -> str:
        return f"{a / b:.3f}" if b else "  -  "

    lines = [f"## {name}", "", "| family | marks | sekisho P | sekisho R | textlint R |", "|---|---:|---:|---:|---:|"]
    for fid, fam in FAMILIES.items():
        if not sek.marks[fid] and not sek.predictions[fid]:
            continue
        lines.append(f"| {fam.label} | {sek.marks[fid]} | {pct(sek.correct[fid], sek.predictions[fid])} "
                     f"({sek.correct[fid]}/{sek.predictions[fid]}) | {pct(sek.found[fid], sek.marks[fid])} | "
                     f"{pct(tl.found[fid], tl.marks[fid])} |")
    so, to = sek.overall(), tl.overall()
    lines.append(f"| **overall** | {so['marks']} | **{so['precision']}** ({so['correct']}/{so['findings']}) | "
                 f"**{so['recall']}** | {to['recall']} |")
    lines += ["", f"textlint overall: precision {to['precision']} ({to['correct']}/{to['findings']}), recall {to['recall']}",
              "", "| textlint rule | findings | on a mark | precision |", "|---|---:|---:|---:|"]
    for rule, n in sorted(tl.predictions.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {rule} | {n} | {tl.correct[rule]} | {pct(tl.correct[rule], n)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-textlint", action="store_true", help="sekisho only (textlint columns empty)")
    parser.add_argument("--sets", default="heldout,dev", help="which sets, in report order (tune with --sets dev)")
    args = parser.parse_args()
    if not args.no_textlint and not TEXTLINT.exists():
        raise SystemExit(f"error: {TEXTLINT} missing: run `npm ci` in {HERE}")
    report: dict = {"bench": "proofread"}
    out: list[str] = []
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    for name in names:
        items = parse(HERE / f"{name}.txt")
        sek_preds, fixes = run_sekisho(items)
        sek = score(items, sek_preds)
        tl = score(items, [[] for _ in items] if args.no_textlint else run_textlint(items))
        out += table(f"{name} ({len(items)} texts, {sum(len(i.text) for i in items):,} characters)", sek, tl)
        out += ["", f"sekisho fixes: {fixes['exact']}/{fixes['lines']} texts corrected exactly as marked", ""]
        report[name] = {
            "texts": len(items), "sekisho": sek.overall(), "textlint": tl.overall(), "fixes": fixes,
            "families": {f: {"marks": sek.marks[f], "sekisho_findings": sek.predictions[f],
                             "sekisho_correct": sek.correct[f], "sekisho_found": sek.found[f],
                             "textlint_found": tl.found[f]} for f in sorted(set(sek.marks) | set(sek.predictions))},
            "textlint_rules": {r: {"findings": n, "correct": tl.correct[r]} for r, n in tl.predictions.items()},
        }
    items = [item for name in names for item in parse(HERE / f"{name}.txt")]
    report["throughput"] = throughput(items)
    t = report["throughput"]
    out += ["## throughput", "", f"{t['chars']:,} characters: sekisho {t['sekisho_chars_per_s']:,} chars/s, "
            f"Sudachi tokenisation alone {t['sudachi_chars_per_s']:,} chars/s ({t['share_of_sudachi']:.0%})", ""]
    print("\n".join(out))
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
