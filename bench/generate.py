"""A deterministic generator of large, realistic calendar histories.

``python bench/generate.py --events N --clients M --seed S --out DIR`` writes
``DIR/history.ics`` (N VEVENTs over the five years before ``now`` plus some future ones) and
``DIR/config.yaml`` (a valid clientlove config naming the M clients ``Client 0001 Ltd`` ...).

Everything comes from one ``random.Random(seed)``: the same arguments give byte-identical
files. The text is written directly (no icalendar objects, so 100,000 events take seconds)
and long lines are folded at 75 octets as RFC 5545 section 3.1 says.

About half of the events name a configured client: by the configured email
(``contact@c0001.example``), by another person at the client's domain or a subdomain of it
(``anna.berg@uk.c0001.example``), by the client organizing, or by a keyword in the title
(``Proj0001``). The rest is noise: the dentist, the gym, team meetings with colleagues at
``myfirm.example``, prospects that are no client, and near misses that contain a client's
name as a substring without naming the client.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

__all__ = ["DEFAULT_NOW", "ME", "Generated", "client_domain", "client_name", "fold", "generate"]

#: The fixed "today" histories are generated around (the benchmark's ``--now``).
DEFAULT_NOW = date(2026, 11, 23)
#: The consultant's own address (``me:`` in the config).
ME = "consultant@myfirm.example"
YEARS = 5
FUTURE_DAYS = 150
CRLF = "\r\n"

LONDON = ZoneInfo("Europe/London")

# Outlook's Windows zone names with the VTIMEZONE blocks Outlook writes for them, and the
# "Customized Time Zone" Outlook writes when the organizer's zone has no standard name
# (here UTC+10 without DST, so its mornings fall on the previous day in London).
WINDOWS_ZONES: dict[str, str] = {
    "Customized Time Zone": (
        "BEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1000\r\n"
        "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+1000\r\n"
        "TZOFFSETTO:+1000\r\nEND:DAYLIGHT\r\n"
    ),
    "GMT Standard Time": (
        "BEGIN:STANDARD\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010101T010000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\n"
    ),
    "W. Europe Standard Time": (
        "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\n"
    ),
    "Eastern Standard Time": (
        "BEGIN:STANDARD\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3\r\nEND:DAYLIGHT\r\n"
    ),
    "AUS Eastern Standard Time": (
        "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=4\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\n"
        "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=10\r\nEND:DAYLIGHT\r\n"
    ),
}

# (how an event's time is written, weight): an IANA TZID, "Z" (UTC), "" (floating) or a
# Windows name from WINDOWS_ZONES.
ZONES: list[tuple[str, int]] = [
    ("Europe/London", 44),
    ("America/New_York", 10),
    ("Australia/Sydney", 5),
    ("Z", 20),
    ("", 8),
    ("GMT Standard Time", 5),
    ("W. Europe Standard Time", 3),
    ("Eastern Standard Time", 3),
    ("AUS Eastern Standard Time", 2),
    ("Customized Time Zone", 3),
]

FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiro", "Isla", "Jonas",
         "Kemi", "Liam", "Maya", "Nils", "Olivia", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
         "Ursula", "Victor", "Wen", "Yusuf", "Zoë"]
LAST = ["Berg", "Clarke", "Dubois", "Evans", "Fischer", "García", "Hughes", "Ito", "Jensen",
        "Kowalski", "Lindqvist", "Müller", "Novak", "O'Brien", "Patel", "Rossi", "Schmidt",
        "Tanaka", "Umarov", "Virtanen", "Walsh", "Young"]
COLLEAGUES = ["alex.morgan", "sam.taylor", "jo.bennett", "chris.lee", "pat.kumar", "robin.shaw"]
SUBDOMAINS = ["uk", "us", "de", "mail", "eu", "sales", "it"]

CLIENT_TITLES = [
    "Call with {first} ({name})", "{name}: quarterly review", "Catch-up with {first}",
    "Lunch with {first} {last}", "Coffee with {first}", "{name} steering committee",
    "Workshop: data platform, phase {n}", "Demo of the new dashboard for {name}",
    "Check-in: {name}", "Intro call {name}", "Review of the proposal (v{n})",
    "Retro, sprint {n}", "Planning session with {first}",
]
KEYWORD_TITLES = [
    "{kw} steering committee", "{kw} kickoff", "Prep: {kw} workshop", "{kw} weekly",
    "Call re {kw}, budget", "{kw}: go-live review", "Status {kw} / phase {n}",
]
NOISE_TITLES = [
    "Dentist", "Gym", "Team meeting", "1:1 with {colleague}", "Pay invoices", "All hands",
    "Focus time", "Lunch", "Doctor", "Sprint planning", "School run", "Expenses",
    "Flight LHR-JFK", "Train to Manchester", "Haircut", "Write blog post", "Yoga",
    "Board prep", "Hiring interview", "Internal demo", "Car service", "Call mum",
]
ALLDAY_NOISE = ["Holiday", "Conference: DataWeek", "Bank holiday", "Out of office",
                "Training day", "Offsite", "Anna's birthday", "Moving house"]
DESCRIPTION_LINES = [
    "Agenda: review the roadmap and the open issues.",
    "Dial-in: https://meet.example/abc-defg-hij (PIN 4711)",
    "Notes: they asked about pricing for phase 2; send the figures by Friday.",
    "Bring the printed proposal and the signed NDA.",
    "Parking at the back, ask reception for a badge.",
    "Follow-up: share the slides, then book the next session.",
    "Café Müller, Zürich — table by the window.",
    "They want a second opinion on the migration plan; keep it short.",
    "Remember: their fiscal year ends in March.",
    "Coffee: flat white, no sugar. Kids: Mia and Leo.",
    "Action items:\n- update the plan\n- call the vendor",
    "Slides: https://drive.example/d/1x2y3z4w/view?usp=sharing",
]
NEED_LINES = [
    "#need: the export job fails every night, call back this week.",
    "They are stuck on the cut-over #need",
    "Budget cut, project on hold. #NEED a follow-up",
]
LOCATIONS = ["Their office, 3rd floor", "Zoom", "Microsoft Teams", "Café Müller, Zürich",
             "Room 4.12 (Big Ben)", "Google Meet", "東京オフィス", "Phone"]


def client_name(number: int) -> str:
    """The configured name of client ``number`` (1-based): ``Client 0001 Ltd``."""
    return f"Client {number:04d} Ltd"


def client_domain(number: int) -> str:
    """The configured domain of client ``number``: ``c0001.example``."""
    return f"c{number:04d}.example"


def fold(line: str) -> str:
    """Fold one content line at 75 octets (CRLF + space), never inside a UTF-8 character."""
    if len(line) <= 75 and (line.isascii() or len(line.encode()) <= 75):
        return line
    parts: list[str] = []
    limit = 75
    chunk: list[str] = []
    size = 0
    for char in line:
        width = 1 if char < "\x80" else len(char.encode())
        if size + width > limit:
            parts.append("".join(chunk))
            chunk, size, limit = [], 0, 74  # a continuation line starts with a space
        chunk.append(char)
        size += width
    parts.append("".join(chunk))
    return "\r\n ".join(parts)


def _escape(text: str) -> str:
    """A TEXT value as RFC 5545 section 3.3.11 writes it."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _param(value: str) -> str:
    """A parameter value, quoted when it holds a character that needs it."""
    return f'"{value}"' if any(c in value for c in ":;,") else value


