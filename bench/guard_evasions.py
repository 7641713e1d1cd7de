"""Evasions, held-out accuracy and speed: the guard before the canonical view vs now, same process.

    PYTHONPATH=src python bench/guard_evasions.py --jsquad ../../shared/data/jsquad/valid-v1.3.json

1. 49 written forms of a My Number, a card number and a mobile number (14 ways each: spaced
   out, ideographic spaces, 、 . / ・ separators, mixed separators, kanji numerals with and
   without spaces, zero-width characters, Arabic-Indic and Eastern Arabic-Indic digits, split
   across two lines, full-width with U+2010 hyphens) plus 7 spaced-out or broken-up words
   (「東 京 都…」 addresses, 【社 外 秘】 and other markings), reconstructed from the red team's
   list in #19. A form is caught when a finding of its entity overlaps it.
2. Precision / recall on a held-out synthetic set (bench/guard_dataset.py with a seed nobody
   tuned on, default 20261124) plus the hand-written sentences, and false positives on a few
   ordinary numbers written for this report only (the unit tests hold their own).
3. Throughput, MB/s of UTF-8 text as one scan: JSQuAD prose (the recorded 37.8 MB/s figure)
   and the synthetic forms, old / new / unicodedata NFKC alone, best of --repeats.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_baseline import BEFORE, load_guard  # noqa: E402
from guard_dataset import generate, handset  # noqa: E402
from guard_presidio import jsquad_docs, score  # noqa: E402
from sekisho.guard import scan as new_scan  # noqa: E402

HELD_OUT_SEED = 20261124
KANJI = "〇一二三四五六七八九"
ARABIC = "٠١٢٣٤٥٦٧٨٩"
PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
FULL = "０１２３４５６７８９"


def _groups(digits: str, sizes: tuple[int, ...]) -> list[str]:
    out, i = [], 0
    for n in sizes:
        out.append(digits[i:i + n])
        i += n
    return out


def _digits_in(digits: str, alphabet: str) -> str:
    return "".join(alphabet[int(d)] for d in digits)


# (entity, label written before the number, digits, grouping)
NUMBERS = (
    ("MY_NUMBER", "マイナンバー：", "531428067458", (4, 4, 4)),
    ("CREDIT_CARD", "カード番号：", "4111111111111111", (4, 4, 4, 4)),
    ("PHONE_NUMBER", "携帯：", "09087654321", (3, 4, 4)),
)


def number_forms(digits: str, sizes: tuple[int, ...]) -> dict[str, str]:
    g = _groups(digits, sizes)
    return {
        "spaced digits": " ".join(digits),
        "ideographic spaces": "\u3000".join(digits),
        "、 separated": "、".join(g),
        ". separated": ".".join(g),
        "/ separated": "/".join(g),
        "・ separated": "・".join(g),
        "mixed separators": "".join(x + s for x, s in zip(g, ["-", " ", "/", "."])).rstrip(" -/."),
        "kanji numerals": _digits_in(digits, KANJI),
        "kanji, spaced groups": " ".join(_digits_in(x, KANJI) for x in g),
        "zero-width spaces": "\u200b".join(g),
        "Arabic-Indic": _digits_in(digits, ARABIC),
        "Eastern Arabic-Indic": _digits_in(digits, PERSIAN),
        "two lines": " ".join(g[:-1]) + "\n" + g[-1],
        "full-width, U+2010": "\u2010".join(_digits_in(x, FULL) for x in g),
    }


WORD_FORMS = (
    ("ADDRESS", "住所：", "東 京 都 千 代 田 区 霞 が 関 1 - 2 - 3"),
    ("ADDRESS", "送付先：", "大　阪　府　大　阪　市　北　区　梅　田　一　丁　目　1　番　3　号"),
    ("CONFIDENTIAL", "", "【社 外 秘】"),
    ("CONFIDENTIAL", "", "社\u200b外\u200b秘"),
    ("CONFIDENTIAL", "", "極 秘"),
    ("CONFIDENTIAL", "", "取 扱 注 意"),
    ("CONFIDENTIAL", "", "機 密 性 ３"),
)


def evasion_forms() -> list[tuple[str, str, str, int, int]]:
    """(family, entity, text, start, end) of each written form inside its sentence."""
    forms = []
    for entity, label, digits, sizes in NUMBERS:
        for family, written in number_forms(digits, sizes).items():
            text = f"{label}{written} です。"
            forms.append((family, entity, text, len(label), len(label) + len(written)))
    for entity, label, written in WORD_FORMS:
        text = f"{label}{written} について"
        forms.append(("spaced-out words", entity, text, len(label), len(label) + len(written)))
    return forms


# Ordinary numbers, written for this report (not the unit tests' list): none must be reported.
BENIGN = (
    "令和7年度予算は 3,456,789,012 円（前年度 3,210,987,654 円）。",
    "資料の 45〜67 ページと pp. 101-112 を参照。",
    "受付は 9:00〜17:30、昼休み 12:00-13:00。",
    "2025/04/01 から 2026/03/31 までの期間。",
    "第二三四号議案、第五六七号議案を可決した。",
    "配送伝票番号 0901 2345 6789 をご確認ください。",
    "ご注文番号：4111/1111/1111/1111",
    "人口 1 234 567 人、世帯数 567 890。",
    "座席表: 1 2 3 4 5 6 7 8 9 10 11 12",
    "検体番号 20250401 001 と 20250401 002。",
    "西暦 二〇二五 年 四 月 一 日 に施行。",
    "郵便物 12 通、小包 34 個、書留 56 件。",
)


def caught(scan, forms) -> list[bool]:
    return [any(f.entity == entity and f.start < end and start < f.end for f in scan(text))
            for _, entity, text, start, end in forms]


def best_mb_s(fn, text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - t0)
    return len(text.encode("utf-8")) / 1e6 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="held-out synthetic set")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=BEFORE, help="commit of the old guard")
    parser.add_argument("--jsquad", type=Path,
                        default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jsquad" / "valid-v1.3.json")
    args = parser.parse_args()
    old_scan = load_guard(args.baseline).scan
    versions = {"old": old_scan, "new": new_scan}
    for fn in versions.values():
        fn("ウォームアップ０１２")
    result: dict = {"baseline": args.baseline[:10], "seed": args.seed}

    forms = evasion_forms()
    hits = {name: caught(fn, forms) for name, fn in versions.items()}
    print(f"evasion forms caught, of {len(forms)}: old {sum(hits['old'])}, new {sum(hits['new'])}")
    families: dict[str, dict[str, int]] = {}
    for i, (family, entity, _, _, _) in enumerate(forms):
        row = families.setdefault(family, {"forms": 0, "old": 0, "new": 0})
        row["forms"] += 1
        row["old"] += hits["old"][i]
        row["new"] += hits["new"][i]
    for family, row in families.items():
        print(f"  {family:24s} {row['old']}/{row['forms']} -> {row['new']}/{row['forms']}")
    missed = [forms[i][2] for i in range(len(forms)) if not hits["new"][i]]
    if missed:
        print("  still missed:", *map(repr, missed), sep="\n    ")
    result["evasions"] = {"forms": len(forms), "old": sum(hits["old"]), "new": sum(hits["new"]),
                          "families": families, "missed": missed}

    docs = generate(args.docs, args.seed)
    hand = handset()
    for name, fn in versions.items():
        synthetic = score(docs, [[(f.entity, f.start, f.end) for f in fn(d["text"])] for d in docs])["micro"]
        written = score(hand, [[(f.entity, f.start, f.end) for f in fn(d["text"])] for d in hand])["micro"]
        tp, fp, fn_ = (synthetic[k] + written[k] for k in ("tp", "fp", "fn"))
        benign = [f.text for text in BENIGN for f in fn(text)]
        result[name] = {"synthetic": synthetic, "handset": written, "precision": round(tp / (tp + fp), 4),
                        "recall": round(tp / (tp + fn_), 4), "benign_false_positives": benign}
        print(f"{name}: held-out synthetic (seed {args.seed}, {len(docs)} docs) P {synthetic['p']:.4f} "
              f"R {synthetic['r']:.4f} (fp {synthetic['fp']}, fn {synthetic['fn']}); hand-written P "
              f"{written['p']:.3f} R {written['r']:.3f}; together P {result[name]['precision']:.4f} "
              f"R {result[name]['recall']:.4f}; benign probes reported: {benign or 'none'}")

    texts = {"forms": "\n".join(d["text"] for d in docs)}
    if args.jsquad.exists():
        texts["prose"] = "\n".join(d["text"] for d in jsquad_docs(args.jsquad))
    else:
        print(f"(no JSQuAD file at {args.jsquad}: prose throughput skipped)")
    result["mb_s"] = {}
    for kind, text in texts.items():
        speeds = {name: best_mb_s(fn, text, args.repeats) for name, fn in versions.items()}
        speeds["nfkc"] = best_mb_s(lambda t: unicodedata.normalize("NFKC", t), text, args.repeats)
        result["mb_s"][kind] = {k: round(v, 2) for k, v in speeds.items()}
        print(f"throughput on {kind} ({len(text.encode('utf-8')) / 1e6:.2f} MB as one text): old "
              f"{speeds['old']:.1f} MB/s, new {speeds['new']:.1f} MB/s (new/old {speeds['new'] / speeds['old']:.2f}), "
              f"NFKC alone {speeds['nfkc']:.1f} MB/s")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
