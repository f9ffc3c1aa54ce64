"""``clientlove run``: the cycle every ``service.interval``, the feed, and systemd's protocol.

Threads: the main thread waits for signals and reloads; APScheduler's worker starts the
cycles (``max_instances=1``, missed runs coalesced) and waits for each; a watchdog thread pings
systemd only while no cycle is stuck; waitress serves the feed.

A cycle runs in a worker thread of its own, because a Python thread cannot be killed: the
scheduler's thread waits for it at most ``service.cycle_timeout``. Past that the cycle is
*abandoned*: it is told to send no further write batch, the status line, /healthz and the log
say so, and the scheduler's thread is free. No new cycle starts while an abandoned one still
runs (never two cycles writing at once, never two threads on the state): the next ones are
skipped, and said so, until it returns. One still running after twice the timeout is *stuck*:
the watchdog stops pinging and systemd restarts the service (``WatchdogSec=``), long before
anything else would notice. A cycle holds ``self._cycle_lock`` while it touches the state, so
a shutdown waits for the write in flight.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import hashlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

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

#: a cycle still running this many times ``service.cycle_timeout`` after it started is stuck:
#: the watchdog stops pinging and systemd restarts the service
STUCK_FACTOR = 2
#: how long a stop waits for the cycle in flight to finish its write batch (TimeoutStopSec is 2min)
STOP_GRACE_S = 60.0
#: how long a stop waits for a cycle that is not writing (reading a source, say) to end
STOP_QUICK_S = 5.0


@dataclass
class Providers:
    """Providers built once per config, so connections and resolved calendars are reused."""

    sources: list[Source]
    target: Target


def build_providers(config: Config, clock: Callable[[], datetime]) -> Providers:
    return Providers([build_source(s) for s in config.sources],
                     build_target(config.target, stamp=clock, tz=config.tz))


@dataclass
class CycleRun:
    """One cycle in its worker thread, as the service sees it from outside."""

    number: int
    started: float  # time.monotonic()
    #: time.perf_counter() at the start, for the cycle-duration metric
    perf: float = field(default_factory=time.perf_counter)
    #: set when the cycle is abandoned (or the service stops): it sends no further write batch
    stop: threading.Event = field(default_factory=threading.Event)
    #: set when the worker has returned
    done: threading.Event = field(default_factory=threading.Event)
    #: set when the waiter should look again: the worker returned, or the service is stopping
    wake: threading.Event = field(default_factory=threading.Event)
    #: what it is doing ("reading source work"), for the report of an abandoned cycle
    phase: str = "starting"
    #: a write batch (or the target's flush) is in flight: a stop waits for it
    writing: bool = False
    #: guards ``finished``/``abandoned_at``: a cycle is either finished in time or abandoned
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    abandoned_at: float | None = None
    stuck_reported: bool = False

    def running_for(self) -> float:
        return time.monotonic() - self.started


class _Watched:
    """A provider whose calls record in the run what the cycle is doing (only that)."""

    _VERBS: ClassVar[dict[str, str]] = {
        "changes": "reading", "list_ours": "listing", "apply": "writing to", "flush": "saving"}
    _WRITES = frozenset({"apply", "flush"})

    def __init__(self, inner: Any, kind: str, run: CycleRun) -> None:
        self._inner, self._kind, self._run = inner, kind, run

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        verb = self._VERBS.get(name)
        if verb is None or not callable(value):
            return value
        what = f"{self._kind} {self._inner.name}"
        writes = name in self._WRITES

        def call(*args: Any, **kwargs: Any) -> Any:
            self._run.phase = f"{verb} {what}"
            self._run.writing = writes
            try:
                return value(*args, **kwargs)
            finally:
                self._run.writing = False
                self._run.phase = f"working on what {what} answered"

        return call


def give_back_memory() -> None:
    """Between cycles the daemon holds little, but a cold read leaves the heap fragmented:
    collect the cycles' garbage and hand glibc's free pages back to the system, so an idle
    service stays small (``bench/idle_daemon.py``). A no-op where there is no glibc."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # musl, macOS: no malloc_trim
        return None


#: glibc's mallopt parameter for the most malloc arenas (malloc.h)
M_ARENA_MAX = -8
#: arenas for the daemon's threads: cycles run in threads of their own, and glibc gives each
#: new thread a fresh arena (up to 8 per core), where a cold read's garbage fragments for good
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Keep glibc to ``arenas`` malloc arenas unless ``$MALLOC_ARENA_MAX`` says otherwise:
    with one arena per cycle thread the idle service held twice what it uses."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to limit
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)


