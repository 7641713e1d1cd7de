"""Any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp's server, vendor endpoints) over
httpx.

    [models.backends.vllm]
    kind = "openai"
    base_url = "http://gpu-01.internal:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env = "VLLM_API_KEY"     # the NAME of the variable; the key never sits in config
    local = true                     # declared by the operator: this server is on our premises
    timeout_s = 60
    options = { max_retries = 2 }

Locality (governance): a backend is *external* unless the operator declares `local = true`.
We deliberately do not infer locality from the URL, not even for 127.0.0.1: a loopback port can
be an SSH tunnel or a proxy that forwards to a vendor, and a wrong "local" would let the PII
policy send personal data off the premises. The declaration is the operator's, recorded in the
configuration and visible in `sekisho models` and in every audit record via `info()`.
For the same reason an API key is never sent in clear text: a key over plain http is refused
unless the host is loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from sekisho.config import BackendConfig
from sekisho.models.protocol import BackendError, Capability, ChatRequest, Completion, ModelInfo

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 8.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _api_base(base_url: str) -> str:
    """Accept both `http://host:8000` and `http://host:8000/v1` (what the openai SDK expects)."""
    url = base_url.rstrip("/")
    return url if urlsplit(url).path not in ("", "/") else url + "/v1"


def _error_text(body: Any) -> str:
    """The server's own one-line explanation of an error, whatever shape its JSON has."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return " ".join(str(error).split())[:200]


def _server_message(response: httpx.Response) -> str:
    try:
        return _error_text(response.json())
    except ValueError:
        return " ".join(response.text.split())[:200]


