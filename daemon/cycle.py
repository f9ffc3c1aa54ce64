"""One sync cycle (DESIGN section 2): read, attribute, count, plan, reconcile, write.

This is the only place the pure core meets the providers and the state. Order matters
for crash safety: the state learns of a write only after the target made it durable
(``flush``), so the state never claims an event the target does not hold; the reverse (an
event the state does not know) is harmless because the target's listing is the truth and
keys are derived, not random.

A write can land after the listing it was planned from: one sent by a run that was then
killed (or by our own attempt that timed out) reaches the server late, and our conditional
write of the same key is refused. The cycle then reads back what the target holds for the
refused keys and records that, so it never ends not knowing a pending reminder of ours
(whose deletion by the user would otherwise go unseen as a skip).
"""

from __future__ import annotations

import logging
import random
import time as clock
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from daemon.attribution import (
    ClientSpec,
    Matcher,
    attribute,
    needle_kinds,
    needles,
    reminder_interactions,
)
from daemon.counter import CounterRule
from daemon.identity import parse_key, reminder_hash, slug
from daemon.model import ReadScope, Reminder, RemoteReminder, StoredReminder
from daemon.planning import ClientPlan, News, plan_client
from daemon.prepnote import NoteSettings, prep_note, user_text
from daemon.reconcile import Action, Kind, day_of, detect_skips, is_pending, next_key, reconcile
from daemon.retry import DEFAULT_BACKOFF, Backoff, with_retry
from daemon.state import State
from providers.base import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    ProviderError,
    Source,
    Target,
    Transient,
    Write,
    WriteResult,
)

log = logging.getLogger("clientlove.cycle")

#: A source that had at least this many events and suddenly has none stops the cycle.
SOURCE_GUARD_MIN = 10
#: A target that suddenly lists none of at least this many expected reminders stops it too.
TARGET_GUARD_MIN = 3


@dataclass(slots=True)
class SourceReport:
    name: str
    events: int | None = None
    changed: bool = False
    error: str | None = None


@dataclass(slots=True)
class CycleReport:
    """What a cycle saw and did; the CLI prints it, the service turns it into status."""

    now: datetime
    today: date
    plans: list[ClientPlan] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    sources: list[SourceReport] = field(default_factory=list)
    target_error: str | None = None
    refused: str | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    writes: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and self.refused is None

    def summary(self) -> str:
        due = sum(1 for p in self.plans if p.reminder_day is not None)
        counts: dict[str, int] = defaultdict(int)
        for action in self.actions:
            counts[action.kind.value] += 1
        parts = [f"{len(self.plans)} clients", f"{due} reminders due",
                 f"{self.writes} writes"]
        parts += [f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "keep"]
        if self.refused:
            parts.append("REFUSED")
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return ", ".join(parts)


def client_specs(config: Any) -> list[ClientSpec]:
    return [
        ClientSpec(c.name, tuple(c.emails), tuple(c.domains), tuple(c.keywords))
        for c in config.clients
    ]


def counter_rule(config: Any) -> CounterRule:
    c = config.counter
    return CounterRule(base_days=c.base.whole_days(), max=c.max, early_days=c.early.whole_days())


def read_scope(config: Any, today: date, *, prefilter: bool = True) -> ReadScope:
    """The window worth reading, rounded to whole months so a cached read stays valid."""
    tz = config.tz
    specs = client_specs(config)
    start_day = config.history_window.before(today).replace(day=1)
    ahead = config.counter.max.after(today) + timedelta(days=62)
    end_day = (ahead.replace(day=1) + timedelta(days=32)).replace(day=1)
    return ReadScope(
        start=datetime.combine(start_day, time(0), tzinfo=tz),
        end=datetime.combine(end_day, time(0), tzinfo=tz),
        tz=tz,
        needles=needles(specs),
        prefilter=prefilter,
        kinds=needle_kinds(specs),
    )


