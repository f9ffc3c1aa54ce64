"""The prep note a reminder carries (docs/design.md section 4): what to know before the call.

Pure text from plain inputs. Nothing in it depends on the wall clock, only on the plan, so
the same history gives the same note and an unchanged reminder is never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from daemon.counter import CounterRule, following_interval
from daemon.model import Interaction
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

#: Placeholders are in square brackets: Google renders a description as HTML, where
#: ``<date>`` would vanish as an unknown tag. A header line left empty (no ``Cc``) is dropped.
EMAIL_TEMPLATE = """To: {email}
Cc: {account_manager}
Subject: As per our conversation: {project}

Hi {first_name},

thank you for taking the time today. As per our conversation:

- [what we talked about, in one or two lines]
- [the idea or link I promised]

Could you [the one action you ask for] by [date]?

Best regards,
{me}"""

#: The fields an email template may use (the config checks templates against them).
EMAIL_FIELDS = ("client", "first_name", "me", "email", "project", "account_manager")

#: Where the client has no email address, the ``To:`` line says what to fill in.
NO_EMAIL = "[their email address]"

#: Local parts of shared mailboxes: nobody is called "Info", so the greeting goes to the team.
ROLE_ADDRESSES = frozenset({
    "info", "office", "hello", "hi", "sales", "team", "contact", "contacts", "admin",
    "support", "help", "helpdesk", "service", "services", "mail", "email", "post",
    "enquiries", "enquiry", "inquiries", "inquiry", "billing", "accounts", "accounting",
    "finance", "invoices", "invoice", "orders", "booking", "bookings", "reception",
    "marketing", "press", "media", "hr", "jobs", "careers", "legal", "privacy", "security",
    "it", "webmaster", "postmaster", "hostmaster", "noreply", "no-reply", "donotreply",
    "feedback", "general", "management", "purchasing", "procurement", "kontakt", "buero",
    "bureau", "empfang", "verwaltung",
})

#: Titles written before a name (``Dr. Jane Doe``): the greeting uses the name after them.
HONORIFICS = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "sir", "dame"})

DESCRIPTION_CUT = 400
TITLE_CUT = 200

#: Starts the line of the note that explains the markers; it names them, so it is left out
#: when our past reminders are searched for markers the user wrote.
HOW_TO_PREFIX = "Counter help:"


class ClientProfile(Protocol):
    """The parts of a client's record the note uses (the config's client satisfies it)."""

    name: str
    emails: Sequence[str]
    phone: str | None
    notes: Mapping[str, str] | str | None

    #: a person's name to greet; the email's Cc; what the subject names (all optional)
    contact: str | None
    account_manager: str | None
    project: str | None

    def next_birthday(self, on_or_after: date) -> date | None: ...


#: How much of the last meeting's description the note quotes (``prep_note.last_conversation``).
LAST_CONVERSATION_MODES = ("full", "redacted", "off")


@dataclass(frozen=True, slots=True)
class NoteSettings:
    rule: CounterRule
    reset_marker: str = "#need"
    skip_marker: str = "#skip"
    ideas: tuple[str, ...] = IDEAS
    email_template: str = EMAIL_TEMPLATE
    me: str = ""
    #: "full": the start of the description as it is; "redacted": without the lines that
    #: carry dial-in details (links, passcodes, PINs, meeting ids, phone numbers); "off": none
    last_conversation: str = "redacted"


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


# A line of an invitation that lets someone join the meeting or dial in is dropped whole: a
# link, a scheme a client dials or joins by, a code's or an id's label, or a long number.
_LINK = r"\b[a-z][a-z0-9+.-]*://|\bwww\.|\b[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}/\S"
_SCHEME = r"\b(?:tel|sip|sips|mailto|callto|facetime|skype|msteams|zoommtg|webex|meet):"
_CODE_WORDS = (
    r"pass\s*(?:code|word|wort|cod)|\bpwd\b|\bpin(?:\s*code)?\s*[:#=]|\bpin\s*\d"
    r"|\bkennwort|\bkenncode|zugangs\s*code"
    r"|access\s*code|conference\s*code|participant\s*code|attendee\s*code|host\s*key"
    r"|security\s*code|\bcode\s*(?:pin|d.acc[eè]s)|mot\s*de\s*passe|\bcontrase[nñ]a"
)
_ID_WORDS = (
    r"meeting\s*(?:id|number|no\b|#)|conference\s*(?:id|number)|webinar\s*id"
    r"|event\s*(?:id|number)|(?:besprechungs|konferenz|meeting)-?\s*id|\bid\s*[:#]"
    r"|one\s*tap|dial[\s-]*in|\bdial\b|join\s*by\s*phone|phone\s*conference"
)
_SENSITIVE = re.compile("|".join((_LINK, _SCHEME, _CODE_WORDS, _ID_WORDS)), re.IGNORECASE)
#: Seven or more digits in a run of digits and phone separators: a phone number, a PIN or
#: a meeting id written alone ("123 4567 8901", "+1 646 558 8656,,8765#").
_NUMBER = re.compile(r"\+?\d(?:[\s().\-/,#*]*\d){6,}")
#: Dates and times are not numbers to hide ("2006-05-01", "01.05.2006", "10:00-11:30").
_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b")


def redact(text: str) -> str:
    """The description without the lines a stranger could use to join or dial into the
    meeting: links, passcodes, PINs, meeting ids and phone numbers (``redacted`` mode)."""
    kept = []
    for line in text.splitlines():
        if _SENSITIVE.search(line) or _NUMBER.search(_DATE.sub(" ", line)):
            continue
        kept.append(line)
    return "\n".join(kept)


def last_conversation(last: Interaction, mode: str) -> str | None:
    """What the note quotes of the last meeting's description, or ``None``: never the
    text of a private or confidential event, nothing in ``off`` mode."""
    if mode == "off" or last.private:
        return None
    text = redact(last.description) if mode == "redacted" else last.description
    quoted = _quote(text)
    return quoted or None


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
        if last.private:  # its title is its text too
            title = "(a private event)"
        else:
            title = _quote(last.title, TITLE_CUT) or "(no title)"
        lines.append(f"Last contact: {last.day.isoformat()} {title}")
        quoted = last_conversation(last, settings.last_conversation)
        if quoted:
            lines.append(f"Last conversation: {quoted}")

    lines.append("")
    counter = plan.counter
    following = following_days(plan, day, settings.rule)
    if counter.interval_days is None:
        lines.append(f"Counter: first contact; if this goes fine, next in {weeks(following)}.")
    else:
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
        # one line each, so user_text knows every line of it as ours
        lines.append(f"News to share ({news.day.isoformat()}): {' '.join(news.text.split())}")

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
    lines.append(email(client, settings))
    return "\n".join(lines)


def following_days(plan: ClientPlan, day: date, rule: CounterRule) -> int:
    """The interval after a fine contact on ``day``: the plan's, or the same step for
    another day (a reminder placed later than the plan's day)."""
    if plan.following_days is not None and day == plan.reminder_day:
        return plan.following_days
    return following_interval(plan.counter, rule, day, [n.day for n in plan.news])


def email(client: ClientProfile, settings: NoteSettings) -> str:
    """The "as per our conversation" email, filled in and ready to send."""
    text = settings.email_template.format(
        client=client.name,
        first_name=first_name(client),
        me=settings.me or "me",
        email=client.emails[0] if client.emails else NO_EMAIL,
        project=client.project or client.name,
        account_manager=client.account_manager or "",
    )
    return "\n".join(line for line in text.splitlines() if not _EMPTY_HEADER.fullmatch(line))


_EMPTY_HEADER = re.compile(r"(?i)(to|cc|bcc):\s*")


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
    """Whom the email greets: the configured contact's first name, else the first personal
    address's (``jane.doe@`` gives Jane), else the client's team (``Acme Corp team``)."""
    if client.contact:
        words = [w for w in client.contact.split() if w.rstrip(".").lower() not in HONORIFICS]
        if words:
            return words[0]
    for address in client.emails:
        local = address.partition("@")[0].lower()
        first = re.split(r"[._+-]", local)[0]
        if local in ROLE_ADDRESSES or first in ROLE_ADDRESSES:
            continue
        if first.isalpha() and len(first) > 1:
            return first.capitalize()
    return f"{client.name} team"