def _seconds(value: float) -> str:
    """A duration for people: ``45 s``, ``5 min``, ``5 min 30 s``."""
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


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
        limit_malloc_arenas()  # before the first cycle thread
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
        #: guards the swap of config and providers on reload (never held during I/O)
        self._swap_lock = threading.Lock()
        self._next_providers: Providers | None = None
        #: guards starting a cycle: one at a time, never while an abandoned one still runs
        self._start_lock = threading.Lock()
        self._run: CycleRun | None = None
        self._runs = 0
        #: the report of the last abandoned cycle, until a cycle finishes again
        self._abandoned: str | None = None
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
    @property
    def cycle_timeout(self) -> float:
        return self.config.service.cycle_timeout.to_timedelta().total_seconds()

    def cycle(self) -> CycleReport | None:
        """One cycle in a worker, waited for at most ``service.cycle_timeout``.

        Never raises: a failing provider lands in the report and the status, a bug in the
        log. ``None`` when no report came: stopping, an internal error, the cycle abandoned
        over its timeout, or skipped because an abandoned one still runs.
        """
        with self._start_lock:
            if self.stop_event.is_set():
                return None
            previous = self._run
            if previous is not None and not previous.done.is_set():
                self._skip(previous)
                return None
            self._runs += 1
            run = self._run = CycleRun(self._runs, time.monotonic())
            threading.Thread(target=self._work, args=(run,), name=f"cycle-{run.number}",
                             daemon=True).start()
        return self._wait(run)

    def _wait(self, run: CycleRun) -> CycleReport | None:
        """Wait for ``run`` until its timeout. A stop cuts that short: it waits for a write
        batch in flight (``STOP_GRACE_S``), else only a moment (``STOP_QUICK_S``)."""
        timeout = self.cycle_timeout
        if self.stop_event.is_set():  # a stop that came before request_stop saw this run
            run.wake.set()
        run.wake.wait(timeout)
        if not run.done.is_set() and self.stop_event.is_set():
            grace = STOP_GRACE_S if run.writing else STOP_QUICK_S
            run.done.wait(max(0.0, min(grace, timeout - run.running_for())))
        with run.lock:
            if not run.finished:
                run.abandoned_at = time.monotonic()
                run.stop.set()
        if run.abandoned_at is not None:
            self._report_abandoned(run, timeout)
            return None
        run.done.wait()  # it finished its cycle in time and is recording it: quick
        return run.report

    def _work(self, run: CycleRun) -> None:
        """The worker: the cycle, then what the service does with its report."""
        try:
            with self._cycle_lock:
                config, providers = self._current()
                report = self._run_cycle(config, providers, run)
                with run.lock:
                    run.finished = True
                    late = run.abandoned_at is not None
                if report is not None:
                    self._record(config, report, run, late)
                run.report = report
        except Exception:  # a bug in the bookkeeping: the log has it, the daemon goes on
            log.exception("cycle failed")
        finally:
            run.done.set()
            run.wake.set()
            give_back_memory()

    def _current(self) -> tuple[Config, Providers]:
        """The config and providers for this cycle: a reload's new ones from now on."""
        with self._swap_lock:
            if self._next_providers is not None:
                self.providers, self._next_providers = self._next_providers, None
                self._feed_key = None
            return self.config, self.providers

    def _run_cycle(self, config: Config, providers: Providers,
                   run: CycleRun) -> CycleReport | None:
        try:
            return run_cycle(
                config, self.state,
                [_Watched(source, "source", run) for source in providers.sources],
                _Watched(providers.target, "target", run),  # type: ignore[arg-type]
                self.clock(),
                stop=lambda: self.stop_event.is_set() or run.stop.is_set(),
                backoff=self.backoff)
        except Exception:  # a bug must not take the daemon down: report it, go on
            log.exception("cycle failed")
            self.notifier.status("last cycle failed with an internal error; see the log")
            return None

    def _record(self, config: Config, report: CycleReport, run: CycleRun, late: bool) -> None:
        """Log, count and publish a finished cycle's report. An abandoned one that returns
        after all is no success (it stopped writing when abandoned), but what it did write
        is shown: in the feed, the metrics and one log line."""
        self.cycles += 1
        self.last_report = report
        if late:
            text = (f"the abandoned cycle {run.number} finished after all, after "
                    f"{_seconds(run.running_for())}: {_plural(len(report.written), 'reminder')}"
                    " written before it was abandoned; the next cycle does the rest")
            log.warning("%s", text)
        else:
            self._abandoned = None
            if report.ok:
                self.last_success = report.now
        for warning in report.warnings:
            log.warning("%s", warning)
        for error in report.errors:
            log.error("%s", error)
        if report.refused:
            log.error("refused: %s", report.refused)
        self.metrics.observe(report, time.perf_counter() - run.perf)
        self._update_feed(config, report)
        self._retry_listen()
        if late:
            self.notifier.status(text)
            return
        problem = self.feed_problem()
        self.notifier.status(report.summary() + (f"; feed: {problem}" if problem else ""))
        log.info("%s", cycle_line(report))

    def _report_abandoned(self, run: CycleRun, timeout: float) -> None:
        stopping = self.stop_event.is_set()
        why = ("the service is stopping" if stopping
               else f"over service.cycle_timeout ({_seconds(timeout)})")
        text = (f"cycle abandoned after {_seconds(run.running_for())}, {why}, while "
                f"{run.phase}; it sends no further writes, the next cycle tries again")
        self._abandoned = text
        log.log(logging.WARNING if stopping else logging.ERROR, "%s", text)
        self.notifier.status(text)

    def _skip(self, previous: CycleRun) -> None:
        text = (f"cycle skipped: the abandoned cycle {previous.number} is still running "
                f"({_seconds(previous.running_for())}, {previous.phase}); the next one tries "
                "again")
        log.warning("%s", text)
        self.notifier.status(text)

    def stuck(self) -> bool:
        """A cycle still running ``STUCK_FACTOR`` times its timeout after it started."""
        run = self._run
        return (run is not None and not run.done.is_set()
                and run.running_for() > STUCK_FACTOR * self.cycle_timeout)

    # -- the feed -----------------------------------------------------------------------------
    def _update_feed(self, config: Config, report: CycleReport) -> None:
        from daemon.feed import feed_doc

        target = config.target
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
            body = reminders_view(report.remote, "Client love", report.now, config.tz)
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
        run = self._run
        if run is not None and not run.done.is_set():
            info["running"] = f"cycle {run.number} for {_seconds(run.running_for())}, {run.phase}"
        if self._abandoned:
            info["abandoned"] = self._abandoned
        if self.stuck():
            ok = False
            info["status"] = "stuck"
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

        warning = feed.exposure_warning()
        if warning:
            log.warning("feed.listen %s", warning)
        token = self._feed_token()
        self._feed_app = make_app(token, self.feed, self.health, self.metrics,
                                  hosts=feed.served_hosts)
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

    def close(self, grace: float = 2.0) -> None:
        """Stop the feed server and close the state (the end of :meth:`run`, and of tests).

        A cycle that does not let go of the state within ``grace`` keeps it: the process
        ends around it (SQLite's journal makes that as safe as a kill).
        """
        if self._cycle_lock.acquire(timeout=grace):
            try:
                self.state.close()
            finally:
                self._cycle_lock.release()
        else:
            log.error("a cycle is still running after %s; stopping without waiting for it",
                      _seconds(grace))
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
        providers = build_providers(config, self.clock)
        with self._swap_lock:  # the next cycle takes them; one in flight keeps its own
            self.config = config
            self._next_providers = providers
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
            self.watchdog_tick()

    def watchdog_tick(self) -> bool:
        """Ping systemd's watchdog unless a cycle is stuck; True when it pinged."""
        run = self._run
        if run is not None and self.stuck():
            if not run.stuck_reported:
                run.stuck_reported = True
                text = (f"stuck: cycle {run.number} has run for {_seconds(run.running_for())} "
                        f"({run.phase}) and does not return; no more watchdog pings, so "
                        "systemd restarts the service")
                log.error("%s", text)
                self.notifier.status(text)
            return False
        return self.notifier.watchdog()

    def request_stop(self) -> None:
        """Stop after the write in flight: no new cycle, the waiting one looks again."""
        self.stop_event.set()
        run = self._run
        if run is not None:
            run.wake.set()

    def install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping after the write in flight", signal.Signals(signum).name)
            self.request_stop()

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
            self.request_stop()
            self.scheduler.shutdown(wait=True)  # the cycle in flight ends its current write
            self.close()
            log.info("stopped")
        return 0
