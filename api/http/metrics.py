"""Prometheus metrics: requests, latency, decisions by outcome (per process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


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

    def watch_outbox(self, read) -> None:
        """Outbox counters read from the database at each scrape (`read()`: api.service.deliveries.counters),
        so they count what every worker process sent, not only this one."""
        self.registry.register(_OutboxCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _OutboxCollector:
    def __init__(self, read):
        self.read = read

    def collect(self):
        counts = self.read()
        by_status = counts["by_status"]
        gauge = GaugeMetricFamily("creditctl_outbox_messages", "outbox messages by status", labels=["status"])
        for status, n in by_status.items():
            gauge.add_metric([status], n)
        yield gauge
        yield CounterMetricFamily("creditctl_outbox_sent", "messages sent", value=by_status.get("sent", 0))
        yield CounterMetricFamily("creditctl_outbox_failed", "delivery attempts that failed",
                                  value=counts["failed_attempts"])
        yield CounterMetricFamily("creditctl_outbox_dead", "messages given up on (dead letters)",
                                  value=by_status.get("dead", 0))

    def describe(self):
        return []          # no description at registration: collect() reads the database, only at a scrape
