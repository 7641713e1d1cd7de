"""Prometheus metrics at /metrics: HTTP requests, governed requests, tokens, guard actions, audit
append time, the upload queue.

Governed requests are counted from the audit log's own appends (an observer called once a record
is durable), so the metrics count exactly what the audit log holds and nothing a door forgot.
Labels name routes, purposes, statuses and backends, never a principal or any text.

Several worker processes (`sekisho serve --workers N`) share one view through prometheus_client's
multiprocess mode: `serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers
start, each writes its values there, and whichever worker is scraped sums them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

GOVERNED_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The *_created series double what a scrape carries and no dashboard of ours reads them.
disable_created_metrics()

AUDIT_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """One app's metrics. In a single process they live in the app's own registry (two apps in one
    process, as in tests, do not add up); in multiprocess mode values go to the shared folder."""

    def __init__(self, queue_depth: Callable[[], dict[str, int]]) -> None:
        self.shared = multiprocess()
        self.registry = None if self.shared else CollectorRegistry()
        r = {"registry": self.registry}
        self.http_requests = Counter("sekisho_http_requests_total", "HTTP requests by route and status",
                                     ["method", "route", "status"], **r)
        self.http_seconds = Histogram("sekisho_http_request_duration_seconds", "HTTP request latency by route",
                                      ["method", "route"], buckets=HTTP_SECONDS, **r)
        self.http_in_flight = Gauge("sekisho_http_requests_in_flight", "HTTP requests being served",
                                    multiprocess_mode="livesum", **r)
        self.governed = Counter("sekisho_governed_requests_total",
                                "Governed requests (every model call) by purpose, status and backend",
                                ["purpose", "status", "backend"], **r)
        self.governed_seconds = Histogram("sekisho_governed_request_duration_seconds",
                                          "Governed request time, retrieval to audit record",
                                          ["purpose", "backend"], buckets=GOVERNED_SECONDS, **r)
        self.tokens = Counter("sekisho_tokens_total", "Tokens sent to and produced by models",
                              ["backend", "direction"], **r)
        self.guard_actions = Counter("sekisho_guard_actions_total",
                                     "Guard actions: block, mask, review, route_local", ["action"], **r)
        self.audit_append_seconds = Histogram("sekisho_audit_append_duration_seconds",
                                              "Time for an audit record to become durable (group commit included)",
                                              buckets=AUDIT_SECONDS, **r)
        self.audit_records = Counter("sekisho_audit_records_total", "Audit records appended by kind", ["kind"], **r)
        self._queue = _QueueCollector(queue_depth)
        if self.registry is not None:
            self.registry.register(self._queue)

    # --- from the audit log ------------------------------------------------------------------------

    def observe_audit(self, kind: str, record: dict[str, Any], seconds: float) -> None:
        self.audit_append_seconds.observe(seconds)
        self.audit_records.labels(kind).inc()
        backend = record.get("backend")
        if not isinstance(backend, dict) or "status" not in record or "purpose" not in record:
            return  # not a governed request: a search, a key, a review decision...
        used = str(backend.get("used") or backend.get("requested") or "")
        status = str(record["status"])
        self.governed.labels(str(record["purpose"]), status, used).inc()
        if isinstance(record.get("duration_s"), int | float):
            self.governed_seconds.labels(str(record["purpose"]), used).observe(record["duration_s"])
        tokens = record.get("tokens") or {}
        for direction in ("prompt", "completion"):
            if tokens.get(direction):
                self.tokens.labels(used, direction).inc(tokens[direction])
        if status == "blocked":
            self.guard_actions.labels("block").inc()
        elif status == "held":
            self.guard_actions.labels("review").inc()
        if record.get("masked_values"):
            self.guard_actions.labels("mask").inc(len(record["masked_values"]))
        if backend.get("requested") and used and backend["requested"] != used:
            self.guard_actions.labels("route_local").inc()

    # --- HTTP --------------------------------------------------------------------------------------

    async def middleware(self, request: Request, call_next: Callable[[Request], Any]) -> Response:
        started = time.perf_counter()
        self.http_in_flight.inc()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            self.http_in_flight.dec()
            # The route's template (/api/documents/{doc_id}), not the path: one series per route.
            route = getattr(request.scope.get("route"), "path", None) or "unmatched"
            self.http_requests.labels(request.method, route, str(status)).inc()
            self.http_seconds.labels(request.method, route).observe(time.perf_counter() - started)

    def exposition(self) -> Response:
        if self.registry is not None:
            registry = self.registry
        else:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            registry.register(self._queue)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _QueueCollector:
    """The upload queue's depth, read from the shared database when scraped."""

    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("sekisho_ingest_files", "Uploaded files waiting or being ingested",
                                   labels=["status"])
        try:
            counts = self.depth()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is down; /readyz says so
            return
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family

    def describe(self) -> list:
        return []  # collected at scrape time only
