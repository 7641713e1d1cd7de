"""How well does check_faithfulness tell supported answers from wrong ones? Labelled from JSQuAD.

For every question whose gold answer sits in one sentence of its paragraph, four answers, each
citing the paragraph as [1]:
  supported:   the answer sentence itself; the short answer "<gold>です。"; the question restated
               with the gold answer in place of its interrogative (the question's wording, which
               often differs from the passage's: the hard case for a checker)
  unsupported: the same three with the gold answer swapped for a wrong one
The wrong answer is another question's gold answer of the same kind (number / katakana / kanji /
Latin / mixed, similar length) from a different article, absent from this paragraph: a plausible
confusion, not noise. The support threshold is chosen on the dev half (even-numbered articles) to
maximise F1 of detecting unsupported answers, then precision and recall are reported on the test
half (odd-numbered articles). Last line: one JSON object.

    python bench/faithfulness_jsquad.py [PATH/TO/valid-v1.3.json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from sekisho.answer import check_faithfulness
from sekisho.answer.faithfulness import MIN_NEW_TERM, SUPPORT_THRESHOLD
from sekisho.models import Passage
from sekisho.text import compact, sentences

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "jsquad" / "valid-v1.3.json"


def kind(text: str) -> str:
    if re.search(r"\d", text):
        return "number"
    if re.fullmatch(r"[ァ-ヶー・]+", text):
        return "katakana"
    if re.fullmatch(r"[一-龥々]+", text):
        return "kanji"
    if re.fullmatch(r"[A-Za-z .\-]+", text):
        return "latin"
    return "mixed"


_WH = re.compile(r"何|どこ|誰|だれ|いつ|どれ|いくつ|いくら")


def restate(question: str, answer: str) -> str | None:
    """The question turned into its answer, as a model restating it would write: the question's
    own wording (often not the passage's) with the interrogative filled in."""
    if len(_WH.findall(question)) != 1:
        return None
    m = _WH.search(question)
    rest = question[m.end() :]
    if rest[:1] and answer.endswith(rest[0]):  # 何年 -> 2006年, not 2006年年
        rest = rest[1:]
    text = question[: m.start()] + answer + rest
    return re.sub(r"(ですか|でしょうか|か)?[?？。\s]*$", "", text) + "。"


def build(path: Path, limit: int | None, seed: int = 0) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    questions = []
    for index, article in enumerate(data):
        for para in article["paragraphs"]:
            title, body = para["context"].split(" [SEP] ", 1)
            for qa in para["qas"]:
                gold = qa["answers"][0]["text"]
                sentence = next((s for s in sentences(body) if gold in s), None)
                if sentence:
                    questions.append({"split": "dev" if index % 2 == 0 else "test", "article": index,
                                      "title": title, "body": body, "gold": gold, "sentence": sentence,
                                      "question": qa["question"]})
    pool: dict[str, list[tuple[int, str]]] = {}
    for q in questions:
        pool.setdefault(kind(q["gold"]), []).append((q["article"], q["gold"]))
    rng = random.Random(seed)
    rng.shuffle(questions)
    items = []
    for q in questions[:limit]:
        same = [g for a, g in pool[kind(q["gold"])]
                if a != q["article"] and compact(g) not in compact(q["body"])
                and abs(len(g) - len(q["gold"])) <= max(2, len(q["gold"]) // 2)]
        if not same:
            continue
        wrong = rng.choice(same)
        passage = Passage(1, "p:0", q["title"], q["body"])
        forms = [
            (q["sentence"], False, "sentence"),
            (f"{q['gold']}です。", False, "short"),
            (q["sentence"].replace(q["gold"], wrong, 1), True, "sentence"),
            (f"{wrong}です。", True, "short"),
        ]
        restated = restate(q["question"], q["gold"])
        if restated:
            forms += [(restated, False, "restated"), (restate(q["question"], wrong), True, "restated")]
        for text, unsupported, form in forms:
            items.append({"split": q["split"], "passage": passage, "answer": f"{text} [1]",
                          "unsupported": unsupported, "form": form})
    return items


def prf(items: list[dict], flagged: list[bool]) -> dict:
    tp = sum(f and i["unsupported"] for i, f in zip(items, flagged))
    fp = sum(f and not i["unsupported"] for i, f in zip(items, flagged))
    fn = sum(not f and i["unsupported"] for i, f in zip(items, flagged))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "n": len(items)}


def flags(items: list[dict], setting: tuple[float, int]) -> list[bool]:
    threshold, min_new_term = setting
    return [not check_faithfulness(i["answer"], [i["passage"]], threshold=threshold, min_new_term=min_new_term).faithful
            for i in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=None, help="questions to use (default: all)")
    args = parser.parse_args()
    if not args.dataset.exists():
        sys.exit(f"error: {args.dataset}: JSQuAD file not found (pass its path)")
    items = build(args.dataset, args.limit)
    dev = [i for i in items if i["split"] == "dev"]
    test = [i for i in items if i["split"] == "test"]
    print(f"labelled answers: {len(items)} (dev {len(dev)}, test {len(test)}); half of each form unsupported")
    sweep = {}
    for setting in [(t, m) for m in (2, 3) for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]:
        sweep[setting] = prf(dev, flags(dev, setting))
        print(f"dev threshold {setting[0]:.2f}, new term >= {setting[1]} chars: {sweep[setting]}")
    shipped = (SUPPORT_THRESHOLD, MIN_NEW_TERM)
    # Ties go to the stricter setting (higher threshold, shorter new term).
    chosen = max(sweep, key=lambda st: (sweep[st]["f1"], st[0], -st[1]))
    started = time.perf_counter()
    test_flags = flags(test, chosen)
    per_answer_ms = (time.perf_counter() - started) / max(1, len(test)) * 1000
    result = {"threshold": chosen[0], "min_new_term": chosen[1], "shipped": list(shipped),
              "test": prf(test, test_flags)}
    for form in ("sentence", "short", "restated"):
        chosen_items = [(i, f) for i, f in zip(test, test_flags) if i["form"] == form]
        result[f"test_{form}"] = prf([i for i, _ in chosen_items], [f for _, f in chosen_items])
    result["ms_per_answer"] = round(per_answer_ms, 2)
    print(f"test at threshold {chosen[0]}, new term >= {chosen[1]}: {result['test']}")
    for form in ("sentence", "short", "restated"):
        print(f"  {form:9s} {result['test_' + form]}")
    print(f"  {per_answer_ms:.2f} ms per answer")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
