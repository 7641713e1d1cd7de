"""The request that stalled the server: 560 KB of phone numbers (and one at the 4 MB body limit)
through scan + mask + mask_known + restore, the guard before this branch vs now, same process.

    PYTHONPATH=src python bench/guard_stall.py                 # 560 KB both; 4 MB new only
    PYTHONPATH=src python bench/guard_stall.py --old-kb 560 --new-kb 560 4096

Before: masking compared every finding with every finding kept (non_overlapping) and mask_known
ran one str.replace over the whole text per masked value, both quadratic. The old code is run on
the sizes in --old-kb only (at 4 MB it would take half an hour or more); its 4 MB figure is then
extrapolated from its two largest sizes, and says so. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guard_baseline import BEFORE, load_guard, load_module  # noqa: E402
from sekisho.guard import masking as new_masking  # noqa: E402
from sekisho.guard import scan as new_scan  # noqa: E402
from sekisho.identity import Principal, Role  # noqa: E402

ALICE = Principal("alice", Role.USER)
LINES = ("連絡先：{}", "携帯 {} までお願いします。", "代表電話は{}です。", "{}（平日9時〜17時）")


def phone_request(kb: int, seed: int = 0) -> str:
    """About `kb` KB (UTF-8) of lines each holding a distinct Japanese phone number."""
    rng = random.Random(seed)
    lines, size = [], 0
    while size < kb * 1000:
        if rng.random() < 0.5:
            number = f"0{rng.choice('789')}0-{rng.randrange(1000, 10000)}-{rng.randrange(10000):04d}"
        else:
            number = f"03-{rng.randrange(2000, 10000)}-{rng.randrange(10000):04d}"
        line = rng.choice(LINES).format(number)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return "\n".join(lines)


def run(scan, masking, text: str) -> dict[str, float]:
    """Seconds per stage, as the request path runs them on a prompt and a reply that repeats it."""
    times = {}
    t0 = time.perf_counter()
    findings = scan(text)
    times["scan"] = time.perf_counter() - t0
    session = masking.MaskSession(ALICE)
    t0 = time.perf_counter()
    masked, _ = session.mask(text, findings)
    times["mask"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.mask_known(text)
    times["mask_known"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    restored = session.restore(masked, ALICE)
    times["restore"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    "".join(session.restore_stream((masked[i:i + 7] for i in range(0, len(masked), 7)), ALICE))
    times["restore_stream"] = time.perf_counter() - t0
    times["total"] = sum(times.values())
    times["findings"] = len(findings)
    # The old restore read at most 4 placeholder digits: past 9,999 values of one kind
    # (<電話番号_10000>) it gave the user placeholders instead of their numbers.
    times["restored_intact"] = restored == text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-kb", type=int, nargs="+", default=[140, 280, 560])
    parser.add_argument("--new-kb", type=int, nargs="+", default=[560, 4096])
    parser.add_argument("--baseline", default=BEFORE, help="commit of the old guard")
    args = parser.parse_args()
    old_scan = load_guard(args.baseline).scan
    old_masking = load_module(args.baseline, "masking")
    old_scan("ウォームアップ０１２")
    new_scan("ウォームアップ０１２")
    result: dict = {"baseline": args.baseline[:10], "old": {}, "new": {}}
    for kb in sorted(set(args.old_kb) | set(args.new_kb)):
        text = phone_request(kb)
        row = f"{kb:>5} KB ({len(text):,} chars)"
        for which, scan, masking, sizes in (("new", new_scan, new_masking, args.new_kb),
                                            ("old", old_scan, old_masking, args.old_kb)):
            if kb in sizes:
                t = run(scan, masking, text)
                result[which][kb] = {k: round(v, 3) if isinstance(v, float) else v for k, v in t.items()}
                row += (f"  {which} {t['total']:8.2f} s (scan {t['scan']:.2f}, mask {t['mask']:.2f}, "
                        f"mask_known {t['mask_known']:.2f}, restore {t['restore']:.2f}"
                        f"{'' if t['restored_intact'] else ', RESTORE BROKEN'})")
        print(row, flush=True)
    both = sorted(set(result["old"]) & set(result["new"]))
    result["speedup"] = {kb: round(result["old"][kb]["total"] / result["new"][kb]["total"], 1) for kb in both}
    olds = sorted(result["old"])
    if len(olds) >= 2:
        # Fit t = a * n^k through the two largest old sizes and extrapolate to the largest new size.
        (n1, t1), (n2, t2) = [(kb, result["old"][kb]["total"]) for kb in olds[-2:]]
        from math import log
        k = log(t2 / t1) / log(n2 / n1)
        target = max(result["new"])
        estimate = t2 * (target / n2) ** k
        result["old_extrapolated"] = {"kb": target, "seconds": round(estimate, 1), "exponent": round(k, 2)}
        print(f"old code at {target} KB, extrapolated (t ~ n^{k:.2f}): {estimate:,.0f} s; "
              f"new measured: {result['new'][target]['total']:.2f} s")
    for kb in both:
        print(f"{kb} KB: old / new = {result['speedup'][kb]}x")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
