"""Prometheus metrics (``prometheus-client``).

The API (``GET /metrics``, its own registry per app):

    neuroscribe_http_request_duration_seconds{method,route,status}   histogram: HTTP latency
    neuroscribe_queue_ready{stage}        messages waiting to be claimed (queue depth)
    neuroscribe_queue_pending{stage}      claimed, not yet acknowledged (running)
    neuroscribe_queue_delayed{stage}      retries waiting for their backoff
    neuroscribe_queue_lag_seconds{stage}  age of the oldest unfinished message of the stage
    neuroscribe_dead_letters{stage}       dead letters kept
    neuroscribe_jobs{status}              jobs known to the queue, by status

The workers (``neuroscribe worker STAGE --metrics-port PORT``, served on that port):

    neuroscribe_stage_duration_seconds{stage,outcome}  histogram: one delivery, claim to commit
    neuroscribe_stage_attempts_total{stage,attempt}    deliveries by attempt number (1, 2, 3...)
    neuroscribe_stage_outcomes_total{stage,outcome}    committed, failed, retried, cancelled, released
"""

from __future__ import annotations

import logging
import re
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["ApiMetrics", "WorkerMetrics", "CONTENT_TYPE_LATEST"]

log = logging.getLogger(__name__)
_ID = re.compile(r"/[0-9a-f]{32}(?=/|$)")
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)


class _QueueCollector:
    """Reads ``queue.stats()`` at each scrape (nothing is counted in between)."""

    def __init__(self, queue):
        self.queue = queue

    def describe(self):
        return []

    def collect(self):
        try:
            stats = self.queue.stats()
        except Exception as e:  # the queue is down: the HTTP metrics are still worth serving
            log.warning("metrics: queue stats unavailable: %r", e)
            return
        gauges = {name: GaugeMetricFamily(f"neuroscribe_{name}", doc, labels=["stage"]) for name, doc in (
            ("queue_ready", "Messages waiting to be claimed."), ("queue_pending", "Claimed, not yet acknowledged."),
            ("queue_delayed", "Retries waiting for their backoff."),
            ("queue_lag_seconds", "Age of the oldest unfinished message."), ("dead_letters", "Dead letters kept."))}
        for stage, s in sorted(stats["stages"].items()):
            for name, field in (("queue_ready", "ready"), ("queue_pending", "pending"), ("queue_delayed", "delayed"),
                                ("queue_lag_seconds", "oldest_s"), ("dead_letters", "dead")):
                gauges[name].add_metric([stage], float(s[field]))
        yield from gauges.values()
        jobs = GaugeMetricFamily("neuroscribe_jobs", "Jobs known to the queue, by status.", labels=["status"])
        for status, n in sorted(stats["jobs"].items()):
            jobs.add_metric([status], float(n))
        yield jobs


class ApiMetrics:
    """The API's registry; ``middleware(app)`` times every request (route templates, not paths)."""

    def __init__(self, queue):
        self.registry = CollectorRegistry()
        self.http = Histogram("neuroscribe_http_request_duration_seconds", "HTTP request latency.",
                              ["method", "route", "status"], registry=self.registry)
        self.registry.register(_QueueCollector(queue))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app):
        metrics = self

        async def timed(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            status = [500]
            t0 = time.perf_counter()

            async def send_status(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None) or _ID.sub("/{job_id}", scope["path"])
                metrics.http.labels(scope["method"], route, str(status[0])).observe(time.perf_counter() - t0)

        return timed


class WorkerMetrics:
    """A worker's counters; ``serve(port)`` exposes them over HTTP (a daemon thread)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.duration = Histogram("neuroscribe_stage_duration_seconds", "One delivery of a stage, claim to commit.",
                                  ["stage", "outcome"], buckets=_STAGE_BUCKETS, registry=self.registry)
        self.attempts = Counter("neuroscribe_stage_attempts", "Deliveries by attempt number.", ["stage", "attempt"],
                                registry=self.registry)
        self.outcomes = Counter("neuroscribe_stage_outcomes", "Deliveries by outcome.", ["stage", "outcome"],
                                registry=self.registry)

    def observe(self, stage: str, attempt: int, outcome: str, seconds: float) -> None:
        self.attempts.labels(stage, str(attempt)).inc()
        self.outcomes.labels(stage, outcome).inc()
        self.duration.labels(stage, outcome).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0"):
        from prometheus_client import start_http_server

        return start_http_server(port, addr=addr, registry=self.registry)
