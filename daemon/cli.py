"""The ``clientlove`` command line: thin, over :mod:`daemon.cycle`.

Exit codes: 0 fine; 1 a source or the target failed; 3 the cycle refused to act (the
mass-change guard); 73 the state file cannot be used; 78 the config is broken (EX_CONFIG).
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from daemon.config import EX_CONFIG, ConfigError, default_state_path, find_config_path, load_config
from daemon.cycle import CycleReport, client_specs, read_scope, read_sources, run_cycle
from daemon.logsetup import setup_logging
from daemon.model import ReadScope
from daemon.planning import ClientPlan
from daemon.reconcile import Kind
from daemon.state import State, StateError
from providers import build_source, build_target

EX_FAILED = 1
EX_REFUSED = 3
EX_CANTCREAT = 73

log = logging.getLogger("clientlove")


@dataclass(slots=True)
class Options:
    config_path: Path | None
    now: datetime | None
    verbose: int


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Config file (else $CLIENTLOVE_CONFIG, the XDG config dir, /etc/clientlove).")
@click.option("--now", help="Pretend it is this ISO date-time (planning 'what if', tests).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="clientlove")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, now: str | None, verbose: int) -> None:
    """Keep in touch with every client: reminders from your own calendar history."""
    setup_logging(verbose)
    ctx.obj = Options(config_path, None, verbose)
    ctx.meta["now_text"] = now


def _config(ctx: click.Context) -> Any:
    options: Options = ctx.obj
    try:
        path = find_config_path(options.config_path)
        config = load_config(path)
    except ConfigError as exc:
        err = Console(stderr=True)
        err.print(f"[bold red]config error[/] in {getattr(exc, 'path', '') or 'the config'}:",
                  highlight=False)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)  # one line each, never wrapped
        ctx.exit(EX_CONFIG)
    options.now = parse_now(ctx.meta.get("now_text"), config.tz)
    return config


@contextmanager
def _state(ctx: click.Context, config: Any, *, scratch: bool = False):
    """The state file, or (``scratch``) an in-memory copy of it that nothing is saved from."""
    path = default_state_path(config)
    try:
        state = State.copy_of(path) if scratch else State(path)
    except (StateError, OSError) as exc:
        Console(stderr=True).print(f"[bold red]state error:[/] {exc}", highlight=False)
        ctx.exit(EX_CANTCREAT)
    try:
        yield state
    finally:
        state.close()


def _progress():
    """A progress display on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        return None
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
    err = Console(stderr=True)
    for error in report.errors:
        err.print(f"[bold red]error:[/] {error}", highlight=False)
    if report.refused:
        err.print(f"[bold red]refused:[/] {report.refused}", highlight=False)
        ctx.exit(EX_REFUSED)
    if report.errors:
        ctx.exit(EX_FAILED)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what would be created, moved or kept.")
@click.option("--force", is_flag=True, help="Act even when the mass-change guard objects.")
@click.pass_context
def sync(ctx: click.Context, dry_run: bool, force: bool) -> None:
    """Run one cycle: read the history, write the reminders that are due."""
    report = _cycle(ctx, dry_run=dry_run, force=force, scratch=dry_run)
    out = Console(highlight=False)
    verbs = {Kind.CREATE: "create", Kind.UPDATE: "move/refresh", Kind.DELETE: "delete",
             Kind.KEEP: "keep", Kind.LEAVE: "leave (edited by you)"}
    prefix = "would " if dry_run else ""
    for action in report.actions:
        if action.kind is Kind.KEEP and not dry_run:
            continue
        day = action.reminder.start.date() if action.reminder else (
            action.current.start if action.current else "")
        why = f" ({action.why})" if action.why else ""
        out.print(f"{prefix}{verbs[action.kind]}: {action.client} {day}{why}", markup=False)
    out.print(report.summary(), markup=False)
    _finish(ctx, report)


def _status_rows(plans: list[ClientPlan]) -> list[dict[str, Any]]:
    def iso(value):
        return value.isoformat() if value is not None else None

    return [
        {
            "client": p.client,
            "last_contact": iso(p.last_contact.day if p.last_contact else None),
            "interval_days": p.counter.interval_days,
            "due": iso(p.due),
            "booked": iso(p.booked),
            "reminder": iso(p.reminder_day),
            "reminder_at": iso(p.reminder_at),
            "moved_by_user": p.moved_by_user,
            "overdue": p.overdue,
            "notes": list(p.notes),
        }
        for p in plans
    ]


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per client.")
@click.option("--full-read", is_flag=True, hidden=True,
              help="Parse every event, skipping the fast prefilter (for checks and benchmarks).")
