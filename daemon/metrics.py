"""Prometheus metrics of the service, kept as plain numbers and rendered on request.

The service records a cycle in a few plain counters (:meth:`Metrics.observe`); only a scrape
of /metrics (or a look at :attr:`Metrics.registry`) imports ``prometheus_client`` and builds a
private :class:`CollectorRegistry` (never the global one), whose collector reads those numbers.
A daemon nobody scrapes never loads the library (it is about 10 MB of the idle daemon), and the
private registry keeps tests and several services in one process from colliding and library
default collectors out of our /metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: The provider label of the target (sources are labelled by their name).
TARGET = "target"


@dataclass(frozen=True, slots=True)
class _Series:
    """One exported metric: its name (without ``_total``), help text and kind."""

    name: str
    help: str


_CYCLES = _Series("clientlove_cycles", "Cycles run.")
_FAILURES = _Series(
    "clientlove_cycle_failures",
    "Cycles in which a provider failed, per provider (a source name or 'target').")
_WRITES = _Series("clientlove_writes", "Reminder writes done.")
_REFUSED = _Series("clientlove_refused_cycles", "Cycles the mass-change guard stopped.")
_LAST_SUCCESS = _Series("clientlove_last_success_timestamp_seconds",
                        "Unix time of the last cycle without errors (0: none yet).")
_LAST_DURATION = _Series("clientlove_last_cycle_duration_seconds",
                         "Duration of the last cycle.")
_DUE = _Series("clientlove_clients_due", "Clients with a reminder planned.")
_OVERDUE = _Series("clientlove_clients_overdue", "Clients whose contact is overdue.")
_CLIENTS = _Series("clientlove_clients", "Clients configured.")
_UP = _Series("clientlove_up", "1 while the service runs.")


@dataclass
class _Numbers:
    """What the metrics say, as plain numbers (guarded by :attr:`Metrics._lock`)."""

    cycles: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    refused: int = 0
    last_success: float = 0.0
    last_duration: float = 0.0
    clients_due: int = 0
    clients_overdue: int = 0
    clients: int = 0
    up: int = 1


class Metrics:
    """The counters and gauges the service exports; fed once per cycle by :meth:`observe`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = _Numbers()
        self._registry: Any = None

    def observe(self, report: Any, duration: float) -> None:
        """Record one cycle (a :class:`daemon.cycle.CycleReport` or anything shaped like it)."""
        sources = list(getattr(report, "sources", None) or [])
        failed = failed_providers(report, sources)
        plans = list(report.plans)
        writes = int(getattr(report, "writes", 0) or 0)
        with self._lock:
            n = self._numbers
            n.cycles += 1
            # Every known provider gets a series at 0, so rate() and alerts work before a failure.
            for name in [source.name for source in sources] + [TARGET]:
                n.failures.setdefault(name, 0)
            for name in failed:
                n.failures[name] = n.failures.get(name, 0) + 1
            if writes > 0:
                n.writes += writes
            if getattr(report, "refused", None):
                n.refused += 1
            if report.ok:
                n.last_success = report.now.timestamp()
            n.last_duration = max(0.0, float(duration))
            n.clients = len(plans)
            n.clients_due = sum(1 for p in plans if p.reminder_day is not None)
            n.clients_overdue = sum(1 for p in plans if p.overdue)

    def _families(self) -> Iterator[Any]:
        """The metric families, read from the numbers (called by the registry's collector)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            n = _Numbers(**{**vars(self._numbers), "failures": dict(self._numbers.failures)})
        yield CounterMetricFamily(_CYCLES.name, _CYCLES.help, value=n.cycles)
        failures = CounterMetricFamily(_FAILURES.name, _FAILURES.help, labels=["provider"])
        for name in sorted(n.failures):
            failures.add_metric([name], n.failures[name])
        yield failures
        yield CounterMetricFamily(_WRITES.name, _WRITES.help, value=n.writes)
        yield CounterMetricFamily(_REFUSED.name, _REFUSED.help, value=n.refused)
        gauges: list[tuple[_Series, float]] = [
            (_LAST_SUCCESS, n.last_success), (_LAST_DURATION, n.last_duration),
            (_DUE, n.clients_due), (_OVERDUE, n.clients_overdue), (_CLIENTS, n.clients),
            (_UP, n.up)]
        for series, value in gauges:
            yield GaugeMetricFamily(series.name, series.help, value=value)

    @property
    def registry(self) -> Any:
        """The private :class:`prometheus_client.CollectorRegistry` (built on first use)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry
            from prometheus_client.registry import Collector

            metrics = self

            class _Collector(Collector):
                def collect(self) -> Iterable[Any]:
                    return metrics._families()

            registry = CollectorRegistry(auto_describe=True)
            registry.register(_Collector())
            self._registry = registry
        return self._registry

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for /metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
