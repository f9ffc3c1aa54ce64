"""The streaming prefilter: which UID groups can matter, judged from raw text alone.

``icalendar`` parses a few thousand events a second and a consultant's export may hold a
hundred thousand, most of them long past or with nobody a client. A group is parsed only if
one of its blocks may start inside the read window and one may name a client; the tests are
string operations, a superset of what parsing and attribution would accept, so a cold read
costs about a third of a bare parse and drops nothing that could count.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from daemon.icsread.splitting import Block
from daemon.model import ReadScope

#: The date prefilter reads DTSTART's digits without its zone, so it keeps this margin.
_DATE_SLACK = timedelta(days=2)
_DTSTART_DATE = re.compile(r"\n(?i:DTSTART)[^:\r\n]*:(\d{8})")

# A VEVENT inside a VEVENT (the outer one's END line lost): the prefilter cannot date the
# inner one from the outer's lines, so such a block is always parsed.
_NESTED_EVENT = re.compile(r"\n(?i:BEGIN:VEVENT)\r?$", re.M)
_RECURS = re.compile(r"\n(?i:RRULE|RDATE)[;:]")

# an address as a token: no white space or iCalendar delimiters inside ("'" stays:
# o'brien@...). It matches a whole run between delimiters with an "@" inside, as
# "[^D]+@[^D]+" does, but only tried where a run starts and without backtracking: that
# pattern took a minute on a 200 kB line without delimiters.
_ADDRESS = re.compile(
    r"(?<![^\s:;<>\",])(?=[^\s:;<>\",]*?[^\s:;<>\",]@[^\s:;<>\",])[^\s:;<>\",]++"
)

_WORDS = re.compile(r"\w+")


def _fold(text: str) -> str:
    """Caseless text for matching beyond ASCII: whatever ``re.IGNORECASE`` (which attribution
    uses for phrases) calls equal, this makes equal.

    ``str.lower`` turns the Turkish "İ" into "i" plus a combining dot, so "İSTANBUL" would not
    contain "istanbul": the dot is dropped. ``casefold`` unifies "ſ"/"s", "ς"/"σ" and the like,
    but not the dotless "ı", which ``re.IGNORECASE`` matches to "I".
    """
    return text.casefold().replace("\u0307", "").replace("ı", "i")


def _digits(day: date, shift: timedelta, beyond: str) -> str:
    """``day + shift`` as YYYYMMDD, or ``beyond`` when that leaves the calendar."""
    try:
        day += shift
    except OverflowError:
        return beyond
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


class Prefilter:
    """The prefilter of one read: the window as DTSTART digits, and the needles."""

    def __init__(self, scope: ReadScope) -> None:
        self.scope = scope
        # the date prefilter's bounds, as DTSTART's digits
        self.low = _digits(scope.start.date(), -_DATE_SLACK, "00000000")
        self.high = _digits(scope.end.date(), _DATE_SLACK, "99999999")
        # needles as _fold leaves them, for text or needles beyond ASCII
        self.folded = tuple({_fold(needle) for needle in scope.needles})
        self.folded_changed = tuple(set(self.folded) - set(scope.needles))

    def keep(self, group: list[Block]) -> bool:
        """The prefilter: can this group matter to a client inside the window? (A block that
        holds another VEVENT is parsed whatever its own dates: the inner one may matter.)"""
        if not any(self.may_start(block.text, block.own) for block in group):
            return False
        return not self.scope.needles or any(self.names(block.text) for block in group)

    def dates_ok(self, own: str) -> bool:
        """Whether a block may start inside the window: it recurs, has no readable start
        date, or its DTSTART's digits lie inside the window (with a margin for zones)."""
        if _RECURS.search(own):
            return True
        match = _DTSTART_DATE.search(own)
        return match is None or self.low <= match.group(1) <= self.high

    def names(self, text: str) -> bool:
        """Whether a block's text may name a client (one of the scope's needles)."""
        if self.scope.kinds is not None:
            return self._names_client(text)
        needles = self.scope.needles
        text = text.lower().replace("\\", "")
        if any(needle in text for needle in needles):
            return True
        if text.isascii():  # _fold leaves ASCII text as it is; needles may differ
            return any(needle in text for needle in self.folded_changed)
        return any(needle in _fold(text) for needle in self.folded)

    def _names_client(self, text: str) -> bool:
        """Whether a block could name a client, matched as attribution matches.

        Every address is looked up whole and by each parent domain; the words are the
        ``\\w+`` runs of the text, with and without escaped newlines turned into spaces (so
        the SUMMARY's words are among them however it is escaped); only phrases are searched
        as substrings. A superset of what attribution can match, at a fraction of the cost
        of testing every needle against every block.
        """
        kinds = self.scope.kinds
        assert kinds is not None
        low = text.lower()
        if kinds.emails or kinds.domains:
            for match in _ADDRESS.finditer(low):
                address = match.group(0)
                if address in kinds.emails:
                    return True
                labels = address.rpartition("@")[2].split(".")
                for i in range(len(labels) - 1):
                    if ".".join(labels[i:]) in kinds.domains:
                        return True
        if kinds.words:
            words = set(_WORDS.findall(low))
            if "\\n" in low:
                words.update(_WORDS.findall(low.replace("\\n", " ")))
            if not kinds.words.isdisjoint(words):
                return True
        if kinds.phrases:
            flat = low.replace("\\", "")
            if any(phrase in flat for phrase in kinds.phrases):
                return True
            if not flat.isascii() or not all(p.isascii() for p in kinds.phrases):
                folded = _fold(flat)
                return any(_fold(phrase) in folded for phrase in kinds.phrases)
        return False


    def may_start(self, text: str, own: str) -> bool:
        """Whether a block (its text and its own lines) may start inside the window, or
        holds another VEVENT, which its own dates cannot date."""
        return self.dates_ok(own) or _NESTED_EVENT.search(text) is not None
