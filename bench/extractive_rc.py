"""Extractive backend alone on JSQuAD reading comprehension: does its answer contain a gold answer?

    python bench/extractive_rc.py [DATASET]

Every question is answered from its gold paragraph only (title as the passage title); containment
after NFKC and whitespace removal, the usual JSQuAD normalisation. Seconds, not minutes: the quick
check to run after touching models/extractive.py. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sekisho.arena.scorers import normalize_answer
from sekisho.models.extractive import extract
from sekisho.models.protocol import Passage

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jsquad" / "valid-v1.3.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    args = ap.parse_args()
    items = []
    for article in json.loads(args.dataset.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            title, _, body = para["context"].partition(" [SEP] ")
            items += [(title, body, qa["question"], [a["text"] for a in qa["answers"]]) for qa in para["qas"]]
    contained = chars = not_found = 0
    started = time.perf_counter()
    for title, body, question, golds in items:
        found = extract(question, [Passage(1, "gold", title, body)])
        answer = normalize_answer(found.render(question)) if found else ""
        not_found += found is None
        chars += len(answer)
        contained += any(normalize_answer(g) in answer for g in golds)
    elapsed = time.perf_counter() - started
    result = {"questions": len(items), "contains_gold": round(contained / len(items), 4),
              "avg_chars": round(chars / len(items), 1), "not_found": round(not_found / len(items), 4),
              "ms_per_question": round(1000 * elapsed / len(items), 2)}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
