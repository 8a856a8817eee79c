"""Prometheus metrics: requests, latency, decisions by outcome (per process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("creditctl_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("creditctl_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
                                 registry=self.registry)
        self.decisions = Counter("creditctl_decisions_total", "decisions recorded", ["kind", "outcome"],
                                 registry=self.registry)

    def observe(self, method, route, status, seconds):
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def decision(self, kind, outcome):
        self.decisions.labels(kind, outcome or "none").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
