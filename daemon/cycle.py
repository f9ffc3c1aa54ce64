"""One sync cycle (docs/design.md section 2): read, attribute, count, plan, reconcile, write.

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

import dataclasses
import itertools
import logging
import random
import time as clock
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from daemon.config import target_identity
from daemon.counter import CounterRule
from daemon.identity import parse_key, reminder_hash, slug
from daemon.model import ReadScope, Reminder, RemoteReminder, StoredReminder
from daemon.placement import SlotRule, place, when_text
from daemon.planning import ClientPlan, News, plan_client
from daemon.prepnote import NoteSettings, prep_note, user_text
from daemon.reconcile import Action, Kind, day_of, detect_skips, is_pending, next_key, reconcile
from daemon.reminder_ical import ical_safe
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
    #: our reminders as the target holds them after this cycle's writes (None: not listed)
    remote: list[RemoteReminder] | None = None
    #: the actions whose write the target confirmed
    written: list[Action] = field(default_factory=list)

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


def said(exc: Exception, name: str) -> str:
    """An error's text without its provider's name in front (the line names it already)."""
    text = str(exc)
    return text.removeprefix(f"{name}: ")


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
            report.errors.append(f"source {source.name}: {said(exc, source.name)}")
            item.events = before
            usable = usable and before is not None
            continue
        events = iter(changes.upserted)  # a streamed read can be consumed only once
        first = next(events, None)
        if first is not None:
            changes = replace(changes, upserted=itertools.chain([first], events))
        emptied = first is None and (
            changes.full or (changes.deleted and state.count_after(source.name, changes) == 0))
        if emptied and before is not None and before >= SOURCE_GUARD_MIN and not force:
            report.refused = (
                f"source {source.name} suddenly returned no events (it had {before}); "
                "refusing to act on an empty history. If this is right, run "
                "`clientlove sync --force`."
            )
            item.events = before
            continue
        item.changed = changes.full or first is not None or bool(changes.deleted)
        item.events = state.apply_changes(source.name, changes, now)
    report.warnings.extend(scope.warnings)
    return usable


def slot_rule(config: Any) -> SlotRule:
    r = config.reminder
    return SlotRule(slot=r.time, latest=r.end_of_day, alarm_before=r.alarm_before.to_timedelta(),
                    workdays=frozenset(r.workdays), tz=config.tz)


def _reminder(config: Any, client: Any, plan: ClientPlan, key: str, notes: NoteSettings,
              now: datetime, held: RemoteReminder | None) -> Reminder:
    """The reminder for a plan, placed so that it is never in the past (see placement)."""
    assert plan.reminder_day is not None
    parsed = parse_key(key)
    generation = parsed[1] if parsed else 0
    r = config.reminder
    kept = (held.start, held.alarm_before) if held is not None and isinstance(
        held.start, datetime) else None
    spot = place(plan.reminder_day, now, slot_rule(config), kept)
    day = spot.start.astimezone(config.tz).date()
    # names, notes and titles come from others: no control character reaches a line we write
    return Reminder(
        key=key,
        client=client.name,
        summary=ical_safe(r.title.format(client=client.name), one_line=True),
        start=spot.start,
        duration=r.duration.to_timedelta(),
        description=ical_safe(prep_note(client, plan, day, generation, notes)),
        alarm_before=spot.alarm_before,
        alarm_text=ical_safe(f"Client love for {client.name} "
                             f"{when_text(spot.start, spot.alarm_before, config.tz)}: "
                             "read the prep note.", one_line=True),
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
        last_conversation=config.prep_note.last_conversation,
        **kwargs,
    )


@dataclass(slots=True)
class Plans:
    """What planning found: a plan per configured client, each client's pending reminders
    of ours on the target, and our pending reminders of clients no longer configured."""

    plans: list[ClientPlan]
    pending: dict[str, list[RemoteReminder]]
    orphans: list[RemoteReminder]


def plan_all(
    config: Any,
    state: State,
    remote: Sequence[RemoteReminder],
    today: date,
    source_names: Sequence[str],
    extra_skips: Sequence[StoredReminder] = (),
) -> Plans:
    """Attribute the cached history and plan every configured client.

    ``extra_skips`` are deletions seen this cycle and not yet in the state (a dry run).
    """
    tz = config.tz
    rule = counter_rule(config)
    by_slug = {slug(c.name): c.name for c in config.clients}
    matcher = Matcher(client_specs(config), config.me)
    histories = attribute(state.events(source_names), matcher, tz, today,
                          config.counter.reset_markers)
    written = {s.key: s.day for s in state.reminders()}

    ours: list[tuple[str, date, str, str, tuple[str, ...]]] = []
    pending: dict[str, list[RemoteReminder]] = defaultdict(list)
    orphans: list[RemoteReminder] = []
    moved: dict[str, date] = {}
    for item in remote:
        parsed = parse_key(item.key)
        if parsed is None or item.cancelled:
            continue
        client = by_slug.get(parsed[0])
        if client is None:
            if is_pending(item, today, tz):
                orphans.append(item)
            continue
        day = day_of(item.start, tz)
        if is_pending(item, today, tz):
            pending[client].append(item)
            if item.user_edited and item.key in written and written[item.key] != day:
                moved[client] = max(day, moved.get(client, day))
        else:
            # an unedited reminder holds only our text: no marker in it is the user's
            edited = item.user_edited
            ours.append((client, day, item.summary if edited else "",
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
            moved_to=moved.get(client.name),
        ))
    return Plans(plans, pending, orphans)


def _where(plan: ClientPlan, actions: Sequence[Action], tz: Any) -> ClientPlan:
    """The plan as the status shows it: the reminder where the target holds it (or will)."""
    for action in actions:
        if action.kind is Kind.LEAVE and action.current is not None:
            start = action.current.start
            return dataclasses.replace(
                plan, reminder_day=day_of(start, tz),
                reminder_at=start if isinstance(start, datetime) else None)
    for action in actions:
        if action.kind in (Kind.CREATE, Kind.UPDATE, Kind.KEEP) and action.reminder:
            start = action.reminder.start
            return dataclasses.replace(plan, reminder_at=start, reminder_day=day_of(start, tz))
    return plan


def foreign_state(state: State, identity: str, *, force: bool) -> str | None:
    """Why this state must not be used for the target ``identity``, or ``None``.

    A state that knows reminders of another target would read that target's reminders as
    deleted here; ``force`` starts fresh for the new target instead.
    """
    recorded = state.target
    if recorded is None or recorded == identity or force or not state.holds_target_data():
        return None
    return (
        f"this state ({state.path}) belongs to target {recorded}; the config now names "
        f"{identity}. Nothing was read or written. To keep both, give this config its own "
        "state: set `state_path` to a new file, or remove a shared `state_path` (every config "
        f"file then gets its own). To move to {identity} for good, run "
        f"`clientlove sync --force` once: it starts fresh there and leaves the reminders in "
        f"{recorded} as they are."
    )


def _move_target(state: State, identity: str, report: CycleReport, *, dry_run: bool) -> bool:
    """Start fresh when the state (allowed by ``--force``, or empty) named another target.

    True when the previous target's reminders are set aside (in a dry run: only in memory).
    """
    recorded = state.target
    if recorded is None or recorded == identity:
        return False
    moving = state.holds_target_data()
    if moving:
        report.warnings.append(f"{'would start' if dry_run else 'started'} fresh for target "
                               f"{identity}; the reminders in {recorded} stay as they are")
    if not dry_run:
        state.start_fresh_for(identity)
    return moving


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
    identity = target_identity(config.target)
    report.refused = foreign_state(state, identity, force=force)
    if report.refused is not None:
        return report
    moving = _move_target(state, identity, report, dry_run=dry_run)
    scope = read_scope(config, today, prefilter=prefilter)
    usable = read_sources(sources, state, scope, now, report, force=force, backoff=backoff,
                          progress=progress)

    try:
        remote = with_retry(target.list_ours, backoff)
        report.remote = list(remote)
    except ProviderError as exc:
        report.target_error = str(exc)
        report.errors.append(f"target {target.name}: {said(exc, target.name)}")
        remote = None

    stored = [] if moving and dry_run else state.reminders()
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
            if state.target is None:
                report.refused += (
                    " This state file records no target (an older version wrote it): if it "
                    f"belongs to another config, move {state.path} away or give this config "
                    "its own `state_path`.")
        skipped, forgotten = detect_skips(stored, listed, today)
        if not dry_run and report.refused is None:
            if state.target is None:
                state.claim_target(identity)
            state.note_keys(listed)
            for item in skipped:
                log.info("reminder %s for %s was deleted before its day: skipped", item.key,
                         item.client)
                state.drop_reminder(item.key, tombstone=item)
            for item in forgotten:
                state.drop_reminder(item.key)

    planned = plan_all(config, state, remote or [], today, [s.name for s in sources],
                       extra_skips=skipped)
    report.plans = planned.plans
    if remote is None:
        return report

    notes = note_settings(config)
    pending = planned.pending
    clients = {c.name: c for c in config.clients}
    known = {r.key for r in remote} | state.known_keys()
    desired: dict[str, Reminder | None] = {}
    for plan in planned.plans:
        if plan.reminder_day is None:
            desired[plan.client] = None
            continue
        mine = pending.get(plan.client, [])
        key = next_key(slug(plan.client), mine, known)
        held = next((r for r in mine if r.key == key and not r.user_edited), None)
        desired[plan.client] = _reminder(config, clients[plan.client], plan, key, notes, now,
                                         held)
    report.actions = reconcile(desired, pending)
    for orphan in planned.orphans:
        parsed = parse_key(orphan.key)
        report.actions.append(Action(Kind.DELETE, parsed[0] if parsed else orphan.key,
                                     orphan.key, current=orphan,
                                     why="client no longer configured"))
    by_client: dict[str, list[Action]] = defaultdict(list)
    for action in report.actions:
        by_client[action.client].append(action)
    report.plans = [_where(p, by_client.get(p.client, []), tz) for p in planned.plans]

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


def as_written(listing: list[RemoteReminder], action: Action,
               result: RemoteReminder | None) -> list[RemoteReminder]:
    """The target's listing after one confirmed write: deleted gone, written as written.

    A CalDAV answer is built from what we sent, so a move keeps the categories the event had.
    """
    kept = [r for r in listing if r.key != action.key]
    if action.kind is Kind.DELETE or result is None:
        return kept
    if not result.categories and action.current is not None and action.current.categories:
        result = replace(result, categories=action.current.categories)
    return [*kept, result]


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
            # the day stays the one we wrote: a later day on the target is the user's move
            day = stored[action.key].day if action.key in stored else day_of(held.start, tz)
            state.save_reminder(StoredReminder(
                action.key, action.client, held.ref, day, held.etag, held.stored_hash))
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
                f"target {target.name}: {action.kind.value} {action.key}: "
                f"{said(result, target.name)}")
            continue
        done.append((action, result))
    try:
        with_retry(target.flush, backoff)
    except ProviderError as exc:
        report.errors.append(f"target {target.name}: {said(exc, target.name)}")
        return
    if refused:
        _adopt(state, target, backoff, tz, refused)
    for action, result in done:
        report.writes += 1
        report.written.append(action)
        report.remote = as_written(report.remote or [], action, result)
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
