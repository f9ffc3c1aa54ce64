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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import icalendar
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import Config, ConfigError, default_state_path, load_config
from daemon.cycle import CycleReport, run_cycle
from daemon.model import UID_DOMAIN, RemoteReminder
from daemon.notify import Notifier, watchdog_interval
from daemon.reconcile import Action, Kind
from daemon.reminder_ical import HASH_PROP, KEY_PROP, add_timezones, ical_safe, new_calendar
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


def reminders_view(remote: Sequence[RemoteReminder], name: str, stamp: datetime,
                   tz: tzinfo) -> bytes:
    """Our reminders as the target holds them, as one VCALENDAR: the feed of a CalDAV or
    Google target. Pending and past ones alike, and a reminder the user moved or edited
    where they put it (the feed shows what the calendar shows)."""
    cal = new_calendar(name)
    cal.add("method", "PUBLISH")
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for item in sorted(remote, key=lambda r: r.key):
        if not item.cancelled:
            cal.add_component(remote_vevent(item, stamp, tz))
    add_timezones(cal)
    return cal.to_ical()


def remote_vevent(item: RemoteReminder, stamp: datetime, tz: tzinfo) -> icalendar.Event:
    """One held reminder as a VEVENT: our marks, its times, text and alarm as held."""
    event = icalendar.Event()
    event.add("uid", f"{item.key}@{UID_DOMAIN}")
    event.add("dtstamp", stamp.astimezone(UTC).replace(microsecond=0))
    event.add("dtstart", _portable(item.start, tz))
    if item.end is not None:
        event.add("dtend", _portable(item.end, tz))
    event.add("summary", ical_safe(item.summary, one_line=True))  # as edited: anyone's text
    if item.description:
        event.add("description", ical_safe(item.description))
    if item.categories:
        event.add("categories", list(item.categories))
    event.add("transp", "TRANSPARENT")
    event.add("class", "PRIVATE")
    event.add(KEY_PROP, item.key)
    if item.stored_hash:
        event.add(HASH_PROP, item.stored_hash)
    if item.alarm_before is not None:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("trigger", -item.alarm_before)
        alarm.add("description", ical_safe(item.summary, one_line=True) or "Client love")
        event.add_component(alarm)
    return event


def _portable(moment: datetime | date, tz: tzinfo) -> datetime | date:
    """A time every reader can place: a fixed offset or an unnamed zone becomes ``tz``
    (named zones get a VTIMEZONE; a bare offset has no TZID to describe it)."""
    if (isinstance(moment, datetime) and moment.tzinfo is not None
            and getattr(moment.tzinfo, "key", None) is None and moment.tzinfo is not UTC):
        return moment.astimezone(tz)
    return moment


def listing_digest(remote: Sequence[RemoteReminder]) -> str:
    """Changes exactly when what the feed would show changes (then DTSTAMP and ETag do)."""
    rows = sorted(repr((r.key, str(r.start), str(r.end), r.summary, r.description,
                        r.categories, r.alarm_before, r.stored_hash, r.cancelled))
                  for r in remote)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _verb(action: Action) -> str:
    if action.kind is Kind.UPDATE:
        return {"moved": "move", "refreshed": "refresh"}.get(action.why, "update")
    return action.kind.value


