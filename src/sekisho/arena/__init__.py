"""The model arena: run suites of Japanese tasks against configured backends through the
governed request path, resumably, and report quality (with bootstrap CIs), latency, tokens and energy.

    suite = load_suite("ja-standard")
    summary = run_suite(settings, suite, ["extractive", "qwen15b"], Path("runs/1"), limit=20)
    # -> runs/1/report.html, runs/1/report.json; re-running skips finished items
"""

from sekisho.arena.runner import RunSummary, rebuild_report, run_suite
from sekisho.arena.suite import ArenaError, Suite, Task, load_suite, shipped_suites

__all__ = ["ArenaError", "RunSummary", "Suite", "Task", "load_suite", "rebuild_report", "run_suite", "shipped_suites"]