@click.pass_context
def status(ctx: click.Context, as_json: bool, full_read: bool) -> None:
    """Show every client: last contact, interval, due date, booked meeting, reminder."""
    report = _cycle(ctx, dry_run=True, prefilter=not full_read)
    rows = _status_rows(report.plans)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        table = Table(title=f"clientlove status on {report.today.isoformat()}")
        table.add_column("client", overflow="fold")
        for column in ("last contact", "every", "due", "booked", "reminder"):
            table.add_column(column, no_wrap=True)
        table.add_column("notes", overflow="fold")
        for row in rows:
            every = f"{row['interval_days']} d" if row["interval_days"] else "-"
            table.add_row(row["client"], row["last_contact"] or "never", every, row["due"],
                          row["booked"] or "-", row["reminder"] or "-", "; ".join(row["notes"]))
        Console().print(table)
    _finish(ctx, report)


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the config and print every problem (exit 78 when there is one)."""
    config = _config(ctx)
    click.echo(f"{config.config_path}: OK ({len(config.sources)} sources, "
               f"{len(config.clients)} clients, target {config.target.type})")


@cli.command()
@click.option("--limit", default=50, show_default=True, help="At most this many entries.")
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
        text = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True).rstrip()
        out.append(f"# last met {item['last']}, {item['meetings']} meetings: {item['title']}\n"
                   + text)
    click.echo("\n".join(out) if out else "# everyone met is covered by a client")
    for warning in report.warnings:
        log.warning("%s", warning)
    _finish(ctx, report)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run as a service: a cycle now and every service.interval, the feed, sd_notify."""
    from daemon.service import Service

    options: Options = ctx.obj
    try:
        path = find_config_path(options.config_path)
        service = Service(path)
    except ConfigError as exc:
        err = Console(stderr=True)
        err.print("[bold red]config error:[/]", highlight=False)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)  # one line each, never wrapped
        ctx.exit(EX_CONFIG)
    except (StateError, OSError) as exc:
        Console(stderr=True).print(f"[bold red]state error:[/] {exc}", highlight=False)
        ctx.exit(EX_CANTCREAT)
    ctx.exit(service.run())


@cli.group()
def feed() -> None:
    """The subscribable ICS feed."""


@feed.command("url")
@click.pass_context
def feed_url_command(ctx: click.Context) -> None:
    """Print the feed's subscription URL (and the webcal:// form)."""
    from daemon.credentials import CredentialError, resolve_secret
    from daemon.feed import feed_url

    config = _config(ctx)
    try:
        token = resolve_secret(config.feed.token_credential).reveal()
    except CredentialError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        ctx.exit(EX_FAILED)
    base = config.feed.public_url or f"http://{config.feed.listen}"
    https, webcal = feed_url(base, token)
    click.echo(https)
    click.echo(webcal)


@cli.group()
def auth() -> None:
    """Store the secrets the config names (in the system keyring)."""


@auth.command("caldav")
@click.argument("credential")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def auth_caldav(ctx: click.Context, credential: str, password_stdin: bool) -> None:
    """Ask for a CalDAV password (no echo) and store it as CREDENTIAL in the keyring.

    When the config can be read, every CalDAV source or target naming CREDENTIAL is then
    tried with it.
    """
    from daemon.credentials import CredentialError, is_plain_name, store_secret

    if not is_plain_name(credential):
        raise click.BadParameter("a plain name, like work-dav", param_hint="CREDENTIAL")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt(f"Password for {credential}", hide_input=True,
                                confirmation_prompt=True)
    if not password:
        raise click.UsageError("an empty password was not stored")
    try:
        store_secret(credential, password)
    except CredentialError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        ctx.exit(EX_FAILED)
    click.echo(f"stored credential {credential!r} in the system keyring")
    _check_logins(ctx, credential)


@auth.command("google")
@click.option("--client-secrets", "secrets_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The OAuth client (Desktop app) JSON from the Google Cloud console.")
@click.option("--credential", required=True, help="The name the config gives this sign-in.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the sign-in to this file (mode 0600, for systemd LoadCredential=) "
                   "instead of the keyring.")
@click.pass_context
def auth_google(ctx: click.Context, secrets_file: Path, credential: str,
                output: Path | None) -> None:
    """Sign in to Google (installed-app flow) and store the authorized-user JSON.

    Prints a URL to open in any browser; works on a headless machine when the browser's
    machine can reach this one's loopback (an SSH tunnel), as Google's installed-app flow
    requires.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    from daemon.credentials import CredentialError, is_plain_name, store_secret
    from providers.google import SCOPES

    if not is_plain_name(credential):
        raise click.BadParameter("a plain name, like google-me", param_hint="--credential")
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(secrets_file), scopes=SCOPES)
    except ValueError as exc:
        raise click.BadParameter(f"not an OAuth client file: {exc}",
                                 param_hint="--client-secrets") from None
    try:
        creds = flow.run_local_server(
            open_browser=False, port=0,
            authorization_prompt_message="Open this URL in a browser to sign in: {url}",
            success_message="Signed in: you can close this tab and go back to clientlove.")
    except Exception as exc:  # oauthlib's errors carry no secret, only a code
        Console(stderr=True).print(
            f"[bold red]sign-in failed:[/] {type(exc).__name__}: "
            f"{getattr(exc, 'error', '') or getattr(exc, 'description', '') or 'see above'}",
            highlight=False)
        ctx.exit(EX_FAILED)
    text = creds.to_json()
    if output is not None:
        write_private(output, text)
        click.echo(f"wrote the sign-in to {output} (mode 0600); point LoadCredential= at it")
        return
    try:
        store_secret(credential, text)
    except CredentialError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        ctx.exit(EX_FAILED)
    click.echo(f"stored the Google sign-in as credential {credential!r} in the system keyring")


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only, never briefly readable by others."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _check_logins(ctx: click.Context, credential: str) -> None:
    """Try each CalDAV entry of the config that names ``credential`` (best effort)."""
    from providers.base import ProviderError

    try:
        config = load_config(find_config_path(ctx.obj.config_path))
    except (ConfigError, OSError):
        return
    entries = [*config.sources, config.target]
    for entry in entries:
        if getattr(entry, "type", "") != "caldav" or entry.credential != credential:
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