class OpenAIBackend:
    def __init__(self, name: str, config: BackendConfig):
        if not config.base_url:
            raise BackendError(f"backend {name!r}: kind 'openai' needs base_url = \"http://host:port/v1\"")
        if not config.model:
            raise BackendError(f"backend {name!r}: kind 'openai' needs model = \"<model id on the server>\"")
        if urlsplit(config.base_url).scheme not in ("http", "https"):
            raise BackendError(f"backend {name!r}: base_url {config.base_url!r} must start with http:// or https://")
        self.name = name
        self.config = config
        self.base = _api_base(config.base_url)
        self.max_retries = int(config.options.get("max_retries", 2))
        self.verify_model = bool(config.options.get("verify_model", True))
        self._model_checked = False
        self._tokenize_route: str | None = None  # discovered on first count_tokens
        self._lock = threading.Lock()
        timeout = httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0))
        # Connections kept to the server: as many requests in flight as the server is asked to take.
        self.max_connections = int(config.options.get("max_connections", 256))
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        self._client = httpx.Client(timeout=timeout, headers=self._headers(), limits=limits)
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def _headers(self) -> dict[str, str]:
        env = self.config.api_key_env
        if not env:
            return {}
        key = os.environ.get(env)
        if not key:
            raise BackendError(f"backend {self.name!r}: environment variable {env} (api_key_env) is not set")
        parts = urlsplit(self.base)
        if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
            raise BackendError(
                f"backend {self.name!r}: refusing to send the API key over plain http to {parts.hostname}; use https"
            )
        return {"Authorization": f"Bearer {key}"}

    # --- transport -----------------------------------------------------------------------

    def _describe(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"backend {self.name!r}: {self.base} timed out after {self.config.timeout_s:g} s"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"backend {self.name!r}: cannot reach {self.base}: {reason}"

    @contextmanager
    def _request(self, method: str, path: str, *, json_body: Any = None, stream: bool = False):
        """One HTTP exchange with bounded retries (see `_retry_after`)."""
        url = self.base + path
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.send(self._client.build_request(method, url, json=json_body), stream=stream)
            except httpx.HTTPError as exc:
                time.sleep(self._retry_after(attempt, exc=exc))
                continue
            if (delay := self._retry_after(attempt, response=response)) is not None:
                response.close()
                time.sleep(delay)
                continue
            try:
                yield response
            except httpx.HTTPError as exc:  # raised while reading a streamed body
                raise BackendError(self._describe(exc)) from None
            finally:
                response.close()
            return

    @asynccontextmanager
    async def _arequest(self, method: str, path: str, *, json_body: Any = None, stream: bool = False):
        """`_request` on the async client, for callers on an event loop."""
        client = self._async_client()
        url = self.base + path
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.send(client.build_request(method, url, json=json_body), stream=stream)
            except httpx.HTTPError as exc:
                await asyncio.sleep(self._retry_after(attempt, exc=exc))
                continue
            if (delay := self._retry_after(attempt, response=response)) is not None:
                await response.aclose()
                await asyncio.sleep(delay)
                continue
            try:
                yield response
            except httpx.HTTPError as exc:
                raise BackendError(self._describe(exc)) from None
            finally:
                await response.aclose()
            return

    def _retry_after(self, attempt: int, *, response: httpx.Response | None = None,
                     exc: httpx.HTTPError | None = None) -> float | None:
        """Seconds to wait before trying again, None when `response` is the answer, BackendError
        when the exchange failed for good. Connect errors, 429 and 5xx are retried with exponential
        backoff (429 honours Retry-After); other 4xx are the caller's mistake and read timeouts are
        not retried, so a slow server costs at most one timeout."""
        last = attempt == self.max_retries
        if exc is not None:
            if last or not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                raise BackendError(self._describe(exc)) from None
            return min(_MAX_BACKOFF_S, 0.5 * 2**attempt)
        if response is not None and response.status_code in _RETRY_STATUSES and not last:
            return self._backoff(response, attempt)
        return None

    def _async_client(self) -> httpx.AsyncClient:
        """The async client of the running event loop (its pooled connections belong to that loop)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            self._aclient = httpx.AsyncClient(timeout=self._client.timeout, headers=self._client.headers,
                                              limits=httpx.Limits(max_connections=self.max_connections,
                                                                  max_keepalive_connections=self.max_connections))
            self._aclient_loop = loop
        return self._aclient

    @staticmethod
    def _backoff(response: httpx.Response, attempt: int) -> float:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            return min(_MAX_BACKOFF_S, float(retry_after))
        return min(_MAX_BACKOFF_S, 0.5 * 2**attempt)

    def _raise_for_status(self, response: httpx.Response, *, explain_model: bool = True) -> None:
        if response.status_code < 400:
            return
        response.read()
        status = response.status_code
        if status in (401, 403):
            raise BackendError(f"backend {self.name!r}: {self.base} rejected the credentials (HTTP {status})")
        if explain_model and (status == 404 or "model" in _server_message(response).lower()):
            self._check_model()  # turns "model not found" into a list of what the server offers
        raise BackendError(f"backend {self.name!r}: HTTP {status} from {self.base}: {_server_message(response)}")

    # --- model verification --------------------------------------------------------------

    def server_models(self) -> list[str]:
        with self._request("GET", "/models") as response:
            if response.status_code == 404:
                return []  # the server does not list models; nothing to verify against
            response.read()
            self._raise_for_status(response, explain_model=False)
            try:
                return [str(m["id"]) for m in response.json().get("data", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise BackendError(f"backend {self.name!r}: {self.base}/models did not return an OpenAI model list") from None

    def _check_model(self) -> None:
        offered = self.server_models()
        if offered and self.config.model not in offered:
            raise BackendError(
                f"backend {self.name!r}: model {self.config.model!r} is not offered by {self.base}; "
                f"it offers: {', '.join(offered)}"
            )
        self._model_checked = True

    async def _aensure_model(self) -> None:
        # Once per backend, off the event loop (the sync client): later calls see the flag.
        if self.verify_model and not self._model_checked:
            await asyncio.to_thread(self._ensure_model)

    def _ensure_model(self) -> None:
        # Some servers (llama.cpp's among them) answer with whatever model they have loaded when
        # asked for a name they do not know; checking once up front keeps the audit's model name true.
        if self.verify_model and not self._model_checked:
            with self._lock:
                if not self._model_checked:
                    self._check_model()

    # --- Backend protocol ----------------------------------------------------------------

    def info(self) -> ModelInfo:
        declared = self.config.local is True
        return ModelInfo(
            name=self.name,
            kind="openai",
            model=self.config.model,
            local=declared,
            extra={
                "base_url": self.base,
                "locality": "declared local in configuration" if declared else "external (not declared local)",
            },
            capabilities=frozenset({Capability.CONCURRENT, Capability.ASYNC, Capability.GENERATE}),
        )

    def check(self) -> None:
        self._check_model()

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": stream,
        }
        if request.stop:
            body["stop"] = request.stop
        if "seed" in self.config.options:
            body["seed"] = int(self.config.options["seed"])
        return body

    def complete(self, request: ChatRequest) -> Completion:
        self._ensure_model()
        started = time.perf_counter()
        with self._request("POST", "/chat/completions", json_body=self._body(request, stream=False)) as response:
            response.read()
            self._raise_for_status(response)
            return self._completion(response, started)

    async def acomplete(self, request: ChatRequest) -> Completion:
        await self._aensure_model()
        started = time.perf_counter()
        async with self._arequest("POST", "/chat/completions", json_body=self._body(request, stream=False)) as response:
            await response.aread()
            # Not explained with the server's model list here: that lookup is a blocking call.
            self._raise_for_status(response, explain_model=False)
            return self._completion(response, started)

    def _completion(self, response: httpx.Response, started: float) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"backend {self.name!r}: {self.base} returned a malformed chat completion") from None
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            model=str(data.get("model") or self.config.model),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            latency_s=time.perf_counter() - started,
        )

    def stream(self, request: ChatRequest) -> Iterator[str]:
        self._ensure_model()
        with self._request("POST", "/chat/completions", json_body=self._body(request, stream=True), stream=True) as response:
            self._raise_for_status(response)
            for line in response.iter_lines():
                piece = self._stream_event(line)
                if piece is None:
                    return
                yield from piece

    async def astream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Closing this iterator closes the HTTP response, which cancels the generation on servers
        that stop when their client goes (vLLM, llama.cpp, Ollama)."""
        await self._aensure_model()
        async with self._arequest("POST", "/chat/completions", json_body=self._body(request, stream=True),
                                  stream=True) as response:
            if response.status_code >= 400:
                await response.aread()
            self._raise_for_status(response, explain_model=False)
            async for line in response.aiter_lines():
                piece = self._stream_event(line)
                if piece is None:
                    return
                for text in piece:
                    yield text

    def _stream_event(self, line: str) -> list[str] | None:
        """The text pieces of one SSE line ([] for comments and keep-alives), None at [DONE]."""
        if not line.startswith("data:"):
            return []  # SSE comments, event names, keep-alives
        payload = line[5:].strip()
        if payload == "[DONE]":
            return None
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise BackendError(f"backend {self.name!r}: {self.base} sent a malformed stream event") from None
        if "error" in chunk:
            raise BackendError(f"backend {self.name!r}: stream error from {self.base}: {_error_text(chunk)}")
        return [p for choice in chunk.get("choices") or () if (p := (choice.get("delta") or {}).get("content"))]

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer where it exposes one (llama-cpp-python `/extras/tokenize`,
        vLLM and llama.cpp `/tokenize`); otherwise an estimate of one token per character, which
        errs high for Japanese on current tokenizers (safe for context budgeting)."""
        root = self.base.removesuffix("/v1")
        routes = [self._tokenize_route] if self._tokenize_route else ["/extras/tokenize", "/tokenize"]
        for route in routes:
            if route == "estimate":
                break
            body = {"input": text, "prompt": text, "content": text, "model": self.config.model}
            try:
                response = self._client.post(root + route, json=body)
            except httpx.HTTPError as exc:
                raise BackendError(self._describe(exc)) from None
            if response.status_code == 200:
                try:
                    tokens = response.json()["tokens"]
                except (ValueError, KeyError, TypeError):
                    continue
                self._tokenize_route = route
                return len(tokens)
        self._tokenize_route = "estimate"
        return len(text)

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

