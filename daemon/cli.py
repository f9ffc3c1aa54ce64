"""The ``clientlove`` command line: thin, over :mod:`daemon.cycle`.

Exit codes: 0 fine; 1 a source or the target failed; 3 the cycle refused to act (the
mass-change guard); 73 the state file cannot be used; 78 the config is broken (EX_CONFIG).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import textwrap
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from daemon.config import (
    EX_CONFIG,
    ConfigError,
    ConfigNotFound,
    default_state_path,
    find_config_path,
    load_config,
)
from daemon.cycle import CycleReport, client_specs, read_scope, read_sources, run_cycle
from daemon.logsetup import printable, setup_logging
from daemon.model import ReadScope
from daemon.planning import ClientPlan
from daemon.reconcile import Kind
from daemon.state import State, StateError
from providers import build_source, build_target

EX_FAILED = 1
EX_REFUSED = 3
EX_CANTCREAT = 73

#: ``status`` lays itself out for this many columns when not on a terminal (a pipe, a file).
STATUS_WIDTH = 80
#: ... and at most this wide on a wide terminal (longer lines read badly).
STATUS_MAX_WIDTH = 160

log = logging.getLogger("clientlove")


@dataclass(slots=True)
class Options:
    """The options every command takes, before or after its name (the command's wins)."""

    config_path: Path | None = None
    now: datetime | None = None
    verbose: int = 0
    now_text: str | None = None


def parse_now(text: str | None, tz: Any) -> datetime:
    """``--now``: an ISO date or date-time; naive values are in the configured zone."""
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"not an ISO date or date-time: {text!r}",
                                 param_hint="--now") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


def _set_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Options).config_path = value


