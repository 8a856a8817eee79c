"""Prometheus metrics: requests, latency, decisions by outcome, the policy file's reloads.

Under gunicorn (`multiproc_dir`, api/http/server.py) every worker writes its values to files in one
folder and /metrics sums them (prometheus_client's multiprocess mode): a scrape sees the whole service,
whichever worker answers it. Otherwise (tests, `serve --dev`) the values are this process's.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class Metrics:
    def __init__(self, multiproc_dir: str | None = None):
        self.multiproc_dir = multiproc_dir
        if multiproc_dir:
            # the master imported prometheus_client before the folder existed: values of this process go to files
            values.ValueClass = values.MultiProcessValue()
        self.registry = CollectorRegistry()
        self._database_collectors: list = []  # read the database at a scrape: the same in every worker
        self.requests = Counter(
            "creditctl_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "creditctl_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.decisions = Counter(
            "creditctl_decisions_total", "decisions recorded", ["kind", "outcome"], registry=self.registry
        )
        self.policy_reload_failures = Counter(
            "creditctl_policy_reload_failures_total",
            "policy file loads (start or SIGHUP) refused: the stored active version kept serving",
            registry=self.registry,
        )
        # 0 while any live worker runs without its policy file (it failed to compile); 1 when every one loaded it
        self.policy_file_valid = Gauge(
            "creditctl_policy_file_valid",
            "1 when the policy file loaded, 0 when it failed",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    def observe(self, method, route, status, seconds):
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def decision(self, kind, outcome):
        self.decisions.labels(kind, outcome or "none").inc()

    def watch_outbox(self, read) -> None:
        """Outbox counters read from the database at each scrape (`read()`: api.service.deliveries.counters),
        so they count what every worker process sent, not only this one."""
        collector = _OutboxCollector(read)
        self._database_collectors.append(collector)
        self.registry.register(collector)

    def policy_file(self, valid: bool, first_failure: bool = False) -> None:
        self.policy_file_valid.set(1 if valid else 0)
        if not valid and first_failure:
            self.policy_reload_failures.inc()

    def render(self) -> bytes:
        if self.multiproc_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
            for collector in self._database_collectors:  # counted once, not summed over the workers' files
                registry.register(collector)
            return generate_latest(registry)
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
        yield CounterMetricFamily(
            "creditctl_outbox_failed", "delivery attempts that failed", value=counts["failed_attempts"]
        )
        yield CounterMetricFamily(
            "creditctl_outbox_dead",
            "messages given up on (dead letters, requeued or not)",
            value=counts.get("dead_total", by_status.get("dead", 0)),
        )
        # a stuck outbox: the oldest message not yet sent (0: none waits), and the dead letters waiting for a person
        yield GaugeMetricFamily(
            "creditctl_outbox_oldest_queued_age_seconds",
            "age of the oldest message not sent yet (queued, sending, failed awaiting a retry)",
            value=counts.get("oldest_queued_age_seconds") or 0,
        )
        yield GaugeMetricFamily(
            "creditctl_outbox_dead_letters",
            "dead letters now (requeued ones leave it)",
            value=counts.get("dead_letters", 0),
        )

    def describe(self):
        return []  # no description at registration: collect() reads the database, only at a scrape
