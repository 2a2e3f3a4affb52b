"""Request metrics in the Prometheus text format, written by hand (no client library)."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hivemem.api.routing import route_template
from hivemem.memory import Memory

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and histograms of one process, plus gauges read from the store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # per route: bucket counts, sum, count
        self.watch_subscribers = 0
        #: The app's write limit (``api/shedding.py``), when it has one.
        self.write_gate: Any = None

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def watch_opened(self) -> None:
        with self._lock:
            self.watch_subscribers += 1

    def watch_closed(self) -> None:
        with self._lock:
            self.watch_subscribers -= 1

    def render(self, mem: Memory) -> str:
        """The exposition text."""
        status = mem.status()
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((r, list(h)) for r, h in self._latency.items())
            subscribers = self.watch_subscribers
        out = [
            "# HELP hivemem_requests_total HTTP requests by route, method and status.",
            "# TYPE hivemem_requests_total counter",
        ]
        for (route, method, code), n in requests:
            labels = _labels(route=route, method=method, status=str(code))
            out.append(f"hivemem_requests_total{labels} {n}")
        out += [
            "# HELP hivemem_request_seconds HTTP request duration by route.",
            "# TYPE hivemem_request_seconds histogram",
        ]
        for route, hist in latency:
            counts = (*hist[: len(BUCKETS)], hist[-1])
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=True):
                le = bound if isinstance(bound, str) else repr(bound)
                out.append(f"hivemem_request_seconds_bucket{_labels(route=route, le=le)} {count:g}")
            out.append(f"hivemem_request_seconds_sum{_labels(route=route)} {hist[-2]:.6f}")
            out.append(f"hivemem_request_seconds_count{_labels(route=route)} {hist[-1]:g}")
        gauges: list[tuple[str, str, Any]] = [
            ("hivemem_revision", "The latest committed revision.", status["revision"]),
            (
                "hivemem_index_lag",
                "Revisions the vector index is behind the log.",
                max(0, status["revision"] - status["index_revision"]),
            ),
            ("hivemem_watch_subscribers", "Open watch streams (SSE and WebSocket).", subscribers),
        ]
        gate = self.write_gate
        if gate is not None:
            gauges.append(
                ("hivemem_writes_in_flight", "Write requests running now.", gate.in_flight)
            )
            gauges.append(
                ("hivemem_writes_in_flight_limit", "The write limit (0: none).", gate.limit)
            )
            gauges.append(
                (
                    "hivemem_write_latency_average_seconds",
                    "Moving average of write latency (beyond the limit, writes run while "
                    "it is under the shed latency).",
                    round(gate.average, 6),
                )
            )
        for name, help_text, value in gauges:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        if gate is not None:
            out += [
                "# HELP hivemem_writes_shed_total Writes answered 503 + Retry-After at the limit.",
                "# TYPE hivemem_writes_shed_total counter",
                f"hivemem_writes_shed_total {gate.shed}",
            ]
        calls, texts = mem.write_embedding()
        out += [
            "# HELP hivemem_write_embed_calls_total Model calls made to embed written texts.",
            "# TYPE hivemem_write_embed_calls_total counter",
            f"hivemem_write_embed_calls_total {calls}",
            "# HELP hivemem_write_embed_texts_total Written texts embedded (shared calls).",
            "# TYPE hivemem_write_embed_texts_total counter",
            f"hivemem_write_embed_texts_total {texts}",
        ]
        out += _index_events(mem.index_events())
        return "\n".join(out) + "\n"


_EVENT_FAMILIES = (
    ("index_verify_failed", "hivemem_index_verify_failures_total",
     "Persisted vector indexes found unusable on open, by reason."),
    ("index_rebuild", "hivemem_index_rebuilds_total",
     "Vector index rebuilds from the log, by reason."),
    ("index_catch_up", "hivemem_index_catch_ups_total",
     "Catch-ups of the views from the log, by reason."),
    ("index_skip_vector", "hivemem_index_skipped_vectors_total",
     "Stored vectors left out of the index, by reason."),
)  # fmt: skip


def _index_events(events: dict[tuple[str, str], int]) -> list[str]:
    """Counter families of the store's view faults (each also logged once)."""
    out: list[str] = []
    for event, name, help_text in _EVENT_FAMILIES:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for (ev, reason), n in sorted(events.items()):
            if ev == event:
                out.append(f"{name}{_labels(reason=reason)} {n}")
    return out


def _labels(**labels: str) -> str:
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class MetricsMiddleware:
    """Times every HTTP request and counts it under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope) or "unmatched"
            self.metrics.observe(template, scope["method"], status, time.perf_counter() - start)
