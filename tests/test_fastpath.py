"""The fast path (the raw-text prefilter) gives exactly the status a full parse gives.

``status --json`` is run twice on the same history, once as shipped and once with the hidden
``--full-read`` flag that parses every event, each with its own state and target file, and the
rows must be equal:

- on generated histories (``bench/generate.py``: recurring series with EXDATE and
  RECURRENCE-ID overrides, all-day events, several zones including Outlook's Windows names and
  its "Customized Time Zone", declines, cancellations, folded lines, near misses);
- on hand-made edge cases (custom VTIMEZONEs, case folding beyond ASCII in phrase keywords,
  nested UIDs, overrides moved out of the window, far zones at the window's edge);
- on every file of the real-world corpus (``../shared/corpus/ics``, skipped when absent), with
  clients derived from the file's own addresses and title words and ``--now`` at the median
  DTSTART, so the history window cuts through the file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from icalendar.timezone import tzp

from bench.generate import generate
from daemon.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "ics"
NOW = "2026-11-23T08:00"
ME = "consultant@myfirm.example"


# -- running the CLI twice ---------------------------------------------------------------------


def _status(config: Path, now: str, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    """Exit code and rows of ``status --json`` (a failed source still prints rows).

    icalendar keeps the custom VTIMEZONEs it has parsed in a process-wide cache; it is
    emptied first so each run sees only its own file, as a fresh process would.
    """
    tzp.use_default()
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--now", now, "status", "--json", *extra]
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    return result.exit_code, json.loads(result.stdout)


def _paired_configs(data: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Two copies of a config that share nothing: own state file, own target file."""
    paths = []
    for kind in ("fast", "full"):
        copy = {
            **data,
            "state_path": f"state-{kind}.sqlite",
            "target": {"type": "ics", "path": f"reminders-{kind}.ics"},
        }
        path = folder / f"config-{kind}.yaml"
        path.write_text(yaml.safe_dump(copy, sort_keys=False, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def _differences(fast: list[dict[str, Any]], full: list[dict[str, Any]]) -> str:
    a = {row["client"]: row for row in fast}
    b = {row["client"]: row for row in full}
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append(f"{name}:\n  fast: {a.get(name)}\n  full: {b.get(name)}")
    return "\n".join(lines)


def _assert_same(fast_config: Path, full_config: Path, now: str) -> list[dict[str, Any]]:
    fast_code, fast = _status(fast_config, now)
    full_code, full = _status(full_config, now, "--full-read")
    assert fast == full, f"fast path and full read differ at --now {now}:\n" + _differences(
        fast, full
    )
    assert fast_code == full_code
    return fast


# -- generated histories -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "now", "xwr"),
    [
        (1, NOW, None),
        (2, NOW, "America/New_York"),  # Google's X-WR-TIMEZONE, another zone than ours
        (3, "2025-03-10T08:00", None),  # the window in the middle: many meetings booked ahead
    ],
)
def test_generated_history(tmp_path: Path, seed: int, now: str, xwr: str | None) -> None:
    made = generate(3000, 40, seed, tmp_path, date(2026, 11, 23), xwr_timezone=xwr)
    data = yaml.safe_load(made.config.read_text(encoding="utf-8"))
    fast, full = _paired_configs(data, tmp_path)
    rows = _assert_same(fast, full, now)
    assert len(rows) == 40
    met = [row for row in rows if row["last_contact"]]
    assert len(met) >= 20, "the generated history should name most clients in the window"
    assert any(row["booked"] for row in rows)


def test_generator_is_deterministic(tmp_path: Path) -> None:
    one = generate(400, 12, 7, tmp_path / "one")
    two = generate(400, 12, 7, tmp_path / "two")
    other = generate(400, 12, 8, tmp_path / "other")
    assert one.history.read_bytes() == two.history.read_bytes()
    assert one.config.read_bytes() == two.config.read_bytes()
    assert one.history.read_bytes() != other.history.read_bytes()
    text = one.history.read_bytes()
    assert text.count(b"BEGIN:VEVENT") == 400
    assert max(len(line) for line in text.split(b"\r\n")) <= 75


# -- hand-made edge cases ----------------------------------------------------------------------

ACME = {"name": "Acme", "domains": ["acme.example"]}
_ACME_ATTENDEE = "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@acme.example\r\n"


def _vevent(uid: str, start: str, summary: str = "Meeting", extra: str = "") -> str:
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{start}\r\n"
            f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\n")


def _calendar(*parts: str, head: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//clientlove//edge cases//EN\r\n" + head
            + "".join(parts) + "END:VCALENDAR\r\n")


_LONDON = "DTSTART;TZID=Europe/London:"
EDGE_CASES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # A custom VTIMEZONE (Outlook's "Customized Time Zone", UTC+10) in a CRLF file: 08:00
    # there is the evening before in London.
    "custom_vtimezone": (_calendar(
        "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\n"
        "DTSTART:16010101T000000\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1000\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n",
        _vevent("c1", "DTSTART;TZID=Customized Time Zone:20261119T080000", "Call",
                _ACME_ATTENDEE)), [ACME]),
    # The token prefilter: an apostrophe in an address, a client known by email only.
    "apostrophe_in_address": (_calendar(
        _vevent("a1", _LONDON + "20261118T100000", "Call",
                "ATTENDEE;PARTSTAT=ACCEPTED:mailto:O'Brien@Acme.Example\r\n")),
        [{"name": "OBrien", "emails": ["o'brien@acme.example"]}]),
    # A keyword glued to an escaped newline in the title, and one after an escaped comma.
    "keyword_after_escaped_newline": (_calendar(
        _vevent("k1", _LONDON + "20261118T100000", "Notes\\nGlobex call"),
        _vevent("k2", _LONDON + "20261119T100000", "Lunch\\,Initech")),
        [{"name": "Globex", "keywords": ["Globex"]}, {"name": "Initech",
                                                     "keywords": ["initech"]}]),
    # A keyword that looks like a domain is still a phrase in the title.
    "keyword_like_a_domain": (_calendar(
        _vevent("n1", _LONDON + "20261118T100000", "Node.js meetup")),
        [{"name": "Nodey", "keywords": ["node.js"]}]),
    # A subdomain of a client domain, and a near miss that is not one.
    "subdomain_and_near_miss": (_calendar(
        _vevent("u1", _LONDON + "20261118T100000", "Call",
                "ATTENDEE:mailto:bob@sales.acme.example\r\n"),
        _vevent("u2", _LONDON + "20261120T100000", "Call",
                "ATTENDEE:mailto:bob@notacme.example\r\n")),
        [{"name": "Acme", "domains": ["acme.example"]}]),
    # A phrase keyword (matched by a regex) and a Turkish title with a dotted capital I.
    "phrase_keyword_dotted_capital_i": (_calendar(
        _vevent("t1", _LONDON + "20261118T100000", "İSTANBUL OFİS toplantısı")),
        [{"name": "Istanbul", "keywords": ["istanbul ofis"]}]),
    # The other way round: a keyword with a dotless i, an all-ASCII capitalised title.
    "phrase_keyword_dotless_i": (_calendar(
        _vevent("t2", _LONDON + "20261118T100000", "AKBANK TIP review")),
        [{"name": "Akbank", "keywords": ["Akbank Tıp"]}]),
    # A series whose VALARM (with its own UID, RFC 9074) comes before the event's UID line,
    # and an override that moves the 16 November occurrence years away.
    "valarm_uid_before_event_uid": (_calendar(
        "BEGIN:VEVENT\r\nBEGIN:VALARM\r\nUID:alarm-1\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\n"
        "TRIGGER:-PT15M\r\nEND:VALARM\r\nUID:s1\r\nDTSTAMP:20260101T000000Z\r\n"
        + _LONDON + "20200106T100000\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Weekly\r\n"
        + _ACME_ATTENDEE + "END:VEVENT\r\n",
        _vevent("s1", _LONDON + "20190101T100000", "Moved far away",
                "RECURRENCE-ID;TZID=Europe/London:20261116T100000\r\n" + _ACME_ATTENDEE)),
        [ACME]),
    "override_moved_out_of_window": (_calendar(
        _vevent("s2", _LONDON + "20200106T100000", "Weekly",
                "RRULE:FREQ=WEEKLY;UNTIL=20261117T000000Z\r\n" + _ACME_ATTENDEE),
        _vevent("s2", _LONDON + "20190101T100000", "Moved far away",
                "RECURRENCE-ID;TZID=Europe/London:20261116T100000\r\n" + _ACME_ATTENDEE)),
        [ACME]),
    "cancelled_override_and_lone_override": (_calendar(
        _vevent("d1", _LONDON + "20260105T100000", "Weekly",
                "RRULE:FREQ=WEEKLY;COUNT=60\r\n" + _ACME_ATTENDEE),
        _vevent("d1", _LONDON + "20261116T100000", "Weekly",
                "RECURRENCE-ID;TZID=Europe/London:20261116T100000\r\nSTATUS:CANCELLED\r\n"),
        _vevent("d2", _LONDON + "20261110T100000", "Moved",
                "RECURRENCE-ID;TZID=Europe/London:20261109T100000\r\n" + _ACME_ATTENDEE)),
        [ACME]),
    # Far zones just outside and inside the window's start (2025-11-01 in London).
    "far_zones_at_window_edge": (_calendar(
        _vevent("k1", "DTSTART;TZID=Pacific/Kiritimati:20251101T010000", "Call", _ACME_ATTENDEE),
        _vevent("k2", "DTSTART;TZID=Pacific/Pago_Pago:20251031T230000", "Call",
                _ACME_ATTENDEE)), [ACME]),
    "x_wr_timezone_per_calendar": (
        _calendar(_vevent("y1", "DTSTART:20261118T233000Z", "Call", _ACME_ATTENDEE),
                  head="X-WR-TIMEZONE:Asia/Tokyo\r\n")
        + _calendar(_vevent("y2", "DTSTART:20261120T233000", "Call", _ACME_ATTENDEE),
                    head="X-WR-TIMEZONE:America/Los_Angeles\r\n"), [ACME]),
    "escaped_comma_in_phrase": (_calendar(
        _vevent("e1", _LONDON + "20261118T100000", "Smith\\, Jones & Co review")),
        [{"name": "SJ", "keywords": ["Smith, Jones"]}]),
    "email_folded_mixed_case": (_calendar(
        _vevent("f1", _LONDON + "20261118T100000", "Call",
                "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Bob:mailto:Bob"
                ".Builder@AC\r\n ME.example\r\n")), [ACME]),
    "uid_with_colons": (_calendar(
        _vevent("urn:uuid:abc", _LONDON + "20200106T100000", "Weekly",
                "RRULE:FREQ=WEEKLY\r\n" + _ACME_ATTENDEE),
        _vevent("urn:uuid:abc", _LONDON + "20190101T100000", "Moved",
                "RECURRENCE-ID;TZID=Europe/London:20261116T100000\r\n")), [ACME]),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case(tmp_path: Path, name: str) -> None:
    text, clients = EDGE_CASES[name]
    (tmp_path / "history.ics").write_bytes(text.encode("utf-8"))
    data = {"timezone": "Europe/London", "me": [ME],
            "sources": [{"type": "ics", "path": "history.ics"}], "clients": clients}
    fast, full = _paired_configs(data, tmp_path)
    rows = _assert_same(fast, full, NOW)
    for client, day in EXPECTED_CONTACT.get(name, {}).items():
        (row,) = [r for r in rows if r["client"] == client]
        assert row["last_contact"] == day, (name, client)


#: Cases where both paths must also find the contact, not merely agree.
EXPECTED_CONTACT: dict[str, dict[str, str]] = {
    "apostrophe_in_address": {"OBrien": "2026-11-18"},
    "keyword_after_escaped_newline": {"Globex": "2026-11-18", "Initech": "2026-11-19"},
    "keyword_like_a_domain": {"Nodey": "2026-11-18"},
    "subdomain_and_near_miss": {"Acme": "2026-11-18"},
}


# -- the real-world corpus ---------------------------------------------------------------------

_UNFOLD = re.compile(r"\r?\n[ \t]")
_MAILTO = re.compile(r"mailto:([^\s;:,<>\"]+@[^\s;:,<>\"]+)", re.I)
_ORGANIZER = re.compile(r"^ORGANIZER[^\r\n]*?mailto:([^\s;:,<>\"]+@[^\s;:,<>\"]+)", re.I | re.M)
_SUMMARY = re.compile(r"^SUMMARY[^:\r\n]*:([^\r\n]*)", re.I | re.M)
_DTSTART = re.compile(r"^DTSTART[^:\r\n]*:(\d{4})(\d{2})(\d{2})", re.I | re.M)
_VEVENT = re.compile(r"^BEGIN:VEVENT\b.*?^END:VEVENT\b", re.I | re.M | re.S)
_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LETTERS = re.compile(r"[^\W\d_]{4,}")


def _valid_email(text: str) -> str | None:
    """The lower-cased address when the config would accept it, else None."""
    email = text.strip().lower()
    local, at, host = email.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith("."):
        return None
    if ".." in local or len(host) > 253:
        return None
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return email


def _corpus_config(text: str, source: Path) -> tuple[dict[str, Any], str]:
    """A config whose clients come from the file's own addresses and title words, and --now."""
    text = _UNFOLD.sub("", text)
    emails = Counter(e for e in map(_valid_email, _MAILTO.findall(text)) if e)
    by_domain: dict[str, list[str]] = {}
    for email, _count in emails.most_common():
        by_domain.setdefault(email.rpartition("@")[2], []).append(email)
    domains = sorted(by_domain, key=lambda d: (-sum(emails[e] for e in by_domain[d]), d))
    clients: list[dict[str, Any]] = []
    for index, domain in enumerate(domains[:12]):
        client: dict[str, Any] = {"name": f"Org {domain}", "emails": by_domain[domain][:2]}
        if index % 2 == 0:  # every other client by its whole domain, the rest by email only
            client["domains"] = [domain]
        clients.append(client)

    summaries = [s.strip() for s in _SUMMARY.findall(text)]
    words = Counter(w for s in summaries for w in _LETTERS.findall(s))
    keywords: list[str] = []
    seen = {c["name"].casefold() for c in clients}
    for word, _count in words.most_common(3):
        keywords.append(word)
    for summary in summaries:  # one two-word phrase keyword, matched by a regex
        pair = re.fullmatch(r"([^\W\d_]+) ([^\W\d_]+).*", summary)
        if pair:
            keywords.append(f"{pair.group(1)} {pair.group(2)}")
            break
    for keyword in keywords:
        name = f"Keyword {keyword}"
        if name.casefold() not in seen:
            seen.add(name.casefold())
            clients.append({"name": name, "keywords": [keyword]})
    if not clients:
        clients.append({"name": "Nobody", "domains": ["nobody.example"]})

    me = [ME]
    organizers = Counter(e for e in map(_valid_email, _ORGANIZER.findall(text)) if e)
    if organizers:
        top = organizers.most_common(1)[0][0]
        if top != ME:
            me.append(top)

    days = []
    starts = [m for block in _VEVENT.findall(text) for m in _DTSTART.findall(block)]
    for year, month, day in starts or _DTSTART.findall(text):
        try:
            days.append(date(int(year), int(month), int(day)))
        except ValueError:
            continue
    days = sorted(d for d in days if 1900 <= d.year <= 2200)
    now = f"{days[len(days) // 2].isoformat()}T12:00" if days else NOW
    config = {
        "timezone": "Europe/London",
        "me": me,
        "sources": [{"type": "ics", "path": str(source)}],
        "clients": clients,
    }
    return config, now


def _corpus_params() -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(None, id="corpus-absent")]
    return [
        pytest.param(path, id=f"{path.parent.name}/{path.name}")
        for path in sorted(CORPUS.rglob("*.ics"))
    ]


@pytest.mark.parametrize("path", _corpus_params())
def test_corpus_file(tmp_path: Path, path: Path | None) -> None:
    if path is None:
        pytest.skip(f"the real-world corpus is not at {CORPUS}")
    text = path.read_bytes().decode("utf-8", errors="replace")
    data, now = _corpus_config(text, path)
    # as derived, then without the keyword clients so the address needles alone decide
    addresses = [c for c in data["clients"] if "keywords" not in c]
    for variant, clients in (("all", data["clients"]), ("addresses", addresses)):
        if not clients:
            continue
        folder = tmp_path / variant
        folder.mkdir()
        fast, full = _paired_configs({**data, "clients": clients}, folder)
        _assert_same(fast, full, now)