def _set_now(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Options).now_text = value


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        ctx.ensure_object(Options).verbose = value
        setup_logging(value)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``, ``--now`` and ``-v`` on a group or command, so they work before and
    after the command name; given in both places, the later (the command's) wins."""
    options = [
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     expose_value=False, callback=_set_config,
                     help="Config file (else $CLIENTLOVE_CONFIG, the XDG config dir, "
                          "/etc/clientlove)."),
        click.option("--now", expose_value=False, callback=_set_now, metavar="ISO",
                     help="Pretend it is this ISO date-time (planning 'what if', tests)."),
        click.option("-v", "--verbose", count=True, expose_value=False, callback=_set_verbose,
                     help="More logging (-vv for debug)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="clientlove")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep in touch with every client: reminders from your own calendar history."""
    options = ctx.ensure_object(Options)
    setup_logging(options.verbose)


def _config_failed(exc: ConfigError) -> None:
    """Print a config error: a header, then each problem on its own line, never wrapped."""
    if isinstance(exc, ConfigNotFound):
        head = ": no config file found; looked at:"
    else:
        head = f" in {getattr(exc, 'path', '') or 'the config'}:"
    _stderr_label("config error", head, colon=False)
    for problem in exc.problems:
        click.echo(f"  {printable(problem)}", err=True)


def _config(ctx: click.Context) -> Any:
    options: Options = ctx.ensure_object(Options)
    try:
        path = find_config_path(options.config_path)
        config = load_config(path)
    except ConfigError as exc:
        _config_failed(exc)
        ctx.exit(EX_CONFIG)
    options.now = parse_now(options.now_text, config.tz)
    ctx.meta["config"] = config
    return config


def _error(message: str, label: str = "error") -> None:
    """One line on stderr, never wrapped (a pipe or the journal gets it whole); what the
    message quotes (a server's words, a UID) cannot break the line or reach the terminal
    as a control sequence."""
    _stderr_label(label, "", end=" ")
    click.echo(printable(message), err=True)


def _stderr_label(label: str, rest: str, *, colon: bool = True, end: str = "\n") -> None:
    """``label`` in bold red on a terminal (plain text elsewhere), then ``rest`` as it is.
    rich is imported here, for terminal output only: a plain run never loads it."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]{escape(label)}{':' if colon else ''}[/]{escape(rest)}", end=end,
        highlight=False)


@contextmanager
def _state(ctx: click.Context, config: Any, *, scratch: bool = False):
    """The state file, or (``scratch``) an in-memory copy of it that nothing is saved from."""
    path = default_state_path(config)
    try:
        state = State.copy_of(path) if scratch else State(path)
    except (StateError, OSError) as exc:
        _error(str(exc), "state error")
        ctx.exit(EX_CANTCREAT)
    try:
        yield state
    finally:
        state.close()


def _progress():
    """A progress display on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("reading {task.description}"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


def _cycle(
    ctx: click.Context, *, dry_run: bool, force: bool = False, prefilter: bool = True,
    scratch: bool = False,
) -> CycleReport:
    """One cycle. ``scratch`` (``sync --dry-run``) works on a copy of the state: nothing is
    written anywhere. ``status`` keeps what it read of the sources in the state's cache."""
    config = _config(ctx)
    now: datetime = ctx.obj.now
    with _state(ctx, config, scratch=scratch) as state:
        sources = [build_source(s) for s in config.sources]
        target = build_target(config.target, stamp=lambda: now, tz=config.tz,
                              read_only=scratch)
        progress = _progress()
        if progress is None:
            report = run_cycle(config, state, sources, target, now, dry_run=dry_run,
                               force=force, prefilter=prefilter)
        else:
            with progress:
                task = progress.add_task("sources", total=None)
                report = run_cycle(
                    config, state, sources, target, now, dry_run=dry_run, force=force,
                    prefilter=prefilter,
                    progress=lambda name: progress.update(task, description=name),
                )
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _finish(ctx: click.Context, report: CycleReport) -> None:
    for error in report.errors:
        _error(error)
    if report.refused:
        _error(report.refused, "refused")
        ctx.exit(EX_REFUSED)
    if report.errors:
        ctx.exit(EX_FAILED)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what would be created, moved or kept.")
@click.option("--force", is_flag=True, help="Act even when the mass-change guard objects.")
@common_options
@click.pass_context
def sync(ctx: click.Context, dry_run: bool, force: bool) -> None:
    """Run one cycle: read the history, write the reminders that are due."""
    report = _cycle(ctx, dry_run=dry_run, force=force, scratch=dry_run)
    failed = not dry_run and report.errors and report.writes == 0 and any(
        action.writes for action in report.actions)
    if report.refused or failed:
        # nothing was done: listing what the cycle planned would read as done
        click.echo("nothing would be written" if dry_run else "nothing written")
        _finish(ctx, report)
        return
    verbs = {Kind.CREATE: "create", Kind.UPDATE: "move/refresh", Kind.DELETE: "delete",
             Kind.KEEP: "keep", Kind.LEAVE: "leave (edited by you)"}
    prefix = "would " if dry_run else ""
    for action in report.actions:
        if action.kind is Kind.KEEP and not dry_run:
            continue
        day = action.reminder.start.date() if action.reminder else (
            action.current.start if action.current else "")
        why = f" ({action.why})" if action.why else ""
        click.echo(f"{prefix}{verbs[action.kind]}: {printable(action.client)} {day}{why}")
    click.echo(report.summary())
    _finish(ctx, report)


def _status_rows(plans: list[ClientPlan], tz: Any = None) -> list[dict[str, Any]]:
    def iso(value):
        return value.isoformat() if value is not None else None

    def moment(value: datetime | None) -> str | None:
        if value is None:
            return None
        return (value.astimezone(tz) if tz is not None else value).isoformat()

    return [
        {
            "client": p.client,
            "last_contact": iso(p.last_contact.day if p.last_contact else None),
            "interval_days": p.counter.interval_days,
            "due": iso(p.due),
            "booked": iso(p.booked),
            "reminder": iso(p.reminder_day),
            "reminder_at": moment(p.reminder_at),
            "overdue": p.overdue,
            "moved_by_user": p.moved_by_user,
            "notes": list(p.notes),
        }
        for p in plans
    ]


def status_width() -> int:
    """The width ``status`` lays itself out for: the terminal's, else 80 (pipes, files)."""
    if not sys.stdout.isatty():
        return STATUS_WIDTH
    columns = shutil.get_terminal_size((STATUS_WIDTH, 24)).columns
    return max(20, min(columns, STATUS_MAX_WIDTH))


def status_lines(plans: list[ClientPlan], today: date, tz: Any, width: int = STATUS_WIDTH
                 ) -> list[str]:
    """The status table as plain lines of at most ``width`` characters (unless one word is
    longer): one line per client (client, last contact, every, due, reminder), its notes
    on an indented line below. Text wraps between words only, never inside one."""
    head = ["client", "last contact", "every", "due", "reminder"]
    rows: list[tuple[str, list[str], str]] = []
    for plan in plans:
        if plan.reminder_at is not None:
            at = plan.reminder_at.astimezone(tz) if tz is not None else plan.reminder_at
            reminder = f"{at.date().isoformat()} {at:%H:%M}"
        elif plan.reminder_day is not None:
            reminder = plan.reminder_day.isoformat()
        elif plan.booked is not None:
            reminder = f"booked {plan.booked.isoformat()}"
        else:
            reminder = "-"
        cells = [
            plan.last_contact.day.isoformat() if plan.last_contact else "never",
            f"{plan.counter.interval_days} d" if plan.counter.interval_days else "-",
            plan.due.isoformat(),
            reminder,
        ]
        notes = list(plan.notes)
        if plan.booked is not None and plan.reminder_day is not None:
            notes.append(f"meeting booked {plan.booked.isoformat()}")
        if plan.moved_by_user and not any("moved by you" in n for n in notes):
            notes.append("moved by you")
        rows.append((printable(plan.client), cells, printable("; ".join(notes))))

    gap = "  "
    widths = [max([len(head[i + 1])] + [len(r[1][i]) for r in rows]) for i in range(4)]
    fixed = sum(widths) + len(gap) * 4
    longest = max([len(head[0])] + [len(r[0]) for r in rows])
    name_width = max(len(head[0]), min(longest, width - fixed))

    def line(name: str, cells: list[str]) -> str:
        parts = [name.ljust(name_width)] + [c.ljust(w) for c, w in zip(cells, widths,
                                                                        strict=True)]
        return gap.join(parts).rstrip()

    def wrap(text: str, size: int, indent: str = "") -> list[str]:
        return textwrap.wrap(text, max(1, size), initial_indent=indent,
                             subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False) or [indent.rstrip()]

    out = [f"clientlove status on {today:%a} {today.isoformat()}", line(head[0], head[1:])]
    if not rows:
        out.append("  no clients yet: add them under `clients:` in the config")
    for name, cells, notes in rows:
        names = wrap(name, name_width)
        if any(len(part) > name_width for part in names) or fixed + name_width > width:
            # a word too long for the column: the name gets lines of its own
            out += wrap(name, width)
            names = [""]
        out.append(line(names[0], cells))
        out += [part.rstrip() for part in names[1:]]
        if notes:
            out += wrap(notes, width, "  ")
    return out


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per client.")
@click.option("--full-read", is_flag=True, hidden=True,
              help="Parse every event, skipping the fast prefilter (for checks and benchmarks).")
@common_options
@click.pass_context
def status(ctx: click.Context, as_json: bool, full_read: bool) -> None:
    """Show every client: last contact, interval, due date, booked meeting, reminder."""
    report = _cycle(ctx, dry_run=True, prefilter=not full_read)
    tz = ctx.meta["config"].tz
    if as_json:
        click.echo(json.dumps(_status_rows(report.plans, tz), indent=2))
    else:
        lines = status_lines(report.plans, report.today, tz, status_width())
        click.echo(click.style(lines[0], bold=True))
        click.echo(click.style(lines[1], bold=True))
        for text in lines[2:]:
            click.echo(text)
    _finish(ctx, report)


@cli.command("check-config")
@common_options
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the config and check what it names, without writing: source files, the
    target's folder, credentials, the feed token. Every problem is printed (exit 78)."""
    from daemon.preflight import preflight

    config = _config(ctx)
    findings = preflight(config)
    problems = [f for f in findings if f.problem]
    if problems:
        _config_failed(ConfigError([str(f) for f in problems], path=config.config_path))
    else:
        sources = len(config.sources)
        click.echo(f"{config.config_path}: OK ({sources} source{'s' if sources != 1 else ''}, "
                   f"{len(config.clients)} clients, target {config.target.type})")
    for hint in (f for f in findings if not f.problem):
        click.echo(f"note: {hint}")
    if problems:
        ctx.exit(EX_CONFIG)


@cli.command()
@click.option("--limit", default=50, show_default=True, help="At most this many entries.")
@common_options
@click.pass_context
def discover(ctx: click.Context, limit: int) -> None:
    """List people and domains met that no client covers, as YAML for `clients:`."""
    from daemon.attribution import PERSONAL_DOMAINS, Matcher
    from daemon.attribution import discover as find

    config = _config(ctx)
    now: datetime = ctx.obj.now
    today = now.astimezone(config.tz).date()
    scope = read_scope(config, today)
    full = ReadScope(scope.start, datetime.combine(today, time.max, tzinfo=config.tz),
                     config.tz, prefilter=False)
    report = CycleReport(now=now, today=today)
    sources = [build_source(s) for s in config.sources]
    # discover needs every event, not the prefiltered cache: read into a scratch state
    scratch = State(":memory:")
    read_sources(sources, scratch, full, now, report)
    events = scratch.events([s.name for s in sources])
    scratch.close()
    matcher = Matcher(client_specs(config), config.me)
    found = find(events, matcher, config.tz, PERSONAL_DOMAINS)[:limit]
    entries = []
    for item in found:
        domain = item["domain"]
        name = str(domain).split(".")[0].capitalize() if domain else str(item["emails"][0])
        entry: dict[str, Any] = {"name": name}
        if domain:
            entry["domains"] = [domain]
        entry["emails"] = item["emails"]
        entries.append((entry, item))
    out = []
    for entry, item in entries:
        out.append(f"# last met {item['last']}, {item['meetings']} meetings: "
                   f"{printable(str(item['title']))}\n" + _yaml_entry(entry))
    click.echo("\n".join(out) if out else "# everyone met is covered by a client")
    for warning in report.warnings:
        log.warning("%s", warning)
    _finish(ctx, report)


def _yaml_entry(entry: dict[str, Any]) -> str:
    """One ``clients:`` entry as YAML that reads back as it is: plain Unicode, unless a value
    holds what YAML would take for a line break or a terminal for a control sequence (then
    every such character is written as an escape)."""
    values = [entry.get("name", ""), *entry.get("domains", ()), *entry.get("emails", ())]
    plain = all(printable(str(v)) == str(v) for v in values)
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=plain).rstrip()


@cli.command()
@common_options
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run as a service: a cycle now and every service.interval, the feed, sd_notify."""
    from daemon.service import Service

    options: Options = ctx.ensure_object(Options)
    try:
        path = find_config_path(options.config_path)
        service = Service(path)
    except ConfigError as exc:
        _config_failed(exc)
        ctx.exit(EX_CONFIG)
    except (StateError, OSError) as exc:
        _error(str(exc), "state error")
        ctx.exit(EX_CANTCREAT)
    ctx.exit(service.run())


@cli.group()
@common_options
def feed() -> None:
    """The subscribable ICS feed."""


@feed.command("url")
@common_options
@click.pass_context
def feed_url_command(ctx: click.Context) -> None:
    """Print the feed's subscription URL (and the webcal:// form)."""
    from daemon.credentials import CredentialError, resolve_secret
    from daemon.feed import check_token, feed_url
    from daemon.preflight import BROKEN, credential_problem, token_advice

    config = _config(ctx)
    name = config.feed.token_credential
    try:
        token = resolve_secret(name).reveal()
    except CredentialError as exc:
        kind, message = credential_problem(name, exc)
        if kind != BROKEN:
            _error(f"no feed token yet: {message}; {token_advice(kind)}")
        else:
            _error(message)
        ctx.exit(EX_FAILED)
    try:
        check_token(token)
    except ValueError as exc:  # the message states the rule, never the token
        _error(f"the feed token in credential {name!r} is not usable ({exc}); make a new one "
               "with `clientlove feed token --force`")
        ctx.exit(EX_FAILED)
    base = config.feed.public_url or f"http://{config.feed.listen}"
    https, webcal = feed_url(base, token)
    click.echo(https)
    click.echo(webcal)


#: ``feed token`` makes this many random bytes (43 URL-safe characters; check_token wants 16+).
TOKEN_BYTES = 32


@feed.command("token")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the token to this file (mode 0600, for systemd LoadCredential=) "
                   "instead of the keyring.")
@click.option("--print", "print_it", is_flag=True,
              help="Print the token (to pipe into systemd-creds, say) instead of storing it.")
@click.option("--force", is_flag=True, help="Replace a token that is already there.")
@common_options
@click.pass_context
def feed_token_command(ctx: click.Context, output: Path | None, print_it: bool,
                       force: bool) -> None:
    """Make a new random feed token and store it as feed.token_credential in the keyring.

    The token is the secret part of the feed URL (`clientlove feed url` prints it). A service
    under systemd reads it from LoadCredential=: write it to a file with --output. A running
    service picks up a new token when restarted.
    """
    import secrets

    import keyring

    from daemon.credentials import KEYRING_SERVICE, CredentialError, store_secret
    from daemon.feed import check_token

    if output is not None and print_it:
        raise click.UsageError("give --output FILE or --print, not both")
    token = check_token(secrets.token_urlsafe(TOKEN_BYTES))
    if print_it:
        click.echo(token)
        return
    if output is not None:
        if output.exists() and not force:
            _error(f"{output} already exists; keep it, or replace it with --force (the old "
                   "feed URL then stops working)")
            ctx.exit(EX_FAILED)
        try:
            write_private(output, token + "\n")
        except OSError as exc:
            _error(f"cannot write {output}: {exc.strerror or type(exc).__name__}")
            ctx.exit(EX_FAILED)
        click.echo(f"wrote a new feed token to {output} (mode 0600); load it as "
                   f"LoadCredential={_token_name(ctx)}:{output.absolute()}")
        return

    name = _token_name(ctx)
    try:
        existing = keyring.get_password(KEYRING_SERVICE, name)
    except Exception as exc:  # backends raise their own types (NoKeyringError, D-Bus, ...)
        _no_keyring(ctx, name, exc)
    if existing and not force:
        _error(f"the keyring already holds a feed token {name!r}; keep it, or replace it with "
               "--force (the old feed URL then stops working)")
        ctx.exit(EX_FAILED)
    try:
        store_secret(name, token)
    except CredentialError as exc:
        _no_keyring(ctx, name, exc.__context__ or exc, token)
    click.echo(f"stored a new feed token as credential {name!r} in the system keyring; "
               "`clientlove feed url` prints the address")


def _token_name(ctx: click.Context) -> str:
    """The credential the config names for the feed token (the default without a config)."""
    options: Options = ctx.ensure_object(Options)
    try:
        config = load_config(find_config_path(options.config_path))
    except ConfigNotFound:  # no config yet: the name it will have by default
        from daemon.config import FeedConfig

        return FeedConfig().token_credential
    except ConfigError as exc:
        _config_failed(exc)
        ctx.exit(EX_CONFIG)
    return config.feed.token_credential


def _no_keyring(ctx: click.Context, name: str, exc: BaseException, secret: str = "") -> None:
    reason = (str(exc) or type(exc).__name__).split(". ")[0].rstrip(".")
    if secret:
        reason = reason.replace(secret, "***")
    _error(f"cannot use the system keyring for {name!r} ({reason}); write the token to a file "
           "for systemd LoadCredential= instead: clientlove feed token --output FILE")
    ctx.exit(EX_FAILED)


class _ProviderCommands(click.Group):
    """``clientlove auth <type>``: one command per provider that declares one, each made
    only when asked for (a provider's libraries load with it, never for other commands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from providers import registry

        return [spec.type for spec in registry.load_all() if spec.auth is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from providers import registry

        if cmd_name not in registry.PROVIDERS:
            return None
        spec = registry.load(cmd_name)
        return spec.auth() if spec.auth is not None else None


@cli.group(cls=_ProviderCommands)
@common_options
def auth() -> None:
    """Store the secrets the config names (in the system keyring)."""


def fail(ctx: click.Context, message: str, *, label: str = "error") -> NoReturn:
    """Say what went wrong on one line of stderr and exit with EX_FAILED."""
    _error(message, label)
    ctx.exit(EX_FAILED)
    raise AssertionError("unreachable")  # ctx.exit raises


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only, never readable by anyone else.

    The secret goes into a new file of ours (``O_EXCL|O_NOFOLLOW``, mode 0600 from the
    start, in the same folder) that is then renamed over ``path``: a file or a symlink
    someone else put there first is replaced, never written through (whoever holds it
    open gets nothing), and a crash leaves either the old file or the new one.
    """
    import os
    import tempfile

    folder = path.absolute().parent
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)  # 0600, O_EXCL
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(scratch)
        raise


def check_logins(ctx: click.Context, provider: str, credential: str) -> None:
    """Try each ``provider`` entry of the config that names ``credential`` (best effort)."""
    from providers.base import ProviderError

    try:
        config = load_config(find_config_path(ctx.ensure_object(Options).config_path))
    except (ConfigError, OSError):
        return
    entries = [*config.sources, config.target]
    for entry in entries:
        if entry.type != provider or getattr(entry, "credential", None) != credential:
            continue
        label = getattr(entry, "name", None) or "target"
        try:
            if entry in config.sources:
                build_source(entry).changes(None, read_scope(config, datetime.now(UTC).date()))
            else:
                build_target(entry, stamp=lambda: datetime.now(UTC), tz=config.tz).list_ours()
        except ProviderError as exc:
            click.echo(f"{label}: login failed: {exc}", err=True)
            ctx.exit(EX_FAILED)
        click.echo(f"{label}: login OK")


def main() -> None:
    cli(prog_name="clientlove")


if __name__ == "__main__":
    main()
