"""The arena report: report.json (every figure) and report.html (one self-contained file: inline
CSS and SVG, no scripts, no external requests, so it opens on an air-gapped machine)."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

from jinja2 import Environment

from sekisho.arena.results import ItemResult, ResultStore
from sekisho.arena.scorers import METRICS, quality
from sekisho.arena.stats import bootstrap_ci, percentile
from sekisho.arena.suite import ArenaError, Suite, parse_suite

WORST_PER_MODEL = 3


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def environment() -> dict[str, Any]:
    try:
        version = metadata.version("sekisho")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "sekisho": version,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _finite(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)


def summarize(store: ResultStore) -> dict[str, Any]:
    """Every figure the report shows, computed from the stored per-item results."""
    digest = store.get_meta("suite_hash")
    suite_meta = store.get_meta("suite")
    if not digest or not suite_meta:
        raise ArenaError(f"{store.path}: no finished run metadata to report on")
    suite: Suite = parse_suite(suite_meta["source"], suite_meta["path"])
    results = store.results(digest)
    models_info = store.models(digest)
    seed = suite.seed
    by: dict[tuple[str, str], list[ItemResult]] = defaultdict(list)
    for r in results:
        by[(r.model, r.task)].append(r)
    named = [m for run in store.get_meta("runs", []) for m in run["models"]] + list(models_info)
    models = [m for m in dict.fromkeys(named) if m in models_info]  # first-run order, each once

    scores: dict[str, dict[str, dict[str, Any]]] = {}
    perf: dict[str, dict[str, Any]] = {}
    methods: dict[str, dict[str, str]] = {}
    for model in models:
        scores[model] = {}
        for task in suite.tasks:
            rows = by.get((model, task.id), [])
            if not rows:
                continue
            names = sorted({k for r in rows for k in r.metrics})
            scores[model][task.id] = {}
            for name in names:
                values = [r.metrics[name] for r in rows if name in r.metrics]
                low, high = bootstrap_ci(values, seed=seed)
                scores[model][task.id][name] = {"mean": _finite(sum(values) / len(values)),
                                                "ci": [_finite(low), _finite(high)], "n": len(values)}
            used = sorted({r.method for r in rows if r.method})
            if used:
                methods.setdefault(model, {})[task.id] = "+".join(used)
        rows = [r for t in suite.tasks for r in by.get((model, t.id), [])]
        latencies = [r.latency_s for r in rows]
        # Output tokens over the whole wall time of the calls that generated (prompt reading and
        # guards included): what a user waits for, not the decoder's peak speed.
        gen_time = sum(r.latency_s for r in rows if r.completion_tokens)
        completion_tokens = sum(r.completion_tokens for r in rows)
        prompt_tokens = sum(r.prompt_tokens for r in rows)
        energy = [r.energy_j for r in rows if not math.isnan(r.energy_j)]
        source = models_info[model][1]
        perf[model] = {
            "items": len(rows),
            "latency_p50_s": _finite(percentile(latencies, 50)),
            "latency_p95_s": _finite(percentile(latencies, 95)),
            "output_tokens_per_s": _finite(completion_tokens / gen_time) if gen_time else None,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "energy_j": _finite(sum(energy)),
            "energy_per_item_j": _finite(sum(energy) / len(energy)) if energy else None,
            "energy_source": source["kind"],
            "energy_is_estimate": source["kind"] != "rapl",
            "energy_label": source["label"],
        }

    overall = []
    for model in models:
        per_task = [quality(t.primary, scores[model][t.id][t.primary]["mean"])
                    for t in suite.tasks if t.primary in scores[model].get(t.id, {})]
        overall.append({"model": model, "score": _finite(sum(per_task) / len(per_task)) if per_task else None,
                        "tasks": len(per_task)})
    overall.sort(key=lambda o: (-(o["tasks"]), -(o["score"] if o["score"] is not None else -1)))
    for rank, o in enumerate(overall, 1):
        o["rank"] = rank

    task_ranks = {}
    for task in suite.tasks:
        entries = [(m, scores[m][task.id][task.primary]) for m in models if task.primary in scores[m].get(task.id, {})]
        entries.sort(key=lambda e: -quality(task.primary, e[1]["mean"]))
        task_ranks[task.id] = [m for m, _ in entries]

    failures: dict[str, list[dict[str, Any]]] = {}
    for task in suite.tasks:
        worst = []
        for model in models:
            rows = [r for r in by.get((model, task.id), []) if task.primary in r.metrics]
            rows = [r for r in rows if quality(task.primary, r.metrics[task.primary]) < 1.0]
            rows.sort(key=lambda r: quality(task.primary, r.metrics[task.primary]))
            worst += [{"model": model, "item_id": r.item_id, "metric": task.primary,
                       "value": r.metrics[task.primary], "status": r.status, "prompt": r.prompt,
                       "answer": r.answer, "expected": r.expected, "sources": r.sources}
                      for r in rows[:WORST_PER_MODEL]]
        failures[task.id] = worst

    return {
        "suite": {"name": suite.name, "title_ja": suite.title_ja, "title_en": suite.title_en,
                  "description": suite.description, "hash": digest, "path": suite_meta["path"]},
        "run": store.get_meta("run", {}),
        "runs": store.get_meta("runs", []),
        "environment": store.get_meta("environment", {}),
        "models": {m: models_info[m][0] for m in models},
        "tasks": [{"id": t.id, "title_ja": t.title_ja, "title_en": t.title_en, "kind": t.kind, "scorer": t.scorer,
                   "primary": t.primary} for t in suite.tasks],
        "metrics": {k: {"label_ja": v.label_ja, "label_en": v.label_en, "higher_is_better": v.higher_is_better}
                    for k, v in METRICS.items()},
        "overall": overall,
        "task_ranking": task_ranks,
        "scores": scores,
        "performance": perf,
        "choice_methods": methods,
        "failures": failures,
        "errors": [{"task": t, "model": m, "item_id": i, "message": msg} for t, m, i, msg in store.errors(digest)],
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- SVG charts (inline, no scripts) ----------------------------------------------------------

PALETTE = ["#1f5fa8", "#d9622b", "#2e8b57", "#8e44ad", "#b8860b", "#c0392b", "#16a085", "#555555"]


def _esc(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def bar_chart(rows: list[tuple[str, float, float, float, str]], *, label: str) -> str:
    """Horizontal bars on a 0-1 axis with 95% CI whiskers; rows: (model, value, low, high, colour)."""
    left, width, row_h, top = 190, 360, 26, 22
    height = top + row_h * len(rows) + 26
    x = lambda v: left + width * max(0.0, min(1.0, v))  # noqa: E731
    parts = [f'<svg class="chart" viewBox="0 0 {left + width + 70} {height}" width="{left + width + 70}" '
             f'height="{height}" role="img" aria-label="{_esc(label)}">']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" y2="{height - 22}" class="grid"/>'
                     f'<text x="{x(tick):.1f}" y="{height - 8}" class="tick">{tick:g}</text>')
    for i, (model, value, low, high, colour) in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 15}" class="name">{_esc(model)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{x(value) - left:.1f}" height="{row_h - 8}" fill="{colour}"/>')
        if not (math.isnan(low) or math.isnan(high)):
            mid = y + row_h / 2 - 1
            parts.append(f'<line x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}" class="whisker"/>'
                         f'<line x1="{x(low):.1f}" y1="{mid - 6}" x2="{x(low):.1f}" y2="{mid + 6}" class="whisker"/>'
                         f'<line x1="{x(high):.1f}" y1="{mid - 6}" x2="{x(high):.1f}" y2="{mid + 6}" class="whisker"/>')
        parts.append(f'<text x="{x(max(value, high if not math.isnan(high) else value)) + 6:.1f}" y="{y + 15}" '
                     f'class="value">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    return next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= v)


def scatter(points: list[tuple[str, float, float, str, bool]], *, x_label: str, y_label: str) -> str:
    """Quality (y, 0-1) against a cost (x, from 0); points: (label, x, y, colour, ran every task).
    A model that ran only some tasks is drawn hollow: its overall is not comparable."""
    left, bottom, w, h = 56, 40, 330, 220
    xmax = _nice_max(max((p[1] for p in points), default=1.0) * 1.1)
    px = lambda v: left + w * v / xmax  # noqa: E731
    py = lambda v: 10 + h * (1 - max(0.0, min(1.0, v)))  # noqa: E731
    parts = [f'<svg class="chart" viewBox="0 0 {left + w + 130} {h + bottom + 20}" width="{left + w + 130}" '
             f'height="{h + bottom + 20}" role="img" aria-label="{_esc(y_label)} / {_esc(x_label)}">']
    for i in range(5):
        gx, gy = xmax * i / 4, i / 4
        parts.append(f'<line x1="{px(gx):.1f}" y1="10" x2="{px(gx):.1f}" y2="{10 + h}" class="grid"/>'
                     f'<text x="{px(gx):.1f}" y="{h + 28}" class="tick">{gx:g}</text>'
                     f'<line x1="{left}" y1="{py(gy):.1f}" x2="{left + w}" y2="{py(gy):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{py(gy) + 4:.1f}" class="name">{gy:g}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{h + bottom + 12}" class="tick">{_esc(x_label)}</text>')
    parts.append(f'<text x="14" y="{10 + h / 2}" class="tick" transform="rotate(-90 14 {10 + h / 2})">{_esc(y_label)}</text>')
    for model, xv, yv, colour, complete in points:
        fill = f'fill="{colour}"' if complete else f'fill="#fff" stroke="{colour}" stroke-width="2"'
        parts.append(f'<circle cx="{px(xv):.1f}" cy="{py(yv):.1f}" r="6" {fill}/>'
                     f'<text x="{px(xv) + 9:.1f}" y="{py(yv) + 4:.1f}" class="label">{_esc(model)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_TEMPLATE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>関所アリーナ {{ s.suite.title_ja }} / sekisho arena report</title>
<style>
body{font-family:"IPAPGothic","Hiragino Sans","Yu Gothic","Noto Sans CJK JP",sans-serif;margin:24px auto;max-width:1100px;
 color:#1d2733;background:#fff;line-height:1.5;padding:0 16px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;border-bottom:2px solid #1f5fa8;padding-bottom:2px;margin-top:32px}
h3{font-size:1.05em;margin:20px 0 6px}.en{color:#5a6673;font-weight:normal;font-size:.85em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #d4dae1;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef2f7}td.l,th.l{text-align:left}.ci{color:#5a6673;font-size:.85em}
.grid{stroke:#e2e6ea}.whisker{stroke:#1d2733;stroke-width:1.5}.tick{font-size:11px;fill:#5a6673;text-anchor:middle}
.name{font-size:12px;text-anchor:end;fill:#1d2733}.value{font-size:11px;fill:#1d2733}.label{font-size:12px;fill:#1d2733}
.est{color:#a0522d;font-weight:bold}.meta{color:#5a6673;font-size:.9em}.badge{display:inline-block;background:#eef2f7;border-radius:3px;padding:0 5px;font-size:.8em}
details{border:1px solid #d4dae1;border-radius:4px;margin:6px 0;padding:4px 8px}summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:6px;margin:4px 0;font-size:.85em;max-height:16em;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:16px}
</style></head><body>
<h1>関所アリーナ 評価レポート <span class="en">sekisho arena report</span></h1>
<p class="meta">{{ s.suite.title_ja }} <span class="en">{{ s.suite.title_en }}</span> ·
 スイートハッシュ (suite hash) <code>{{ s.suite.hash }}</code> · {{ s.environment.date }}</p>
{% if s.suite.description %}<p>{{ s.suite.description }}</p>{% endif %}

<h2>総合順位 <span class="en">Overall ranking</span></h2>
<table id="ranking"><tr><th>順位<br><span class="en">rank</span></th><th class="l">モデル<br><span class="en">model</span></th>
<th>総合<br><span class="en">overall</span></th>
{% for t in s.tasks %}<th>{{ t.title_ja }}<br><span class="en">{{ metric_label(t.primary) }}</span></th>{% endfor %}
<th>遅延 p50 / p95 (秒)<br><span class="en">latency s</span></th><th>出力トークン/秒<br><span class="en">output tok/s, end to end</span></th>
<th>総トークン<br><span class="en">total tokens</span></th><th>エネルギー J/問<br><span class="en">energy J/item</span></th></tr>
{% for o in s.overall %}{% set p = s.performance[o.model] %}<tr>
<td>{{ o.rank }}</td><td class="l"><b>{{ o.model }}</b><br><span class="badge">{{ s.models[o.model].kind }}{% if not s.models[o.model].local %} · 外部 external{% endif %}</span></td>
<td><b>{{ fmt(o.score) }}</b>{% if o.tasks < s.tasks|length %}<br><span class="ci">{{ o.tasks }}/{{ s.tasks|length }} tasks</span>{% endif %}</td>
{% for t in s.tasks %}{% set c = s.scores[o.model].get(t.id, {}).get(t.primary) %}
<td>{% if c %}{{ fmt(c.mean) }}<br><span class="ci">[{{ fmt(c.ci[0]) }}, {{ fmt(c.ci[1]) }}] n={{ c.n }}</span>{% else %}—{% endif %}</td>{% endfor %}
<td>{{ fmt(p.latency_p50_s, 2) }} / {{ fmt(p.latency_p95_s, 2) }}</td><td>{{ fmt(p.output_tokens_per_s, 1) }}</td>
<td>{{ p.total_tokens }}</td><td>{{ fmt(p.energy_per_item_j, 1) }}{% if p.energy_is_estimate %} <span class="est">推定 est.</span>{% endif %}</td></tr>
{% endfor %}</table>
<p class="meta">総合 = 各タスクの主指標（低いほど良い指標は 1−値）の平均。括弧内は 95% ブートストラップ信頼区間。
<span class="en">Overall = mean of each task's headline metric (1 − value where lower is better); brackets: 95% bootstrap CI.</span></p>
<p class="meta">エネルギー <span class="en">energy</span>: {% for label, ms in energy_labels.items() %}<span class="{{ 'est' if '推定' in label else '' }}">{{ label }}</span> ({{ ms|join(", ") }}){% if not loop.last %} · {% endif %}{% endfor %}</p>

<h2>コストと品質 <span class="en">Cost vs quality</span></h2>
<div class="charts">{{ energy_chart|safe }}{{ latency_chart|safe }}</div>

<h2>タスク別 <span class="en">Per task</span></h2>
{% for t in s.tasks %}
<h3>{{ t.title_ja }} <span class="en">{{ t.title_en }} · {{ t.id }}</span></h3>
<p class="meta">主指標 <span class="en">headline</span>: {{ metric_label(t.primary) }}{% if not s.metrics[t.primary].higher_is_better %} （低いほど良い / lower is better）{% endif %} · 95% CI</p>
{% if s.task_ranking[t.id] %}{{ task_charts[t.id]|safe }}
<table><tr><th class="l">モデル <span class="en">model</span></th>{% for name in task_metrics[t.id] %}<th>{{ s.metrics[name].label_ja }}<br><span class="en">{{ s.metrics[name].label_en }}{% if not s.metrics[name].higher_is_better %} ↓{% endif %}</span></th>{% endfor %}{% if t.kind == "choice" %}<th class="l">方式 <span class="en">method</span></th>{% endif %}</tr>
{% for m in s.task_ranking[t.id] %}<tr><td class="l">{{ m }}</td>{% for name in task_metrics[t.id] %}{% set c = s.scores[m][t.id].get(name) %}
<td>{% if c %}{{ fmt(c.mean) }} <span class="ci">[{{ fmt(c.ci[0]) }}, {{ fmt(c.ci[1]) }}]</span>{% else %}—{% endif %}</td>{% endfor %}
{% if t.kind == "choice" %}<td class="l">{{ s.choice_methods.get(m, {}).get(t.id, "") }}</td>{% endif %}</tr>{% endfor %}
</table>{% else %}<p class="meta">未実行 <span class="en">not run</span></p>{% endif %}
{% endfor %}

<h2>主な失敗例 <span class="en">Worst failures</span></h2>
{% for t in s.tasks %}{% if s.failures[t.id] %}
<h3>{{ t.title_ja }} <span class="en">{{ t.title_en }}</span></h3>
{% for f in s.failures[t.id] %}<details><summary><b>{{ f.model }}</b> · {{ f.item_id }} · {{ metric_label(f.metric) }} = {{ fmt(f.value) }}{% if f.status != "ok" %} · <span class="badge">{{ f.status }}</span>{% endif %}
 · <span class="ci">{{ (f.answer or "（空 / empty）")|replace("\n", " ")|truncate(48, true, "…") }}</span></summary>
<div>質問・プロンプト <span class="en">prompt</span></div><pre>{{ f.prompt }}</pre>
<div>回答 <span class="en">answer</span></div><pre>{{ f.answer or "（空 / empty）" }}</pre>
<div>期待 <span class="en">expected</span></div><pre>{{ f.expected }}</pre>
{% if f.sources %}<div>出典 <span class="en">sources</span></div><pre>{{ f.sources|join("\n\n") }}</pre>{% endif %}
</details>{% endfor %}{% endif %}{% endfor %}

{% if s.errors %}<h2>エラー <span class="en">Errors (retried on the next run)</span></h2>
<table><tr><th class="l">model</th><th class="l">task</th><th class="l">item</th><th class="l">message</th></tr>
{% for e in s.errors %}<tr><td class="l">{{ e.model }}</td><td class="l">{{ e.task }}</td><td class="l">{{ e.item_id }}</td><td class="l">{{ e.message }}</td></tr>{% endfor %}</table>{% endif %}

<h2>実行環境 <span class="en">Environment</span></h2>
<table>
<tr><th class="l">sekisho</th><td class="l">{{ s.environment.sekisho }}</td></tr>
<tr><th class="l">CPU</th><td class="l">{{ s.environment.cpu }} · {{ s.environment.cores }} コア cores</td></tr>
<tr><th class="l">メモリ <span class="en">memory</span></th><td class="l">{{ s.environment.memory_gb }} GB</td></tr>
<tr><th class="l">OS</th><td class="l">{{ s.environment.os }}</td></tr>
<tr><th class="l">Python</th><td class="l">{{ s.environment.python }}</td></tr>
<tr><th class="l">スイート <span class="en">suite</span></th><td class="l">{{ s.suite.name }} · {{ s.suite.hash }}</td></tr>
{% for r in s.runs %}<tr><th class="l">実行 <span class="en">run</span> {{ loop.index }}</th><td class="l">{{ r.started }} · models {{ r.models|join(", ") }} · tasks {{ r.tasks|join(", ") }}{% if r.limit %} · --limit {{ r.limit }}{% endif %}</td></tr>{% endfor %}
<tr><th class="l">日時 <span class="en">date</span></th><td class="l">{{ s.environment.date }}</td></tr>
{% for m, info in s.models.items() %}<tr><th class="l">{{ m }}</th><td class="l">{{ info.kind }} · {{ info.model|basename }}{% if info.version %} · {{ info.version }}{% endif %} · {{ "ローカル local" if info.local else "外部 external" }}</td></tr>{% endfor %}
</table>
</body></html>
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _basename(value: str) -> str:
    """A model file or URL without its folder or scheme: the report names models, it does not
    link to them (and stays free of URLs)."""
    value = value.split("://", 1)[-1]
    return value.rsplit("/", 1)[-1] if "/" in value and not value.endswith("/") else value


def render_html(s: dict[str, Any]) -> str:
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(s["models"])}
    label = lambda name: f"{METRICS[name].label_ja} / {METRICS[name].label_en}"  # noqa: E731
    task_charts, task_metrics = {}, {}
    for t in s["tasks"]:
        names: list[str] = []
        for m in s["task_ranking"][t["id"]]:
            names += [n for n in s["scores"][m][t["id"]] if n not in names]
        task_metrics[t["id"]] = sorted(names, key=lambda n: (n != t["primary"], list(METRICS).index(n)))
        rows = []
        for m in s["task_ranking"][t["id"]]:
            c = s["scores"][m][t["id"]][t["primary"]]
            lo, hi = (x if x is not None else float("nan") for x in c["ci"])
            rows.append((m, c["mean"], lo, hi, colours[m]))
        task_charts[t["id"]] = bar_chart(rows, label=label(t["primary"])) if rows else ""
    scored = [o for o in s["overall"] if o["score"] is not None]
    n_tasks = len(s["tasks"])

    def points(key: str) -> list[tuple[str, float, float, str, bool]]:
        return [(o["model"] if o["tasks"] == n_tasks else f'{o["model"]} ({o["tasks"]}/{n_tasks})',
                 s["performance"][o["model"]][key] or 0.0, o["score"], colours[o["model"]], o["tasks"] == n_tasks)
                for o in scored]

    energy_labels: dict[str, list[str]] = {}
    for m, p in s["performance"].items():
        energy_labels.setdefault(p["energy_label"], []).append(m)
    estimate = any(p["energy_is_estimate"] for p in s["performance"].values())
    env = Environment(autoescape=True)
    env.filters["basename"] = _basename
    return env.from_string(_TEMPLATE).render(
        s=s, fmt=_fmt, metric_label=label,
        energy_chart=scatter(points("energy_per_item_j"), x_label="エネルギー J/問 (energy per item)" + (" — 推定 estimate" if estimate else ""),
                             y_label="総合 overall"),
        latency_chart=scatter(points("latency_p50_s"), x_label="遅延 p50 秒 (latency p50, s)", y_label="総合 overall"),
        task_charts=task_charts, task_metrics=task_metrics, energy_labels=energy_labels,
    )


def write_report(store: ResultStore, run_dir: Path) -> tuple[Path, Path]:
    """report.json and report.html, each written whole to a temporary file and renamed."""
    summary = summarize(store)
    html_path, json_path = run_dir / "report.html", run_dir / "report.json"
    for path, text in ((json_path, json.dumps(summary, ensure_ascii=False, indent=2)), (html_path, render_html(summary))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return html_path, json_path
