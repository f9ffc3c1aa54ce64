"""The prep note a reminder carries (DESIGN section 4): what to know before the call.

Pure text from plain inputs. Nothing in it depends on the wall clock, only on the plan, so
the same history gives the same note and an unchanged reminder is never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from daemon.counter import CounterRule
from daemon.planning import ClientPlan

IDEAS: tuple[str, ...] = (
    "Call with one idea for their business: no pitch, just the idea.",
    "Send a link to an article or talk relevant to their industry, with one line on why.",
    "Invite them to the next user group or meetup you are going to.",
    "Ask how the last change you worked on together is holding up in practice.",
    "Bring their favourite coffee to the next meeting, or send a voucher.",
    "Introduce them to someone in your network who solves a problem they mentioned.",
    "Share a short lesson learned from another project (anonymised) that fits their plans.",
    "Ask what is keeping them busy this quarter, and listen.",
)

EMAIL_TEMPLATE = """Subject: As per our conversation

Hi {first_name},

thank you for taking the time today. As per our conversation:

- <what we talked about, in one or two lines>
- <the idea or link I promised>

Could you <the one action you ask for> by <date>?

Best regards,
{me}"""

DESCRIPTION_CUT = 400

#: Starts the line of the note that explains the markers; it names them, so it is left out
#: when our past reminders are searched for markers the user wrote.
HOW_TO_PREFIX = "Counter help:"


class ClientProfile(Protocol):
    """The parts of a client's record the note uses (the config's client satisfies it)."""

    name: str
    emails: Sequence[str]
    phone: str | None
    notes: Mapping[str, str] | str | None

    def next_birthday(self, on_or_after: date) -> date | None: ...


@dataclass(frozen=True, slots=True)
class NoteSettings:
    rule: CounterRule
    reset_marker: str = "#need"
    skip_marker: str = "#skip"
    ideas: tuple[str, ...] = IDEAS
    email_template: str = EMAIL_TEMPLATE
    me: str = ""


def weeks(days: int) -> str:
    """A human interval: "1 week", "2 weeks", "9 days", "about 2 months"."""
    if days % 7 == 0:
        n = days // 7
        return f"{n} week" if n == 1 else f"{n} weeks"
    if days >= 56:
        return f"{days} days (about {round(days / 30.4)} months)"
    return f"{days} days"


def idea_for(client: str, generation: int, ideas: Sequence[str]) -> str:
    """One idea, rotated per client: each new reminder offers the next one."""
    if not ideas:
        return ""
    offset = sum(client.encode()) % len(ideas)
    return ideas[(offset + generation) % len(ideas)]


def _quote(text: str, limit: int = DESCRIPTION_CUT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def prep_note(
    client: ClientProfile,
    plan: ClientPlan,
    day: date,
    generation: int,
    settings: NoteSettings,
) -> str:
    """The full plain-text prep note for the reminder on ``day``."""
    lines: list[str] = [f"Client love for {client.name}."]
    reach = [*client.emails]
    if client.phone:
        reach.append(client.phone)
    if reach:
        lines.append("Reach: " + ", ".join(reach))

    lines.append("")
    last = plan.last_contact
    if last is None:
        lines.append("Last contact: none in the history window.")
    else:
        title = last.title or "(no title)"
        lines.append(f"Last contact: {last.day.isoformat()} {title}")
        if last.description.strip():
            lines.append(f"Last conversation: {_quote(last.description)}")

    lines.append("")
    counter = plan.counter
    if counter.interval_days is None:
        lines.append(f"Counter: first contact; then every {weeks(settings.rule.base_days)}.")
    else:
        following = settings.rule.capped(2 * counter.interval_days, day)
        lines.append(
            f"Counter: now every {weeks(counter.interval_days)}; if this goes fine, next in "
            f"{weeks(following)}."
        )
    lines.append(
        f"{HOW_TO_PREFIX} if they need help or you have news, write {settings.reset_marker} in "
        f"this event to go back to every {weeks(settings.rule.base_days)}; write "
        f"{settings.skip_marker} in it (or delete it) if the call does not happen."
    )
    for news in plan.news:
        lines.append(f"News to share ({news.day.isoformat()}): {news.text}")

    personal = _personal(client.notes)
    birthday = client.next_birthday(day)
    if birthday is not None and birthday - day <= timedelta(days=30):
        personal.append(f"Birthday: {birthday.strftime('%A %d %B')}")
    if personal:
        lines.append("")
        lines.append("Personal:")
        lines.extend(f"- {item}" for item in personal)

    idea = idea_for(client.name, generation, settings.ideas)
    if idea:
        lines.append("")
        lines.append(f"Idea: {idea}")

    lines.append("")
    lines.append("After the call, send:")
    lines.append(
        settings.email_template.format(
            client=client.name, first_name=first_name(client), me=settings.me or "me"
        )
    )
    return "\n".join(lines)


#: Lines of the note that quote the history or explain the markers: a marker in them was
#: written by us (or quoted from a meeting that already counted), never by the user here.
QUOTING_PREFIXES = (HOW_TO_PREFIX, "Last contact:", "Last conversation:", "News to share")


def user_text(description: str) -> str:
    """A reminder's description without our lines that quote markers."""
    return "\n".join(line for line in description.splitlines()
                     if not line.startswith(QUOTING_PREFIXES))


def _personal(notes: Mapping[str, str] | str | None) -> list[str]:
    if not notes:
        return []
    if isinstance(notes, str):
        return [line.strip() for line in notes.splitlines() if line.strip()]
    return [f"{key.capitalize()}: {value}" for key, value in notes.items()]


def first_name(client: ClientProfile) -> str:
    """Whom the email greets: the first contact's first name, read from the address."""
    for email in client.emails:
        local = re.split(r"[._+-]", email.partition("@")[0])[0]
        if local.isalpha() and len(local) > 1:
            return local.capitalize()
    return client.name
