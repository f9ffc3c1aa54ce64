"""Prometheus metrics of the service, in a registry of its own.

A private :class:`CollectorRegistry` (never the global one) keeps tests and several services in
one process from colliding, and keeps library default collectors out of our /metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

#: The provider label of the target (sources are labelled by their name).
TARGET = "target"


class Metrics:
    """The counters and gauges the service exports; fed once per cycle by :meth:`observe`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter("clientlove_cycles_total", "Cycles run.", registry=r)
        self.cycle_failures = Counter(
            "clientlove_cycle_failures_total",
            "Cycles in which a provider failed, per provider (a source name or 'target').",
            ["provider"], registry=r)
        self.writes = Counter("clientlove_writes_total", "Reminder writes done.", registry=r)
        self.refused = Counter(
            "clientlove_refused_cycles_total",
            "Cycles the mass-change guard stopped.", registry=r)
        self.last_success = Gauge(
            "clientlove_last_success_timestamp_seconds",
            "Unix time of the last cycle without errors (0: none yet).", registry=r)
        self.last_duration = Gauge(
            "clientlove_last_cycle_duration_seconds", "Duration of the last cycle.", registry=r)
        self.clients_due = Gauge(
            "clientlove_clients_due", "Clients with a reminder planned.", registry=r)
        self.clients_overdue = Gauge(
            "clientlove_clients_overdue", "Clients whose contact is overdue.", registry=r)
        self.clients = Gauge("clientlove_clients", "Clients configured.", registry=r)
        self.up = Gauge("clientlove_up", "1 while the service runs.", registry=r)
        self.up.set(1)

    def observe(self, report: Any, duration: float) -> None:
        """Record one cycle (a :class:`daemon.cycle.CycleReport` or anything shaped like it)."""
        self.cycles.inc()
        sources = list(getattr(report, "sources", None) or [])
        # Every known provider gets a series at 0, so rate() and alerts work before a failure.
        for source in sources:
            self.cycle_failures.labels(provider=source.name)
        self.cycle_failures.labels(provider=TARGET)
        for provider in sorted(failed_providers(report, sources)):
            self.cycle_failures.labels(provider=provider).inc()
        writes = int(getattr(report, "writes", 0) or 0)
        if writes > 0:
            self.writes.inc(writes)
        if getattr(report, "refused", None):
            self.refused.inc()
        if report.ok:
            self.last_success.set(report.now.timestamp())
        self.last_duration.set(max(0.0, float(duration)))
        plans = list(report.plans)
        self.clients.set(len(plans))
        self.clients_due.set(sum(1 for p in plans if p.reminder_day is not None))
        self.clients_overdue.set(sum(1 for p in plans if p.overdue))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def failed_providers(report: Any, sources: Iterable[Any] = ()) -> set[str]:
    """Providers that failed in this cycle: each counts once however many errors it had.

    Both the structured fields (``sources[].error``, ``target_error``) and the error lines
    (``"source NAME: ..."``, ``"target NAME: ..."``, e.g. a failed write) are looked at.
    """
    names = [s.name for s in sources]
    failed = {s.name for s in sources if getattr(s, "error", None)}
    if getattr(report, "target_error", None):
        failed.add(TARGET)
    for line in getattr(report, "errors", None) or []:
        if line.startswith("target "):
            failed.add(TARGET)
        elif line.startswith("source "):
            # Match known names first: a name may itself contain ": ".
            known = [n for n in names if line.startswith(f"source {n}: ")]
            if known:
                failed.add(max(known, key=len))
            else:
                name, sep, _ = line[len("source "):].partition(": ")
                if sep and name:
                    failed.add(name)
    return failed
