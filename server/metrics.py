"""Prometheus metrics of one web process (its own registry, exposed on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The server's counters, built on a private registry so tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "chorus_http_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.http_latency = Histogram(
            "chorus_http_request_seconds", "HTTP request latency", ["route"],
            registry=self.registry,
        )  # fmt: skip
        self.ws_connections = Gauge(
            "chorus_ws_connections", "Open WebSocket connections", registry=self.registry
        )
        self.events_delivered = Counter(
            "chorus_ws_events_total", "Events queued to sockets", registry=self.registry
        )
        self.ws_slow_closed = Counter(
            "chorus_ws_slow_consumer_total", "Sockets closed as slow", registry=self.registry
        )
        self.hub_reconnects = Counter(
            "chorus_event_hub_reconnects_total", "EventHub pub/sub reconnects",
            registry=self.registry,
        )  # fmt: skip
