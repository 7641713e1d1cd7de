"""A local GGUF model run in-process by llama.cpp (`pip install sekisho[llama]`).

    [models.backends.qwen]
    kind = "llama.cpp"
    model = "models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"   # relative to the config file
    context_tokens = 4096
    options = { n_threads = 4, seed = 42 }

The prompt is rendered with the chat template stored in the GGUF itself, so every instruct model
gets its own format without configuration. Decoding is deterministic: greedy at temperature 0
and a fixed seed otherwise, so an answer in the audit log can be reproduced.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sekisho.config import BackendConfig
from sekisho.models.protocol import BackendError, Capability, ChatRequest, Completion, Message, ModelInfo

_ELLIPSIS = "…"
DEFAULT_SEED = 42


def _llama_cpp() -> Any:
    # llama.cpp's OpenMP threads spin while waiting by default. sekisho shares its machine with
    # retrieval, embedding and the web server, and spinning threads starve them (and each other):
    # on a busy 2-core machine passive waiting measured 2-2.5x faster decoding. Operators who
    # dedicate a machine to the model can set OMP_WAIT_POLICY=ACTIVE themselves.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
        import llama_cpp.llama_chat_format
    except ImportError:
        raise BackendError(
            "the llama.cpp backend needs llama-cpp-python: install sekisho[llama] (pip install 'sekisho[llama]')"
        ) from None
    return llama_cpp


@dataclass
class _Loaded:
    """One model in memory, shared by every backend that names the same file and settings.
    llama.cpp contexts are not thread-safe, so every use holds `lock`."""

    llm: Any
    lock: threading.Lock
    formatter: Any  # Jinja2ChatFormatter from the GGUF's template, or None for base models


_LOADED: dict[tuple[str, int, int, int, int | None, int, int], _Loaded] = {}
_LOADED_LOCK = threading.Lock()
_SHA256: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a model file, computed once per (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def _load(path: Path, n_ctx: int, n_threads: int | None, n_batch: int, seed: int) -> _Loaded:
    resolved = path.resolve()
    st = resolved.stat()
    # The file's size and mtime are part of the key: when an operator replaces the weights, the
    # next request loads the new file, so info()'s sha256 always names the weights that answered.
    key = (str(resolved), st.st_size, st.st_mtime_ns, n_ctx, n_threads, n_batch, seed)
    with _LOADED_LOCK:  # loading takes seconds: never twice for the same file and settings
        if key in _LOADED:
            return _LOADED[key]
        for stale in [k for k in _LOADED if k[0] == key[0] and k[1:3] != key[1:3]]:
            old = _LOADED.pop(stale)
            with old.lock:
                old.llm.close()
        llama_cpp = _llama_cpp()
        try:
            llm = llama_cpp.Llama(
                model_path=str(resolved),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=n_batch,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError):
            raise BackendError(f"cannot load {path}: not a GGUF model llama.cpp can read, or not enough memory") from None
        formatter = None
        if template := llm.metadata.get("tokenizer.chat_template"):

            def token_text(token_id: int) -> str:
                return llm.detokenize([token_id], special=True).decode("utf-8", "replace") if token_id >= 0 else ""

            formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=token_text(llm.token_eos()), bos_token=token_text(llm.token_bos())
            )
        loaded = _Loaded(llm=llm, lock=threading.Lock(), formatter=formatter)
        _LOADED[key] = loaded
        return loaded


@atexit.register
def _close_all() -> None:
    # Free models while the interpreter is still whole: Llama.__del__ at shutdown runs after
    # llama_cpp's module globals are gone and prints a traceback.
    for loaded in _LOADED.values():
        loaded.llm.close()
    _LOADED.clear()


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(np.max(logits))
    return shifted - np.log(np.sum(np.exp(shifted)))


class LlamaCppBackend:
    def __init__(self, name: str, config: BackendConfig, path: Path):
        self.name = name
        self.config = config
        self.path = path
        self.n_ctx = int(config.context_tokens)
        threads = config.options.get("n_threads")
        self.n_threads = int(threads) if threads else None  # llama.cpp picks the physical cores
        self.n_batch = int(config.options.get("n_batch", 512))
        self.seed = int(config.options.get("seed", DEFAULT_SEED))

    def _model(self) -> _Loaded:
        if not self.path.is_file():
            raise BackendError(f"backend {self.name!r}: GGUF file not found: {self.path}")
        try:
            return _load(self.path, self.n_ctx, self.n_threads, self.n_batch, self.seed)
        except BackendError as exc:
            raise BackendError(f"backend {self.name!r}: {exc}") from None

    # --- prompt --------------------------------------------------------------------------

    @staticmethod
    def _render(model: _Loaded, messages: list[Message]) -> tuple[str, list[str]]:
        """Prompt text and extra stop strings for `messages`."""
        if model.formatter is None:
            # A base model has no chat template: a plain transcript ending where the reply goes.
            lines = [f"{m.role}: {m.content}" for m in messages]
            return "\n".join(lines) + "\nassistant:", ["\nuser:"]
        rendered = model.formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        return rendered.prompt, [s for s in rendered.stop if s]

    @staticmethod
    def _tokens(model: _Loaded, prompt: str) -> list[int]:
        # A chat template writes its own BOS; a plain transcript needs the tokenizer to add it.
        add_bos = model.formatter is None
        return model.llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def _fit(self, model: _Loaded, request: ChatRequest, reserve: int) -> tuple[list[Message], list[int], list[str]]:
        """Messages, their prompt tokens and stop strings, leaving `reserve` tokens of context for the reply. When the prompt is
        too long, the lowest-ranked retrieved passages are shortened first (then the middle of
        the longest message), so the instructions and the question always survive."""
        budget = self.n_ctx - reserve
        messages = list(request.messages)

        def encode(msgs: list[Message]) -> tuple[list[int], list[str]]:
            prompt, stop = self._render(model, msgs)
            return self._tokens(model, prompt), stop

        tokens, stop = encode(messages)
        if len(tokens) <= budget:
            return messages, tokens, stop

        def shrink(msgs: list[Message], index: int, old: str, keep_text) -> list[Message] | None:
            """Binary search for the longest prefix of `old` (inside message `index`) that fits."""
            content = msgs[index].content
            at = content.find(old)
            lo, hi, best = 0, len(old) - 1, None
            while lo <= hi:
                keep = (lo + hi) // 2
                candidate = list(msgs)
                candidate[index] = replace(msgs[index], content=content[:at] + keep_text(keep) + content[at + len(old):])
                if len(encode(candidate)[0]) <= budget:
                    best, lo = candidate, keep + 1
                else:
                    hi = keep - 1
            return best

        for passage in reversed(request.passages or []):
            text = passage.text.strip()  # prompts usually strip passages when laying them out
            index = next((i for i, m in enumerate(messages) if text and text in m.content), None)
            if index is None:
                continue
            fitted = shrink(messages, index, text, lambda keep, text=text: text[:keep] + _ELLIPSIS)
            if fitted is not None:
                return fitted, *encode(fitted)
            messages[index] = replace(messages[index], content=messages[index].content.replace(text, _ELLIPSIS, 1))

        longest = max(range(len(messages)), key=lambda i: len(messages[i].content))
        content = messages[longest].content
        head = len(content) // 3
        middle = content[head:]
        # Cut from just after the first third forward: keeps the head (instructions) and the
        # tail (where prompts put the question).
        fitted = shrink(messages, longest, middle, lambda keep, middle=middle: _ELLIPSIS + middle[len(middle) - keep:])
        if fitted is None:
            raise BackendError(
                f"backend {self.name!r}: the prompt does not fit the context of {self.n_ctx} tokens "
                f"with {reserve} reserved for the reply; raise context_tokens or shorten the question"
            )
        return fitted, *encode(fitted)

    def _reserve(self, request: ChatRequest) -> int:
        """Context kept free for the reply: what was asked for, but never more than half."""
        return max(1, min(request.max_tokens, self.n_ctx // 2))

    def _prepare(self, model: _Loaded, request: ChatRequest) -> tuple[list[int], list[str], int]:
        _, tokens, stop = self._fit(model, request, self._reserve(request))
        return tokens, stop + list(request.stop or []), min(request.max_tokens, self.n_ctx - len(tokens))

    def _completion_args(self, request: ChatRequest, tokens: list[int], stop: list[str], max_tokens: int) -> dict[str, Any]:
        return {
            "prompt": tokens,
            "max_tokens": max_tokens,
            "temperature": request.temperature,
            "seed": self.seed,
            "stop": stop or None,
        }

    def fit(self, request: ChatRequest) -> ChatRequest:
        """`request` as this model will see it: messages shortened to fit the context, if needed
        (for display, audit and tests of what the model was actually given)."""
        model = self._model()
        messages, _, _ = self._fit(model, request, self._reserve(request))
        return replace(request, messages=messages)

    # --- Backend protocol ----------------------------------------------------------------

    def info(self) -> ModelInfo:
        version = file_sha256(self.path)[:12] if self.path.is_file() else ""
        return ModelInfo(
            name=self.name,
            kind="llama.cpp",
            model=self.path.name,
            local=self.config.local is not False,  # in-process: nothing leaves the machine
            version=version,
            extra={"path": str(self.path), "n_ctx": str(self.n_ctx), "seed": str(self.seed)},
            capabilities=frozenset({Capability.SCORE_REPLIES, Capability.GENERATE}),
        )

    def check(self) -> None:
        self._model()

    def complete(self, request: ChatRequest) -> Completion:
        model = self._model()
        with model.lock:
            started = time.perf_counter()
            tokens, stop, max_tokens = self._prepare(model, request)
            result = model.llm.create_completion(**self._completion_args(request, tokens, stop, max_tokens))
            elapsed = time.perf_counter() - started
        choice = result["choices"][0]
        usage = result["usage"]
        return Completion(
            text=choice["text"],
            model=self.path.name,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            finish_reason=choice.get("finish_reason") or "stop",
            latency_s=elapsed,
        )

    def stream(self, request: ChatRequest) -> Iterator[str]:
        model = self._model()
        # The lock is held until the stream ends or the caller closes the generator.
        with model.lock:
            tokens, stop, max_tokens = self._prepare(model, request)
            chunks = model.llm.create_completion(stream=True, **self._completion_args(request, tokens, stop, max_tokens))
            for chunk in chunks:
                piece = chunk["choices"][0]["text"]
                if piece:
                    yield piece

    def count_tokens(self, text: str) -> int:
        # Tokenising reads only the vocabulary, never the context, so it takes no lock: a caller
        # counting tokens while it consumes this backend's stream must not deadlock.
        model = self._model()
        return len(model.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def choice_logprobs(self, request: ChatRequest, choices: list[str]) -> list[float]:
        """For each choice, the sum of the log-probabilities of its tokens as the reply to
        `request` (multiple-choice scoring without generation). The prompt is evaluated once and
        each choice continues from the same cached prefix."""
        if not choices or any(not c for c in choices):
            raise BackendError(f"backend {self.name!r}: choice_logprobs needs non-empty choices")
        model = self._model()
        llm = model.llm
        llama_cpp = _llama_cpp()
        with model.lock:
            encoded = [llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in choices]
            longest = max(len(e) for e in encoded)
            _, prompt, _ = self._fit(model, replace(request, max_tokens=longest), longest)
            n_vocab = llm.n_vocab()

            def last_logits() -> np.ndarray:
                # Without logits_all (which would cost n_ctx x n_vocab floats) llama.cpp keeps
                # the logits of the last evaluated token only: read them before the next eval.
                return np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(n_vocab,)).copy()

            llm.reset()
            llm.eval(prompt)
            after_prompt = last_logits()
            scores = []
            for choice_tokens in encoded:
                llm.n_tokens = len(prompt)  # rewind to the shared prefix; eval drops the stale cache
                logits, total = after_prompt, 0.0
                for i, token in enumerate(choice_tokens):
                    total += float(_log_softmax(logits)[token])
                    if i + 1 < len(choice_tokens):
                        llm.eval([token])
                        logits = last_logits()
                scores.append(total)
            llm.reset()
        return scores
