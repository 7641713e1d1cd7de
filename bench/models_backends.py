"""Model backend speed: the same GGUF in-process (llama.cpp backend) and behind llama-cpp-python's
OpenAI-compatible server (openai backend), measured in one run so the figures compare as ratios.

    python bench/models_backends.py [--model qwen05b|qwen15b|gemma270m|PATH.gguf] [--runs 5]

Prints per-backend decode speed, time to first token when the prompt is already cached (the
stream repeats the completion's prompt), the HTTP overhead ratio, and the time of one 5-choice
`choice_logprobs` call, with the machine's load average (the figures mean little without it).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sekisho.config import BackendConfig
from sekisho.models import ChatRequest, Message
from sekisho.models.llamacpp import LlamaCppBackend
from sekisho.models.openai_http import OpenAIBackend

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "日本の四季について、それぞれの特徴を三文ずつ説明してください。"
QUESTION = "雨の日に差すものはどれですか？"
CHOICES = ["傘", "帽子", "手袋", "眼鏡", "靴"]


def gguf_path(name: str) -> Path:
    if name.endswith(".gguf"):
        return Path(name)
    spec = importlib.util.spec_from_file_location("gguf_models", ROOT / "scripts" / "gguf_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module.assemble(name)


def measure(backend, runs: int, max_tokens: int) -> dict[str, float]:
    request = ChatRequest(messages=[Message("user", PROMPT)], max_tokens=max_tokens)
    backend.complete(ChatRequest(messages=[Message("user", "こんにちは")], max_tokens=2))  # warm up
    decode, first = [], []
    for _ in range(runs):
        started = time.perf_counter()
        completion = backend.complete(request)
        elapsed = time.perf_counter() - started
        decode.append(completion.completion_tokens / elapsed)
        started = time.perf_counter()
        stream = backend.stream(request)
        next(stream)
        first.append(time.perf_counter() - started)
        for _ in stream:
            pass
    return {"tokens_per_s": statistics.median(decode), "first_token_s": statistics.median(first)}


def start_server(path: Path, n_ctx: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", "bench",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--seed", "42"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("llama_cpp.server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen05b")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    path = gguf_path(args.model)
    n_ctx = 2048

    config = BackendConfig(kind="llama.cpp", model=str(path), context_tokens=n_ctx)
    started = time.perf_counter()
    local = LlamaCppBackend("bench", config, path)
    local.check()
    load_s = time.perf_counter() - started
    in_process = measure(local, args.runs, args.max_tokens)
    mc_request = ChatRequest(messages=[Message("user", QUESTION)])
    started = time.perf_counter()
    for _ in range(args.runs):
        local.choice_logprobs(mc_request, CHOICES)
    choice_s = (time.perf_counter() - started) / args.runs

    server, url = start_server(path, n_ctx)
    try:
        http = measure(OpenAIBackend("bench-http", BackendConfig(kind="openai", base_url=url, model="bench")),
                       args.runs, args.max_tokens)
    finally:
        server.terminate()
        server.wait(timeout=30)

    result = {
        "model": path.name,
        "load_s": round(load_s, 2),
        "in_process_tokens_per_s": round(in_process["tokens_per_s"], 1),
        "in_process_first_token_cached_prompt_s": round(in_process["first_token_s"], 3),
        "http_tokens_per_s": round(http["tokens_per_s"], 1),
        "http_first_token_cached_prompt_s": round(http["first_token_s"], 3),
        "http_over_in_process_time_ratio": round(in_process["tokens_per_s"] / http["tokens_per_s"], 3),
        "choice_logprobs_5_choices_s": round(choice_s, 3),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "PASSIVE (sekisho default)"),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "runs": args.runs,
        "max_tokens": args.max_tokens,
    }
    for key, value in result.items():
        print(f"{key:36} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
