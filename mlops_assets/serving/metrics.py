"""The gateway's Prometheus metrics, one registry per gateway so that several gateways share a process cleanly.

Requests by model version and outcome, rows predicted, latency as a histogram (``_bucket``/``_sum``/``_count``)
and the model calls the batcher made (fewer than requests when it merges them), plus the standard process and
platform collectors. ``prometheus-client`` writes the exposition format.

With several worker processes (``mlops serve --workers N``) a scrape reaches one worker, so the counts live in
prometheus-client's multiprocess files (``shared_dir``) and every scrape sums all workers' counts, those of
workers that have exited included; the process and platform collectors, which would describe one worker only,
are left out then.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds


class Metrics:
    """Counters and latency histograms per model version, counted in this process or, with ``shared_dir``, in
    the files all workers share (the module's docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, shared_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        if shared_dir:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=shared_dir)
        else:
            self._exposed = self.registry
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._requests = Counter("mlops_requests_total", "Scoring requests by model version and outcome.",
                                 ["model_version", "status"], registry=self.registry)
        self._rows = Counter("mlops_predicted_rows_total", "Rows predicted by model version.", ["model_version"],
                             registry=self.registry)
        self._latency = Histogram("mlops_request_latency_seconds",
                                  "Scoring latency of successful requests by model version.", ["model_version"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self._feedback = Counter("mlops_feedback_total",
                                 "Feedback requests by outcome: accepted, unknown_request (labels for request ids "
                                 "this gateway never served, refused with 404), unauthorized, bad_request.",
                                 ["outcome"], registry=self.registry)
        self._unknown_requests = Counter("mlops_feedback_unknown_request_ids_total",
                                         "Request ids in refused feedback that the gateway never served.",
                                         registry=self.registry)
        self._calls = Counter("mlops_predict_calls", "Model calls: fewer than requests when they are batched.",
                              registry=self.registry)
        self._children: dict[tuple[str, str], tuple[Counter, Histogram, Counter]] = {}

    def observe(self, version: str, status: str, seconds: float = 0.0, rows: int = 0) -> None:
        children = self._children.get((version, status))
        if children is None:  # label lookups cost more than the counting: once per version and outcome
            children = self._children[(version, status)] = (
                self._requests.labels(model_version=version, status=status),
                self._latency.labels(model_version=version), self._rows.labels(model_version=version))
        requests, latency, predicted_rows = children
        requests.inc()
        if status == "ok":
            latency.observe(seconds)
            predicted_rows.inc(rows)

    def predict_calls(self, calls: int) -> None:
        self._calls.inc(calls)

    def feedback(self, outcome: str, unknown_request_ids: int = 0) -> None:
        self._feedback.labels(outcome=outcome).inc()
        self._unknown_requests.inc(unknown_request_ids)

    def render(self) -> bytes:
        """The exposition text, served as ``content_type``."""
        return generate_latest(self._exposed)