def read_sources(
    sources: Sequence[Source],
    state: State,
    scope: ReadScope,
    now: datetime,
    report: CycleReport,
    *,
    force: bool = False,
    backoff: Backoff = DEFAULT_BACKOFF,
    progress: Callable[[str], None] | None = None,
) -> bool:
    """Read every source into the state's event cache. False when the history is unusable."""
    usable = True
    for source in sources:
        item = SourceReport(source.name)
        report.sources.append(item)
        if progress:
            progress(source.name)
        before = state.event_count(source.name)
        try:
            changes = with_retry(lambda s=source: s.changes(state.cursor(s.name), scope), backoff)
        except ProviderError as exc:
            item.error = str(exc)
            report.errors.append(f"source {source.name}: {exc}")
            item.events = before
            usable = usable and before is not None
            continue
        emptied = not changes.upserted and (
            changes.full or (changes.deleted and state.count_after(source.name, changes) == 0))
        if emptied and before is not None and before >= SOURCE_GUARD_MIN and not force:
            report.refused = (
                f"source {source.name} suddenly returned no events (it had {before}); "
                "refusing to act on an empty history. If this is right, run "
                "`clientlove sync --force`."
            )
            item.events = before
            continue
        item.changed = changes.full or bool(changes.upserted or changes.deleted)
        item.events = state.apply_changes(source.name, changes, now)
    report.warnings.extend(scope.warnings)
    return usable


def _reminder(config: Any, client: Any, plan: ClientPlan, key: str, rule: CounterRule,
              notes: NoteSettings) -> Reminder:
    assert plan.reminder_day is not None
    parsed = parse_key(key)
    generation = parsed[1] if parsed else 0
    r = config.reminder
    alarm = r.alarm_before.to_timedelta()
    days = round(alarm.total_seconds() / 86400)
    when = "tomorrow" if days == 1 else f"in {days} days"
    return Reminder(
        key=key,
        client=client.name,
        summary=r.title.format(client=client.name),
        start=datetime.combine(plan.reminder_day, r.time, tzinfo=config.tz),
        duration=r.duration.to_timedelta(),
        description=prep_note(client, plan, plan.reminder_day, generation, notes),
        alarm_before=alarm,
        alarm_text=f"Client love for {client.name} {when}: read the prep note.",
    )


def note_settings(config: Any) -> NoteSettings:
    kwargs: dict[str, Any] = {}
    if config.ideas:
        kwargs["ideas"] = tuple(config.ideas)
    if config.email_template:
        kwargs["email_template"] = config.email_template
    return NoteSettings(
        rule=counter_rule(config),
        reset_marker=config.counter.reset_markers[0] if config.counter.reset_markers else "",
        skip_marker=config.counter.skip_markers[0] if config.counter.skip_markers else "",
        me=config.me[0] if config.me else "",
        **kwargs,
    )


def plan_all(
    config: Any,
    state: State,
    remote: Sequence[RemoteReminder],
    today: date,
    source_names: Sequence[str],
    extra_skips: Sequence[StoredReminder] = (),
) -> tuple[list[ClientPlan], dict[str, list[RemoteReminder]]]:
    """Attribute the cached history and plan every configured client.

    Returns the plans and each client's pending reminders of ours on the target.
    ``extra_skips`` are deletions seen this cycle and not yet in the state (a dry run).
    """
    tz = config.tz
    rule = counter_rule(config)
    by_slug = {slug(c.name): c.name for c in config.clients}
    matcher = Matcher(client_specs(config), config.me)
    histories = attribute(state.events(source_names), matcher, tz, today,
                          config.counter.reset_markers)

    ours: list[tuple[str, date, str, str, tuple[str, ...]]] = []
    pending: dict[str, list[RemoteReminder]] = defaultdict(list)
    for item in remote:
        parsed = parse_key(item.key)
        client = by_slug.get(parsed[0]) if parsed else None
        if client is None or item.cancelled:
            continue
        if is_pending(item, today, tz):
            pending[client].append(item)
        else:
            # an unedited reminder holds only our text: no marker in it is the user's
            edited = item.user_edited
            ours.append((client, day_of(item.start, tz), item.summary if edited else "",
                         user_text(item.description) if edited else "",
                         item.categories if edited else ()))
    past, marked_skips = reminder_interactions(ours, today, config.counter.reset_markers,
                                               config.counter.skip_markers)
    skips: dict[str, list[date]] = defaultdict(list)
    for client, days in marked_skips.items():
        skips[client].extend(days)
    for _key, client, day in state.tombstones():
        skips[client].append(day)
    for item in extra_skips:
        skips[item.client].append(item.day)

    workdays = frozenset(config.reminder.workdays)
    all_names = [c.name for c in config.clients]
    news: dict[str, list[News]] = defaultdict(list)
    for announcement in config.announcements:
        for name in announcement.names(all_names):
            news[name].append(News(announcement.date, announcement.text))

    plans = []
    for client in config.clients:
        history = histories[client.name]
        plans.append(plan_client(
            client.name,
            [*history.contacts, *past.get(client.name, [])],
            [i.day for i in history.future],
            rule,
            today,
            workdays=workdays,
            news=news.get(client.name, []),
            skips=skips.get(client.name, []),
        ))
    return plans, pending


