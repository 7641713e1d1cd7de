"""A loopback OpenAI-compatible chat server with a fixed delay and no limit on concurrency, standing
in for vLLM or a vendor endpoint in load benchmarks and tests (the real thing answers as many
requests at once as it is sent; this one too).

    python scripts/fake_openai_server.py --port 9001 --delay 1.0 [--model fake-1s] [--record FILE]

POST /v1/chat/completions answers after --delay seconds; with "stream": true the answer arrives in
--chunks pieces spread over the delay. The answer quotes the first sentence of the first numbered
passage with its citation ([1] ...) when the prompt has one (so grounded answers are supported),
else says 了解しました. GET /v1/models lists --model. With --record, every request body is appended
to FILE as one JSON line (what a backend received, for leak tests), and GET /stats tells how many
streams were started, finished and cancelled by their client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

_PASSAGE = re.compile(r"\[1\][^\n]*\n([^。！？\n]+[。！？]?)")


def answer_for(messages: list[dict]) -> str:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    found = _PASSAGE.search(text)
    return f"{found.group(1).strip()} [1]" if found else "了解しました。"


def build_app(delay: float, model: str, chunks: int, record: str | None) -> Starlette:
    stats = {"requests": 0, "streams": 0, "streams_finished": 0, "streams_cancelled": 0}

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "fake"}]})

    async def get_stats(request: Request) -> JSONResponse:
        return JSONResponse(stats)

    async def chat(request: Request):
        body = await request.json()
        stats["requests"] += 1
        if record:
            with open(record, "a", encoding="utf-8") as out:
                out.write(json.dumps(body, ensure_ascii=False) + "\n")
        text = answer_for(body.get("messages") or [])
        created, cid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        if not body.get("stream"):
            await asyncio.sleep(delay)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text), "total_tokens": 10 + len(text)}})
        stats["streams"] += 1
        size = max(1, -(-len(text) // chunks))
        pieces = [text[i:i + size] for i in range(0, len(text), size)]

        async def events():
            try:
                for piece in pieces:
                    await asyncio.sleep(delay / len(pieces))
                    chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
                stats["streams_finished"] += 1
            except asyncio.CancelledError:
                stats["streams_cancelled"] += 1
                raise

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/stats", get_stats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--model", default="fake")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--record")
    args = parser.parse_args()
    uvicorn.run(build_app(args.delay, args.model, args.chunks, args.record), host="127.0.0.1", port=args.port,
                log_level="warning", backlog=2048, timeout_keep_alive=30)


if __name__ == "__main__":
    main()
