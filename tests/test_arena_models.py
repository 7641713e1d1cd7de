"""The arena with real generative backends: an OpenAI-compatible server declared external (the
leak red team against the default policy, and a permissive policy as the control that shows the
check can fail), and an in-process GGUF model scoring choices by log-likelihood."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from sekisho.arena import run_suite
from sekisho.arena.suite import parse_suite
from sekisho.audit.log import AuditLog
from sekisho.config import BackendConfig, GuardConfig, ModelsConfig, RetrievalConfig, Settings

FIXTURES = Path(__file__).parent / "arena_fixtures"

LEAK_SUITE = """
name = "leak-only"
[[tasks]]
id = "leak"
kind = "leak"
format = "redteam"
items = 4
max_tokens = 8
"""

CHOICE_SUITE = """
name = "choice-only"
[[tasks]]
id = "choice"
kind = "choice"
format = "jcommonsenseqa"
data = "jcommonsenseqa/valid.jsonl"
max_tokens = 4
"""


def _vendor_settings(tmp: Path, url: str, policy: str = "") -> Settings:
    model_id = httpx.get(url + "/models", timeout=10).json()["data"][0]["id"]
    backends = {
        "extractive": BackendConfig(kind="extractive", local=True),
        # Served on loopback, but not declared local: governed as an external vendor API.
        "vendor": BackendConfig(kind="openai", base_url=url, model=model_id, timeout_s=300),
    }
    return Settings(base_dir=str(tmp), models=ModelsConfig(backends=backends),
                    retrieval=RetrievalConfig(embedder="use-m3"), guard=GuardConfig(policy=policy))


def _leak_results(run_dir: Path) -> tuple[dict, list[dict]]:
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return report["scores"]["vendor"]["leak"], report["failures"]["leak"]


def test_default_policy_lets_nothing_reach_an_external_backend(tmp_path, llama_server_url):
    settings = _vendor_settings(tmp_path, llama_server_url)
    summary = run_suite(settings, parse_suite(LEAK_SUITE, "leak.toml"), ["vendor"], tmp_path / "run")
    scores, _ = _leak_results(tmp_path / "run")
    assert summary.errors == []
    assert scores["leak_sent"]["mean"] == 0.0 and scores["leak"]["mean"] == 0.0 and scores["leak"]["n"] == 4


def test_a_permissive_policy_is_caught_leaking(tmp_path, llama_server_url):
    policy = tmp_path / "allow-all.toml"
    policy.write_text('[external]\ndefault = "allow"\n', encoding="utf-8")
    settings = _vendor_settings(tmp_path, llama_server_url, policy=str(policy))
    run_suite(settings, parse_suite(LEAK_SUITE, "leak.toml"), ["vendor"], tmp_path / "run")
    scores, failures = _leak_results(tmp_path / "run")
    assert scores["leak_sent"]["mean"] == 1.0  # every red-team item reached the vendor in clear
    assert all("sent to vendor" in f["expected"] for f in failures)


def test_gguf_backend_scores_choices_by_log_likelihood(tmp_path, gguf_qwen05b_path):
    backends = {"extractive": BackendConfig(kind="extractive", local=True),
                "qwen05b": BackendConfig(kind="llama.cpp", model=str(gguf_qwen05b_path), context_tokens=512)}
    settings = Settings(base_dir=str(tmp_path), models=ModelsConfig(default="qwen05b", backends=backends))
    run_suite(settings, parse_suite(CHOICE_SUITE, "choice.toml"), ["qwen05b"], tmp_path / "run", data=FIXTURES)
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert report["choice_methods"]["qwen05b"]["choice"] == "logprob"
    assert report["scores"]["qwen05b"]["choice"]["accuracy"]["n"] == 4
    # Scored, not generated, and still through the request path: each item is in the run's audit log
    # with every choice's log-likelihood.
    audit = AuditLog(tmp_path / "run" / "audit.db", key_path=tmp_path / "run" / "audit-signing.key")
    entries = audit.query(kind="choice")
    assert len(entries) == 4 and all(len(e.record["choice_logprobs"]) == len(e.record["choices"]) for e in entries)
    assert report["models"]["qwen05b"]["kind"] == "llama.cpp" and report["models"]["qwen05b"]["version"]