def run_cycle(
    config: Any,
    state: State,
    sources: Sequence[Source],
    target: Target,
    now: datetime,
    *,
    dry_run: bool = False,
    force: bool = False,
    backoff: Backoff = DEFAULT_BACKOFF,
    progress: Callable[[str], None] | None = None,
    prefilter: bool = True,
    stop: Callable[[], bool] | None = None,
) -> CycleReport:
    """Run one cycle. Never raises for provider trouble: it lands in the report.

    ``prefilter=False`` parses every event of every source (the slow reference path);
    ``stop`` is asked between write batches (a shutdown finishes the one in flight).
    """
    tz = config.tz
    today = now.astimezone(tz).date()
    report = CycleReport(now=now, today=today, dry_run=dry_run)
    scope = read_scope(config, today, prefilter=prefilter)
    usable = read_sources(sources, state, scope, now, report, force=force, backoff=backoff,
                          progress=progress)

    try:
        remote = with_retry(target.list_ours, backoff)
    except ProviderError as exc:
        report.target_error = str(exc)
        report.errors.append(f"target {target.name}: {exc}")
        remote = None

    stored = state.reminders()
    skipped: list[StoredReminder] = []
    forgotten: list[StoredReminder] = []
    if remote is not None:
        listed = {r.key for r in remote}
        expected = {s.key for s in stored}
        if (len(expected) >= TARGET_GUARD_MIN and not (listed & expected) and not force
                and report.refused is None):
            report.refused = (
                f"target {target.name} suddenly shows none of the {len(expected)} reminders "
                "written before; refusing to re-create everything. If the calendar really was "
                "emptied, run `clientlove sync --force`."
            )
        skipped, forgotten = detect_skips(stored, listed, today)
        if not dry_run and report.refused is None:
            state.note_keys(listed)
            for item in skipped:
                log.info("reminder %s for %s was deleted before its day: skipped", item.key,
                         item.client)
                state.drop_reminder(item.key, tombstone=item)
            for item in forgotten:
                state.drop_reminder(item.key)

    plans, pending = plan_all(config, state, remote or [], today, [s.name for s in sources],
                              extra_skips=skipped)
    report.plans = plans
    if remote is None:
        return report

    notes = note_settings(config)
    rule = counter_rule(config)
    clients = {c.name: c for c in config.clients}
    known = {r.key for r in remote} | state.known_keys()
    desired: dict[str, Reminder | None] = {}
    for plan in plans:
        if plan.reminder_day is None:
            desired[plan.client] = None
            continue
        key = next_key(slug(plan.client), pending.get(plan.client, []), known)
        desired[plan.client] = _reminder(config, clients[plan.client], plan, key, rule, notes)
    report.actions = reconcile(desired, pending)

    if dry_run or report.refused is not None or not usable:
        if not usable and not dry_run:
            report.errors.append("no history could be read yet: nothing written")
        return report
    _execute(report, state, target, backoff, tz, {s.key: s for s in stored}, stop)
    return report


def apply_writes(
    target: Target,
    writes: list[Write],
    backoff: Backoff,
    sleep: Callable[[float], None] = clock.sleep,
    stop: Callable[[], bool] | None = None,
) -> list[WriteResult]:
    """Send the writes in the target's batches; re-queue the transient failures only.

    A batch whose parts failed with 429/5xx is not sent again whole: only those parts wait
    (the longest ``Retry-After`` among them, else backoff with jitter) and go again. When
    ``stop()`` turns true (SIGTERM), the batch in flight is finished and no other is sent:
    the result list is then shorter than ``writes``.
    """
    size = max(1, target.limits.batch_size)
    results: list[WriteResult] = []
    for start in range(0, len(writes), size):
        if stop is not None and stop():
            break
        results.extend(_write_batch(target, writes[start:start + size], backoff, sleep))
    return results