@dataclass(frozen=True, slots=True)
class Generated:
    """What :func:`generate` wrote."""

    directory: Path
    history: Path
    config: Path
    events: int
    clients: int


@dataclass(slots=True)
class _Client:
    number: int
    name: str
    domain: str
    email: str
    keywords: tuple[str, ...]
    has_domain: bool
    active_until: date  # no contact after this day (a client gone quiet)


class _Writer:
    """Builds the VEVENT text; one instance per generated file."""

    def __init__(self, rng: random.Random, clients: list[_Client], now: date) -> None:
        self.rng = rng
        self.clients = clients
        self.now = now
        self.first_day = now.replace(year=now.year - YEARS)
        self.days = (now - self.first_day).days
        self.stamp = now.strftime("%Y%m%dT080000Z")
        self.out: list[str] = []
        self.count = 0
        self.zone_names = [z for z, _ in ZONES]
        self.zone_cum = _cumulative([w for _, w in ZONES])
        # Popularity: a few clients are met often, most now and then, some never.
        met = [c for c in clients if c.number % 20 != 0]  # every 20th client: never met
        rng.shuffle(met)
        self.met = met
        self.client_cum = _cumulative([1.0 / (i + 1) ** 0.8 for i in range(len(met))])

    # -- small pieces ------------------------------------------------------------------------

    def line(self, text: str) -> None:
        self.out.append(fold(text))

    def uid(self) -> str:
        rng = self.rng
        style = rng.random()
        if style < 0.5:
            return f"{rng.getrandbits(104):026x}@google.com"
        if style < 0.8:
            return ("040000008200E00074C5B7101A82E00800000000"
                    f"{rng.getrandbits(128):032X}00000000000000001000000")
        return f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}@bench.example"

    def day(self, *, weekday: bool = True, future: bool = False) -> date:
        rng = self.rng
        if future:
            day = self.now + timedelta(days=rng.randint(1, FUTURE_DAYS))
        else:
            day = self.first_day + timedelta(days=rng.randrange(self.days))
        if weekday and day.weekday() >= 5 and rng.random() < 0.9:
            day += timedelta(days=7 - day.weekday())
        return day

    def zone(self) -> str:
        return self.rng.choices(self.zone_names, cum_weights=self.zone_cum)[0]

    def pick_client(self, day: date) -> _Client | None:
        client = self.rng.choices(self.met, cum_weights=self.client_cum)[0]
        return client if day <= client.active_until else None

    def person(self) -> tuple[str, str, str]:
        first = self.rng.choice(FIRST)
        last = self.rng.choice(LAST)
        local = f"{first}.{last}".lower().replace("'", "")
        local = local.translate(str.maketrans("éëüí", "eeui"))
        return first, last, local

    def description(self, need: bool) -> str | None:
        rng = self.rng
        if rng.random() < 0.35 and not need:
            return None
        lines = rng.sample(DESCRIPTION_LINES, rng.randint(1, 4))
        if need:
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(NEED_LINES))
        return "\n".join(lines)

    # -- date-time properties ----------------------------------------------------------------

    @staticmethod
    def wall(zone: str, local: datetime) -> datetime:
        """The wall time to write: a London time becomes UTC for zone ``Z``."""
        if zone == "Z":
            return local.replace(tzinfo=LONDON).astimezone(UTC).replace(tzinfo=None)
        return local

    def when(self, name: str, zone: str, wall: datetime) -> str:
        """A ``DTSTART``-style line for a wall time in ``zone`` (already UTC for ``Z``)."""
        if zone == "Z":
            return f"{name}:{wall:%Y%m%dT%H%M%S}Z"
        if zone == "":
            return f"{name}:{wall:%Y%m%dT%H%M%S}"
        tzid = f'"{zone}"' if zone in WINDOWS_ZONES and self.rng.random() < 0.3 else zone
        return f"{name};TZID={tzid}:{wall:%Y%m%dT%H%M%S}"

    def stamp_of(self, zone: str, wall: datetime) -> str:
        """The value (with parameters) of an EXDATE / RECURRENCE-ID for an occurrence."""
        return self.when("X", zone, wall)[1:]

    # -- whole events ------------------------------------------------------------------------

    def head(self, uid: str, day: date, sequence: int = 0) -> None:
        self.out.append("BEGIN:VEVENT")
        self.line(f"UID:{uid}")
        self.out.append(f"DTSTAMP:{self.stamp}")
        created = day - timedelta(days=self.rng.randint(1, 40))
        self.out.append(f"CREATED:{created:%Y%m%d}T101500Z")
        self.out.append(f"LAST-MODIFIED:{created:%Y%m%d}T101600Z")
        if sequence:
            self.out.append(f"SEQUENCE:{sequence}")

    def tail(self, *, summary: str, description: str | None, location: str | None,
             alarm: bool, cancelled: bool, people: list[str], free: bool = False) -> None:
        self.line(f"SUMMARY:{_escape(summary)}")
        if location:
            self.line(f"LOCATION:{_escape(location)}")
        if description:
            self.line(f"DESCRIPTION:{_escape(description)}")
        if cancelled:
            self.out.append("STATUS:CANCELLED")
        else:
            self.out.append("STATUS:CONFIRMED")
        self.out.append("TRANSP:TRANSPARENT" if free else "TRANSP:OPAQUE")
        for text in people:
            self.line(text)
        if alarm:
            self.out += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder",
                         f"TRIGGER:-PT{self.rng.choice((10, 15, 30))}M", "END:VALARM"]
        self.out.append("END:VEVENT")
        self.count += 1

    def attendee(self, email: str, cn: str, partstat: str = "ACCEPTED") -> str:
        rng = self.rng
        if rng.random() < 0.05:
            email = email.upper() if rng.random() < 0.3 else email.title()
        role = "CHAIR" if rng.random() < 0.05 else "REQ-PARTICIPANT"
        return (f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE={role};PARTSTAT={partstat};RSVP=TRUE;"
                f"CN={_param(cn)};X-NUM-GUESTS=0:mailto:{email}")

    def organizer(self, email: str, cn: str) -> str:
        return f"ORGANIZER;CN={_param(cn)}:mailto:{email}"

    def content(self, day: date) -> dict:
        """Who and what: a client event (about half) or noise."""
        rng = self.rng
        roll = rng.random()
        me_part = "ACCEPTED"
        if rng.random() < 0.03:
            me_part = "DECLINED"
        people: list[str] = []
        fmt = {"n": rng.randint(1, 9), "colleague": rng.choice(COLLEAGUES).split(".")[0].title()}
        client = self.pick_client(day) if roll < 0.5 else None
        if client is not None:
            first, last, local = self.person()
            fmt.update(name=client.name, first=first, last=last,
                       kw=client.keywords[0] if client.keywords else client.name)
            route = rng.random()
            client_part = "DECLINED" if rng.random() < 0.04 else rng.choice(
                ("ACCEPTED", "ACCEPTED", "ACCEPTED", "TENTATIVE", "NEEDS-ACTION"))
            if route < 0.35 or (route < 0.5 and not client.has_domain):
                address = client.email
            elif route < 0.5:
                address = f"{local}@{client.domain}"
            elif route < 0.62:
                address = f"{local}@{rng.choice(SUBDOMAINS)}.{client.domain}"
            else:
                address = ""
            if route >= 0.62 and route < 0.75:  # the client organizes, I attend
                org = client.email if not client.has_domain or rng.random() < 0.5 else \
                    f"{local}@{client.domain}"
                people.append(self.organizer(org, f"{first} {last}"))
                people.append(self.attendee(ME, "Consultant", me_part))
                summary = rng.choice(CLIENT_TITLES).format(**fmt)
            elif route >= 0.75 and client.keywords:  # only a keyword in the title
                summary = rng.choice(KEYWORD_TITLES).format(**fmt)
                if rng.random() < 0.5:
                    people.append(self.organizer(ME, "Consultant"))
                    people.append(self.attendee(f"{rng.choice(COLLEAGUES)}@myfirm.example",
                                                "Colleague"))
            else:
                address = address or client.email
                summary = rng.choice(CLIENT_TITLES).format(**fmt)
                people.append(self.organizer(ME, "Consultant"))
                people.append(self.attendee(ME, "Consultant", me_part))
                cn = f"{last}, {first}" if rng.random() < 0.2 else f"{first} {last}"
                people.append(self.attendee(address, cn, client_part))
                if rng.random() < 0.3:
                    people.append(self.attendee(f"{rng.choice(COLLEAGUES)}@myfirm.example",
                                                "Colleague"))
                if rng.random() < 0.04:  # a second client in the same meeting
                    other = self.pick_client(day)
                    if other is not None:
                        people.append(self.attendee(other.email, other.name))
            need = rng.random() < 0.06
            return {"summary": summary, "people": people, "description": self.description(need),
                    "location": rng.choice(LOCATIONS) if rng.random() < 0.4 else None,
                    "client": True}
        # noise
        kind = rng.random()
        if kind < 0.08:  # a prospect: an outside domain that is no client
            first, last, local = self.person()
            summary = f"Intro call with {first} (prospect)"
            people.append(self.organizer(ME, "Consultant"))
            people.append(self.attendee(f"{local}@p{rng.randint(1, 900):04d}.example",
                                        f"{first} {last}"))
        elif kind < 0.11:  # near misses: a client's text as a substring, naming no client
            number = rng.choice(self.clients).number
            summary = rng.choice((f"Proj{number:04d}9 archive", f"Read notc{number:04d}.example",
                                  f"Compare with Proj{number:04d}x"))
            people.append(self.organizer(ME, "Consultant"))
            people.append(self.attendee(f"info@notc{number:04d}.example", "Someone else"))
        elif kind < 0.45:  # team meetings with colleagues
            summary = rng.choice(NOISE_TITLES[2:4] + NOISE_TITLES[5:6] + NOISE_TITLES[9:10]
                                 + NOISE_TITLES[17:20]).format(**fmt)
            people.append(self.organizer(f"{rng.choice(COLLEAGUES)}@myfirm.example",
                                         "Colleague"))
            people.append(self.attendee(ME, "Consultant", me_part))
            for colleague in rng.sample(COLLEAGUES, rng.randint(1, 4)):
                people.append(self.attendee(f"{colleague}@myfirm.example",
                                            colleague.replace(".", " ").title()))
        else:
            summary = rng.choice(NOISE_TITLES).format(**fmt)
        return {"summary": summary, "people": people, "description": self.description(False),
                "location": rng.choice(LOCATIONS) if rng.random() < 0.2 else None,
                "client": False}

    def single(self) -> None:
        """One non-recurring event: timed (in one of the zones) or all-day."""
        rng = self.rng
        future = rng.random() < 0.04
        allday = rng.random() < 0.08
        day = self.day(weekday=not allday, future=future)
        uid = self.uid()
        self.head(uid, day, sequence=rng.choice((0, 0, 0, 1, 2)))
        what = self.content(day)
        if allday:
            length = 1 if rng.random() < 0.8 else rng.randint(2, 5)
            self.out.append(f"DTSTART;VALUE=DATE:{day:%Y%m%d}")
            self.out.append(f"DTEND;VALUE=DATE:{day + timedelta(days=length):%Y%m%d}")
            if not what["client"] and not what["people"] and rng.random() < 0.6:
                what["summary"] = rng.choice(ALLDAY_NOISE)
        else:
            zone = self.zone()
            start = self.wall(zone, datetime(day.year, day.month, day.day,
                                             rng.randint(7, 18), rng.choice((0, 15, 30, 45))))
            self.out.append(self.when("DTSTART", zone, start))
            minutes = rng.choice((15, 30, 30, 45, 60, 60, 60, 90, 120))
            if rng.random() < 0.15:
                self.out.append(f"DURATION:PT{minutes}M")
            else:
                self.out.append(self.when("DTEND", zone, start + timedelta(minutes=minutes)))
        self.tail(summary=what["summary"], description=what["description"],
                  location=what["location"], alarm=rng.random() < 0.15,
                  cancelled=rng.random() < 0.03, people=what["people"], free=allday)

    def series(self, budget: int) -> None:
        """A recurring series (weekly or monthly, COUNT, UNTIL or open), EXDATEs, overrides.

        Writes at most ``budget`` VEVENTs (the master plus overrides).
        """
        rng = self.rng
        day = self.day()
        if rng.random() < 0.1:  # a series reaching into the future
            day = self.now - timedelta(days=rng.randint(0, 120))
            day += timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)
        zone = self.zone() or "Europe/London"  # recurring events are not floating here
        start = self.wall(zone, datetime(day.year, day.month, min(day.day, 28),
                                         rng.randint(8, 17), rng.choice((0, 30))))
        weekly = rng.random() < 0.7
        interval = rng.choice((1, 1, 1, 2)) if weekly else 1
        occurrences = rng.randint(4, 40) if weekly else rng.randint(3, 12)

        def nth(k: int) -> datetime:
            if weekly:
                return start + timedelta(weeks=k * interval)
            month = start.month - 1 + k
            return start.replace(year=start.year + month // 12, month=month % 12 + 1)

        rule = f"FREQ=WEEKLY;INTERVAL={interval}" if weekly else \
            f"FREQ=MONTHLY;BYMONTHDAY={start.day}"
        end_style = rng.random()
        if end_style < 0.55:
            rule += f";COUNT={occurrences}"
        elif end_style < 0.9:
            until = nth(occurrences - 1).date() + timedelta(days=1)
            rule += f";UNTIL={until:%Y%m%d}T000000Z"
        uid = self.uid()
        what = self.content(day)
        self.head(uid, day, sequence=rng.choice((0, 1)))
        self.out.append(self.when("DTSTART", zone, start))
        self.out.append(self.when("DTEND", zone, start + timedelta(minutes=rng.choice((30, 60)))))
        self.out.append(f"RRULE:{rule}")
        slots = list(range(1, occurrences))
        rng.shuffle(slots)
        if rng.random() < 0.3:
            excluded = rng.randint(1, 2)
            for k in sorted(slots[:excluded]):
                self.out.append(f"EXDATE{self.stamp_of(zone, nth(k))}")
            slots = slots[excluded:]
        self.tail(summary=what["summary"], description=what["description"],
                  location=what["location"], alarm=rng.random() < 0.3,
                  cancelled=rng.random() < 0.01, people=what["people"])
        if rng.random() < 0.3:
            for k in sorted(slots[: min(rng.randint(1, 2), budget - 1)]):
                original = nth(k)
                moved = original + rng.choice((timedelta(hours=2), timedelta(days=1),
                                               timedelta(days=-1), timedelta(0)))
                self.head(uid, day, sequence=2)
                self.out.append(f"RECURRENCE-ID{self.stamp_of(zone, original)}")
                self.out.append(self.when("DTSTART", zone, moved))
                self.out.append(self.when("DTEND", zone, moved + timedelta(minutes=45)))
                summary = what["summary"]
                if rng.random() < 0.5:
                    summary += " (moved)"
                self.tail(summary=summary,
                          description=self.description(rng.random() < 0.15),
                          location=what["location"], alarm=False,
                          cancelled=rng.random() < 0.2, people=what["people"])

    def yearly(self) -> None:
        """An all-day yearly series (a birthday), some with an UNTIL date."""
        rng = self.rng
        day = self.day(weekday=False)
        first, _last, _ = self.person()
        self.head(self.uid(), day)
        self.out.append(f"DTSTART;VALUE=DATE:{day:%Y%m%d}")
        self.out.append(f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}")
        rule = "FREQ=YEARLY"
        if rng.random() < 0.3:
            rule += f";UNTIL={day.year + rng.randint(1, 4)}{day:%m%d}"
        self.out.append(f"RRULE:{rule}")
        self.tail(summary=f"{first}'s birthday", description=None, location=None,
                  alarm=False, cancelled=False, people=[], free=True)


def _cumulative(weights: list[float] | list[int]) -> list[float]:
    total = 0.0
    out = []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _clients(count: int, rng: random.Random, now: date) -> list[_Client]:
    clients = []
    for number in range(1, count + 1):
        keywords: tuple[str, ...] = (f"Proj{number:04d}",)
        if number % 11 == 0:
            keywords += (f"Falcon {number:04d}",)  # a phrase keyword
        elif number % 13 == 0:
            keywords = ()
        quiet = rng.random() < 0.05
        clients.append(_Client(
            number=number,
            name=client_name(number),
            domain=client_domain(number),
            email=f"contact@{client_domain(number)}",
            keywords=keywords,
            has_domain=number % 7 != 0,
            active_until=now - timedelta(days=rng.randint(400, 1500)) if quiet else date.max,
        ))
    return clients


def _config_text(clients: list[_Client], now: date) -> str:
    data: dict = {
        "timezone": "Europe/London",
        "me": [ME],
        "sources": [{"type": "ics", "path": "history.ics"}],
        "target": {"type": "ics", "path": "reminders.ics"},
        "state_path": "state.sqlite",
        "clients": [],
        "announcements": [],
    }
    for client in clients:
        entry: dict = {"name": client.name, "emails": [client.email]}
        if client.has_domain:
            entry["domains"] = [client.domain]
        if client.keywords:
            entry["keywords"] = list(client.keywords)
        if client.number % 10 == 1:
            entry["notes"] = {"coffee": "flat white", "hobbies": "sailing"}
        data["clients"].append(entry)
    named = [c.name for c in clients[:3]]
    if named:
        data["announcements"].append({
            "date": (now - timedelta(days=20)).isoformat(),
            "text": "New: a half-day data platform health check",
            "clients": named,
        })
    else:
        del data["announcements"]
    head = f"# Generated by bench/generate.py for a history around {now.isoformat()}.\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def generate(
    events: int,
    clients: int,
    seed: int,
    out_dir: Path | str,
    now: date | datetime = DEFAULT_NOW,
    *,
    xwr_timezone: str | None = None,
) -> Generated:
    """Write ``history.ics`` (exactly ``events`` VEVENTs) and ``config.yaml`` to ``out_dir``.

    ``xwr_timezone`` adds Google's ``X-WR-TIMEZONE`` to the calendar.
    """
    if events < 0 or clients < 0:
        raise ValueError("events and clients must not be negative")
    today = now.date() if isinstance(now, datetime) else now
    rng = random.Random(seed)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    client_list = _clients(clients, rng, today)
    writer = _Writer(rng, client_list, today)
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//clientlove//bench generator//EN",
            "CALSCALE:GREGORIAN", "METHOD:PUBLISH", "X-WR-CALNAME:Work"]
    if xwr_timezone:
        head.append(f"X-WR-TIMEZONE:{xwr_timezone}")
    for name, body in WINDOWS_ZONES.items():
        head.append(f"BEGIN:VTIMEZONE\r\nTZID:{name}\r\n{body}END:VTIMEZONE")
    writer.out.extend(head)
    while writer.count < events:
        left = events - writer.count
        roll = rng.random()
        if not client_list and roll < 0.5:
            roll = 0.5  # no clients: noise only
        if roll < 0.03 and left >= 1:
            writer.series(left)
        elif roll < 0.035:
            writer.yearly()
        else:
            writer.single()
    writer.out.append("END:VCALENDAR")
    history = directory / "history.ics"
    history.write_bytes((CRLF.join(writer.out) + CRLF).encode("utf-8"))
    config = directory / "config.yaml"
    config.write_bytes(_config_text(client_list, today).encode("utf-8"))
    return Generated(directory, history, config, writer.count, clients)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``--events N --clients M --seed S --out DIR [--now DATE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--now", type=date.fromisoformat, default=DEFAULT_NOW,
                        help="the day the history leads up to (default %(default)s)")
    parser.add_argument("--xwr-timezone", help="add X-WR-TIMEZONE (as Google exports do)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    made = generate(args.events, args.clients, args.seed, args.out, args.now,
                    xwr_timezone=args.xwr_timezone)
    size = made.history.stat().st_size / 1e6
    print(f"wrote {made.history} ({made.events} events, {size:.1f} MB) and {made.config} "
          f"({made.clients} clients) in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
