"""``clientlove run``: the cycle every ``service.interval``, the feed, and systemd's protocol.

Threads: the main thread waits for signals and reloads; APScheduler's worker runs the cycles
(one at a time, ``max_instances=1``, missed runs coalesced); a watchdog thread pings systemd
only while no cycle is stuck; waitress serves the feed. A cycle holds ``self._cycle_lock``,
so a shutdown waits for the write in flight and nothing else touches the state meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import Config, ConfigError, default_state_path, load_config
from daemon.cycle import CycleReport, run_cycle
from daemon.identity import reminder_hash
from daemon.notify import Notifier, watchdog_interval
from daemon.reconcile import Kind
from daemon.reminder_ical import add_timezones, new_calendar, to_vevent
from daemon.retry import DEFAULT_BACKOFF, Backoff
from daemon.state import State
from providers import build_source, build_target
from providers.base import Source, Target

log = logging.getLogger("clientlove.service")

#: a cycle running longer than this is stuck: the watchdog stops pinging (systemd restarts us)
STUCK_AFTER = timedelta(minutes=30)


@dataclass
class Providers:
    """Providers built once per config, so connections and resolved calendars are reused."""

    sources: list[Source]
    target: Target


def build_providers(config: Config, clock: Callable[[], datetime]) -> Providers:
    return Providers([build_source(s) for s in config.sources],
                     build_target(config.target, stamp=clock, tz=config.tz))


def reminders_view(report: CycleReport, name: str, stamp: datetime) -> bytes:
    """The pending reminders as one VCALENDAR: the feed of a CalDAV or Google target."""
    cal = new_calendar(name)
    cal.add("method", "PUBLISH")
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for action in sorted(report.actions, key=lambda a: a.key):
        if action.reminder is not None and action.kind in (Kind.CREATE, Kind.UPDATE, Kind.KEEP):
            cal.add_component(to_vevent(action.reminder, stamp))
    add_timezones(cal)
    return cal.to_ical()


class Service:
    """The long-running daemon around :func:`daemon.cycle.run_cycle`."""

    def __init__(
        self,
        config_path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifier: Notifier | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.config_path = config_path
        self.clock = clock
        self.backoff = backoff
        self.config: Config = load_config(config_path)  # ConfigError: the caller exits 78
        state_path = default_state_path(self.config)  # one per config: say which
        log.info("state: %s", state_path)
        self.state = State(state_path)
        self.notifier = notifier or Notifier.from_env()
        self.providers = build_providers(self.config, clock)
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self._cycle_lock = threading.Lock()
        self._cycle_started: float | None = None
        self.last_report: CycleReport | None = None
        self.last_success: datetime | None = None
        self.cycles = 0
        self._feed_doc: Any = None
        self._feed_key: str | None = None
        self._feed_server: Any = None
        from daemon.metrics import Metrics

        self.metrics = Metrics()
        self.scheduler = BackgroundScheduler(timezone=UTC)

    # -- the cycle ----------------------------------------------------------------------------
    def cycle(self) -> CycleReport | None:
        """One cycle; never raises (a failing provider lands in the report and the status)."""
        if self.stop_event.is_set():
            return None
        with self._cycle_lock:
            if self.stop_event.is_set():
                return None
            self._cycle_started = time.monotonic()
            started = time.perf_counter()
            try:
                config, providers = self.config, self.providers
                report = run_cycle(config, self.state, providers.sources, providers.target,
                                   self.clock(), stop=self.stop_event.is_set,
                                   backoff=self.backoff)
            except Exception:  # a bug must not take the daemon down: report it, go on
                log.exception("cycle failed")
                self.notifier.status("last cycle failed with an internal error; see the log")
                return None
            finally:
                self._cycle_started = None
            self.cycles += 1
            self.last_report = report
            if report.ok:
                self.last_success = report.now
            for warning in report.warnings:
                log.warning("%s", warning)
            for error in report.errors:
                log.error("%s", error)
            if report.refused:
                log.error("refused: %s", report.refused)
            self.metrics.observe(report, time.perf_counter() - started)
            self._update_feed(report)
            self.notifier.status(report.summary())
            log.info("cycle done: %s", report.summary())
            return report

    def stuck(self) -> bool:
        started = self._cycle_started
        return started is not None and time.monotonic() - started > STUCK_AFTER.total_seconds()

    # -- the feed -----------------------------------------------------------------------------
    def _update_feed(self, report: CycleReport) -> None:
        from daemon.feed import feed_doc

        target = self.config.target
        if target.type == "ics":
            try:
                stat = target.path.stat()
            except OSError:
                return
            key = f"{stat.st_mtime_ns}:{stat.st_size}"
            if key != self._feed_key:
                self._feed_doc = feed_doc(target.path.read_bytes(),
                                          datetime.fromtimestamp(stat.st_mtime, UTC))
                self._feed_key = key
            return
        if report.target_error is not None:
            return  # keep serving the last good view
        # rebuilt (with a new DTSTAMP, so a new ETag) only when a reminder changed
        key = hashlib.sha256(" ".join(sorted(
            f"{a.key}={reminder_hash(a.reminder)}" for a in report.actions
            if a.reminder is not None)).encode()).hexdigest()
        if key != self._feed_key:
            body = reminders_view(report, "Client love", report.now)
            self._feed_doc = feed_doc(body, report.now)
            self._feed_key = key

    def feed(self) -> Any:
        return self._feed_doc

    def health(self) -> tuple[bool, dict[str, Any]]:
        max_age = self.config.service.health_max_age.to_timedelta()
        now = self.clock()
        info: dict[str, Any] = {
            "cycles": self.cycles,
            "last_success": self.last_success.isoformat() if self.last_success else None,
        }
        report = self.last_report
        if report is not None:
            info["last_cycle"] = report.summary()
            info["errors"] = list(report.errors)
            if report.refused:
                info["refused"] = report.refused
        ok = self.last_success is not None and now - self.last_success <= max_age
        info["status"] = "ok" if ok else ("starting" if report is None else "failing")
        return ok, info

    def _start_feed(self) -> None:
        feed = self.config.feed
        if not feed.enabled:
            return
        from daemon.credentials import CredentialError, resolve_secret
        from daemon.feed import FeedServer, make_app

        try:
            token = resolve_secret(feed.token_credential).reveal()
        except CredentialError as exc:
            log.error("feed disabled: %s", exc)
            return
        try:
            app = make_app(token, self.feed, self.health, self.metrics)
        except ValueError as exc:  # the message describes the rule, never the token
            log.error("feed disabled: credential %s is not a usable token: %s",
                      feed.token_credential, exc)
            return
        try:
            self._feed_server = FeedServer(app, feed.host, feed.port)
            self._feed_server.start()
        except OSError as exc:
            log.error("feed disabled: cannot listen on %s: %s", feed.listen, exc.strerror)
            self._feed_server = None
            return
        log.info("feed, /healthz and /metrics on http://%s", feed.listen)

    # -- reload, signals, the loop ------------------------------------------------------------
    def reload(self) -> bool:
        """Read the config again; a broken one is reported and the old one kept."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc)
            self.notifier.send("READY=1", "STATUS=reload refused: the new config is invalid; "
                               "running on the old one")
            return False
        with self._cycle_lock:
            self.config = config
            self.providers = build_providers(config, self.clock)
            self._feed_key = None
        self._schedule()
        log.info("config reloaded from %s", self.config_path)
        self.notifier.send("READY=1", "STATUS=config reloaded")
        return True

    def _schedule(self, first: datetime | None = None) -> None:
        service = self.config.service
        kwargs: dict[str, Any] = {"next_run_time": first} if first is not None else {}
        self.scheduler.add_job(
            self.cycle, "interval", id="cycle", replace_existing=True,
            seconds=service.interval.to_timedelta().total_seconds(),
            jitter=int(service.jitter.to_timedelta().total_seconds()) or None,
            max_instances=1, coalesce=True, misfire_grace_time=None, **kwargs)

    def _watchdog(self, every: float) -> None:
        while not self.stop_event.wait(every):
            if self.stuck():
                log.error("a cycle has run for over %s: not pinging the watchdog", STUCK_AFTER)
                continue
            self.notifier.watchdog()

    def install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping after the write in flight", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda *_: self.reload_event.set())

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        self.install_signals()
        self._start_feed()
        self._schedule(first=datetime.now(UTC))
        self.scheduler.start()
        every = watchdog_interval()
        if every:
            threading.Thread(target=self._watchdog, args=(every,), name="watchdog",
                             daemon=True).start()
        self.notifier.ready(f"running: {len(self.config.clients)} clients, first cycle now")
        log.info("clientlove running: %d sources, target %s, every %s",
                 len(self.config.sources), self.config.target.type, self.config.service.interval)
        try:
            while not self.stop_event.wait(0.5):
                if self.reload_event.is_set():
                    self.reload_event.clear()
                    self.reload()
        finally:
            self.notifier.stopping()
            self.stop_event.set()
            self.scheduler.shutdown(wait=True)  # the cycle in flight ends its current write
            with self._cycle_lock:
                self.state.close()
            if self._feed_server is not None:
                self._feed_server.stop()
            log.info("stopped")
        return 0
