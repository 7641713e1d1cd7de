"""The llama.cpp backend running Qwen2.5-Coder-0.5B-Instruct in-process.

The 0.5B model is used rather than Gemma 3 270M because these tests need a chat template and
instruction following ("reply with the number"); it is the smallest instruct model available and
loads in about a second. The 1.5B model is kept for the answer benchmarks and the arena.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from sekisho.config import BackendConfig, Settings
from sekisho.models import BackendError, ChatRequest, Message, Passage, open_backend
from sekisho.models.llamacpp import LlamaCppBackend

N_CTX = 256  # small, so the truncation tests evaluate few tokens on a slow machine


def settings_for(path: Path, **overrides) -> Settings:
    settings = Settings()
    config = {"kind": "llama.cpp", "model": str(path), "context_tokens": N_CTX}
    settings.models.backends = {"qwen05b": BackendConfig(**{**config, **overrides})}
    settings.models.default = "qwen05b"
    return settings


@pytest.fixture(scope="module")
def qwen(gguf_qwen05b_path: Path) -> LlamaCppBackend:
    backend = open_backend(settings_for(gguf_qwen05b_path), "qwen05b")
    assert isinstance(backend, LlamaCppBackend)
    return backend


def ask(text: str, max_tokens: int = 16) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], max_tokens=max_tokens)


def test_complete_follows_a_simple_instruction(qwen):
    completion = qwen.complete(ask("What is 2 + 3? Reply with only the number."))
    assert completion.text.strip().startswith("5")
    assert completion.model == "qwen2.5-coder-0.5b-instruct.gguf"
    assert completion.prompt_tokens > 10  # the chat template's system turn is counted too
    assert 0 < completion.completion_tokens <= 16
    assert completion.latency_s > 0


def test_stream_yields_the_same_deterministic_text_as_complete(qwen):
    request = ask("日本の首都はどこですか？一言で答えてください。", max_tokens=12)
    pieces = list(qwen.stream(request))
    assert len(pieces) > 1
    assert "".join(pieces) == qwen.complete(request).text
    # Small Qwen models often write Japanese with simplified characters (东京): both are Tokyo.
    assert "東京" in "".join(pieces) or "东京" in "".join(pieces)


def test_count_tokens_uses_the_models_tokenizer(qwen):
    # Qwen2's byte-level BPE: "Hello" and " world" are one token each.
    assert qwen.count_tokens("Hello world") == 2
    assert qwen.count_tokens("") == 0
    japanese = "東京都庁は新宿区にあります。"
    assert 3 <= qwen.count_tokens(japanese) <= len(japanese)


def test_info_identifies_the_exact_weights(qwen, gguf_qwen05b_path):
    info = qwen.info()
    digest = hashlib.sha256(gguf_qwen05b_path.read_bytes()).hexdigest()
    assert (info.name, info.kind, info.local) == ("qwen05b", "llama.cpp", True)
    assert info.version == digest[:12]
    assert info.extra["n_ctx"] == str(N_CTX)


def test_choice_logprobs_prefer_the_obvious_answer(qwen):
    question = ask("日本の首都はどこですか？")
    scores = qwen.choice_logprobs(question, ["東京", "シドニー", "ナイロビ"])
    assert len(scores) == 3 and all(s < 0 for s in scores)
    assert scores.index(max(scores)) == 0
    english = qwen.choice_logprobs(ask("What colour is a clear daytime sky? Answer in one word."), ["Purple", "Blue"])
    assert english[1] > english[0]
    # Scoring leaves the model usable for generation.
    assert qwen.complete(ask("What is 2 + 3? Reply with only the number.")).text.strip().startswith("5")


def test_choice_logprobs_rejects_empty_choices(qwen):
    with pytest.raises(BackendError, match="non-empty choices"):
        qwen.choice_logprobs(ask("?"), ["yes", ""])


def test_overflowing_passages_are_cut_from_the_lowest_ranked_and_the_question_survives(qwen):
    filler = "この段落は本件とは関係のない一般的な説明であり、特定の事実を含まない。" * 5
    passages = [Passage(1, "c1", "合言葉", "社内の合言葉は「ひまわり」である。")] + [
        Passage(n, f"c{n}", f"資料{n}", f"{filler}（資料{n}）\n") for n in range(2, 5)
    ]
    question = "社内の合言葉は何ですか？合言葉だけを答えてください。"
    body = "\n\n".join(f"[{p.n}] {p.title}\n{p.text.strip()}" for p in passages)
    request = ChatRequest(
        messages=[Message("system", "資料に基づいて答えてください。"), Message("user", f"資料:\n{body}\n\n質問: {question}")],
        max_tokens=16,
        passages=passages,
        question=question,
    )
    assert qwen.count_tokens(body) > N_CTX  # the passages alone overflow the context
    seen = qwen.fit(request).messages
    assert seen[0] == request.messages[0]
    assert passages[0].text in seen[1].content and seen[1].content.endswith(question)
    assert "（資料4）" not in seen[1].content  # the lowest-ranked passage went first
    completion = qwen.complete(request)
    assert completion.prompt_tokens + 16 <= N_CTX
    assert "ひまわり" in completion.text


def test_a_long_message_without_passages_keeps_its_head_and_its_question(qwen):
    filler = "以下は長い前置きで、質問とは関係がありません。" * 25
    message = f"次の質問に答えてください。\n{filler}\n質問: What is 2 + 3? Reply with only the number."
    assert qwen.count_tokens(message) > N_CTX
    [seen] = qwen.fit(ask(message, max_tokens=8)).messages
    assert seen.content.startswith("次の質問に答えてください。") and "…" in seen.content
    completion = qwen.complete(ask(message, max_tokens=8))
    assert completion.prompt_tokens + 8 <= N_CTX
    assert completion.text.strip().startswith("5")


def test_a_conversation_that_cannot_fit_is_a_clear_error(qwen):
    turn = "これは長い会話の一部です。" * 10
    messages = [Message("user" if i % 2 == 0 else "assistant", turn) for i in range(8)]
    with pytest.raises(BackendError, match="'qwen05b': the prompt does not fit the context of 256 tokens"):
        qwen.complete(ChatRequest(messages=[*messages, Message("user", "要約して")], max_tokens=64))


def test_concurrent_requests_are_serialised_and_stay_deterministic(qwen):
    request = ask("What is 7 + 1? Reply with only the number.", max_tokens=4)
    expected = qwen.complete(request).text
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(qwen.complete(request).text)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected, expected]


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_bytes(b"this is not a model" * 100)
    backend = open_backend(settings_for(fake), "qwen05b")
    with pytest.raises(BackendError, match=r"'qwen05b': cannot load .*notes.gguf"):
        backend.check()


def test_missing_llama_cpp_says_what_to_install(gguf_qwen05b_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    backend = open_backend(settings_for(gguf_qwen05b_path, context_tokens=N_CTX + 1), "qwen05b")
    with pytest.raises(BackendError, match=r"install sekisho\[llama\]"):
        backend.check()


def place(source: Path, target: Path) -> None:
    """Put `source` at `target` atomically, as an operator's deployment would (a hard link when
    the filesystem allows, to avoid copying hundreds of MB)."""
    staged = target.with_suffix(".staged")
    try:
        os.link(source, staged)
    except OSError:
        shutil.copyfile(source, staged)
    os.replace(staged, target)


def test_replaced_weights_are_reloaded_and_reported(tmp_path, gguf_qwen05b_path, gguf_gemma270m_path):
    # Gemma 3 270M stands in for "the operator swapped the file": only its identity matters here.
    live = tmp_path / "model.gguf"
    place(gguf_qwen05b_path, live)
    backend = open_backend(settings_for(live), "qwen05b")
    text = "令和8年度の予算案は、市議会で審議された後に公表されます。"
    before = (backend.info().version, backend.count_tokens(text))
    place(gguf_gemma270m_path, live)  # same path, new weights
    after = (backend.info().version, backend.count_tokens(text))
    assert after[0] == hashlib.sha256(gguf_gemma270m_path.read_bytes()).hexdigest()[:12] != before[0]
    assert after[1] != before[1]  # a different tokenizer answered: the new file was loaded