def _write_batch(
    target: Target, writes: list[Write], backoff: Backoff, sleep: Callable[[float], None]
) -> list[WriteResult]:
    results: list[WriteResult] = [None] * len(writes)
    pending = list(range(len(writes)))
    rng = random.Random()
    for attempt in range(backoff.attempts):
        if not pending:
            break
        try:
            answers = target.apply([writes[i] for i in pending])
        except ProviderError as exc:  # the whole batch failed (the connection, say)
            answers = [exc] * len(pending)
        again: list[int] = []
        waits: list[float] = []
        for index, answer in zip(pending, answers, strict=True):
            results[index] = answer
            if isinstance(answer, Transient) and attempt + 1 < backoff.attempts:
                again.append(index)
                if answer.retry_after is not None:
                    waits.append(answer.retry_after)
        if again:
            sleep(backoff.delay(attempt, max(waits) if waits else None, rng))
        pending = again
    return results


def _execute(
    report: CycleReport,
    state: State,
    target: Target,
    backoff: Backoff,
    tz: Any,
    stored: dict[str, StoredReminder],
    stop: Callable[[], bool] | None = None,
) -> None:
    """Perform the writes, then flush, then record them in the state."""
    writing: list[Action] = []
    for action in report.actions:
        if action.writes:
            writing.append(action)
            continue
        held = action.current
        if held is not None and (action.key not in stored
                                 or stored[action.key].etag != held.etag):
            state.save_reminder(StoredReminder(
                action.key, action.client, held.ref, day_of(held.start, tz), held.etag,
                held.stored_hash))
    writes = [Write(a.kind.value, a.reminder, a.current) for a in writing]
    results = apply_writes(target, writes, backoff, stop=stop)
    done: list[tuple[Action, RemoteReminder | None]] = []
    refused: list[Action] = []
    for action, result in zip(writing, results, strict=False):
        if isinstance(result, AlreadyExists):
            if result.gone and action.reminder is not None:
                log.info("%s was deleted by the user earlier: skipped", action.key)
                state.drop_reminder(action.key, tombstone=StoredReminder(
                    action.key, action.client, "", day_of(action.reminder.start, tz)))
            else:
                # written meanwhile (a killed run's late write, another instance): never
                # take this generation again, and learn below what the target holds
                state.note_keys([action.key])
                log.info("%s already exists on the target: adopted as it is", action.key)
                refused.append(action)
            continue
        if isinstance(result, (PreconditionFailed, NotFound)):
            log.info("%s changed on the target meanwhile (%s): the user wins", action.key,
                     result)
            refused.append(action)
            continue
        if isinstance(result, ProviderError):
            report.errors.append(
                f"target {target.name}: {action.kind.value} {action.key}: {result}")
            continue
        done.append((action, result))
    try:
        with_retry(target.flush, backoff)
    except ProviderError as exc:
        report.errors.append(f"target {target.name}: {exc}")
        return
    if refused:
        _adopt(state, target, backoff, tz, refused)
    for action, result in done:
        report.writes += 1
        if action.kind is Kind.DELETE or result is None:
            state.drop_reminder(action.key)
            continue
        assert action.reminder is not None
        state.save_reminder(StoredReminder(
            key=action.key,
            client=action.client,
            ref=result.ref,
            day=day_of(action.reminder.start, tz),
            etag=result.etag,
            content_hash=reminder_hash(action.reminder),
        ))


def _adopt(state: State, target: Target, backoff: Backoff, tz: Any,
           refused: list[Action]) -> None:
    """Record what the target now holds for keys whose write was refused because the event
    changed after our listing (see the module docstring); the next cycle reconciles it.

    A refused delete whose event is gone reached its goal: the state forgets it.
    """
    try:
        held = {r.key: r for r in with_retry(target.list_ours, backoff) if not r.cancelled}
    except ProviderError as exc:
        log.info("could not read back %d refused writes (%s): the next cycle will",
                 len(refused), exc)
        return
    for action in refused:
        remote = held.get(action.key)
        if remote is not None:
            state.save_reminder(StoredReminder(
                action.key, action.client, remote.ref, day_of(remote.start, tz), remote.etag,
                remote.stored_hash))
        elif action.kind is Kind.DELETE:
            state.drop_reminder(action.key)