def cycle_line(report: CycleReport) -> str:
    """The one journal line per cycle: what it did, or that nothing changed."""
    clients = _plural(len(report.plans), "client")
    errors = _plural(len(report.errors), "error")
    if report.refused:
        return f"cycle: refused, nothing written, {clients}, {errors}"
    if not report.written and not report.errors:
        return f"cycle: nothing changed, {clients}"
    verbs = Counter(_verb(a) for a in report.written)
    detail = ", ".join(f"{n} {verb}" for verb, n in sorted(verbs.items()))
    written = _plural(len(report.written), "reminder") + " written"
    return f"cycle: {clients}, {written}{f' ({detail})' if detail else ''}, {errors}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
        self._feed_app: Any = None
        #: why the feed URL answers 503 (no usable token), for /healthz
        self._token_problem: str | None = None
        #: why nothing listens yet (the port is in use, say); retried after every cycle
        self._listen_problem: str | None = None
        self._bind_failures = 0
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
            self._retry_listen()
            problem = self.feed_problem()
            self.notifier.status(report.summary() + (f"; feed: {problem}" if problem else ""))
            log.info("%s", cycle_line(report))
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
        if report.target_error is not None or report.remote is None:
            return  # keep serving the last good view
        # rebuilt (with a new DTSTAMP, so a new ETag) only when a held reminder changed
        key = listing_digest(report.remote)
        if key != self._feed_key:
            body = reminders_view(report.remote, "Client love", report.now, self.config.tz)
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
        info["feed"] = self.feed_state()
        return ok, info

    def feed_problem(self) -> str | None:
        """What keeps the feed from serving, in words for STATUS= and /healthz."""
        if self._listen_problem:
            return self._listen_problem
        return self._token_problem

    def feed_state(self) -> str:
        if not self.config.feed.enabled:
            return "off (feed.enabled is false)"
        problem = self.feed_problem()
        if problem:
            return problem
        retried = (f" (listening since attempt {self._bind_failures + 1}; the address "
                   "was busy before)") if self._bind_failures else ""
        server = self._feed_server
        where = server.url if server is not None else self.config.feed.listen
        return f"serving on {where}{retried}"

    def _start_feed(self) -> None:
        """Serve /healthz and /metrics whatever happens, and the feed when a token is usable.

        Without a usable token the feed URL answers 503; when the address cannot be bound
        (the port is in use) every cycle tries again.
        """
        feed = self.config.feed
        if not feed.enabled:
            return
        from daemon.feed import make_app

        token = self._feed_token()
        self._feed_app = make_app(token, self.feed, self.health, self.metrics)
        self._listen()

    def _feed_token(self) -> str | None:
        """The feed token, or ``None`` with one log line saying what to do."""
        from daemon.credentials import CredentialError, resolve_secret
        from daemon.feed import check_token

        name = self.config.feed.token_credential
        try:
            return check_token(resolve_secret(name).reveal())
        except CredentialError as exc:
            problem = f"no feed token ({exc})"
        except ValueError as exc:  # the message describes the rule, never the token
            problem = f"credential {name} is not a usable feed token: {exc}"
        self._token_problem = ("feed URL disabled (no usable token); make one with "
                               "`clientlove feed token`, then restart")
        log.error("feed URL disabled: %s. Make a token with `clientlove feed token` and restart;"
                  " /healthz and /metrics are served meanwhile", problem)
        return None

    def _listen(self) -> None:
        from daemon.feed import FeedServer

        feed = self.config.feed
        try:
            server = FeedServer(self._feed_app, feed.host, feed.port)
            server.start()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if self._bind_failures == 0:
                log.error("cannot listen on %s (%s): no feed, /healthz or /metrics until it "
                          "can; cycles go on and each one tries again", feed.listen, reason)
            self._bind_failures += 1
            self._listen_problem = (f"cannot listen on {feed.listen} ({reason.lower()}); "
                                    "trying again every cycle")
            return
        self._feed_server = server
        self._listen_problem = None
        what = "/healthz and /metrics" if self._token_problem else "feed, /healthz and /metrics"
        log.info("%s on %s%s", what, server.url,
                 f" (after {self._bind_failures} failed attempts)" if self._bind_failures
                 else "")

    def _retry_listen(self) -> None:
        if self._feed_app is not None and self._feed_server is None and not self.stopping:
            self._listen()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def close(self) -> None:
        """Stop the feed server and close the state (the end of :meth:`run`, and of tests)."""
        with self._cycle_lock:
            self.state.close()
        if self._feed_server is not None:
            self._feed_server.stop()
            self._feed_server = None

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
            self.close()
            log.info("stopped")
        return 0
