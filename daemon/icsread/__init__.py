"""Turn iCalendar text into ``Event`` occurrences.

Calendar files are messy (Outlook's Windows zone names, Google's X-WR-TIMEZONE, cut-off
downloads, fuzzed garbage) and can be huge, so this reader

- never raises for bad input: a broken event is skipped with a warning naming the source and
  its UID, and a file that is no calendar at all gives one warning and no events;
- expands recurrences with ``recurring_ical_events``, one UID group at a time, so one bad
  series cannot spoil the others;
- can skip, before any parsing, every UID group that names none of the needles or cannot
  start inside the window (the fast path), because ``icalendar`` parses a few thousand events
  a second and a consultant's export may hold a hundred thousand.

Both paths expand exactly the same way; they differ only in which groups reach the parser.
Occurrences are returned when they *start* inside ``[scope.start, scope.end)``.

The work is split by concern: :mod:`.splitting` (text into blocks), :mod:`.streaming`
(big files in chunks, two passes), :mod:`.prefilter` (which groups can matter, from raw
text), :mod:`.batches` (kept blocks into calendar texts to parse), :mod:`.zones` (hostile
VTIMEZONEs), :mod:`.checks` (which parsed events can be read), :mod:`.recurrence` and
:mod:`.budget` (expansion and what it may cost), :mod:`.fields` (a VEVENT's Event fields)
and :mod:`.reader` (one read, in order). This package re-exports what the rest of the
project uses; the tunable limits live in their modules (patch them there).
"""

from daemon.icsread.batches import PARSE_BATCH
from daemon.icsread.budget import (
    EVENT_SECONDS,
    EVENT_STEPS,
    SOURCE_SECONDS,
    SOURCE_STEPS,
    ReadBudget,
)
from daemon.icsread.fields import DESCRIPTION_LIMIT
from daemon.icsread.reader import MAX_DESCENTS, NotACalendar, read_calendar, read_calendar_stream
from daemon.icsread.recurrence import MAX_OCCURRENCES
from daemon.icsread.splitting import iter_vevent_blocks
from daemon.icsread.streaming import CHUNK_SIZE, WHOLE_BELOW
from daemon.icsread.zones import ZONE_TRANSITIONS_PER_YEAR, ZONE_TRANSITIONS_WALKED

__all__ = [
    "CHUNK_SIZE",
    "DESCRIPTION_LIMIT",
    "EVENT_SECONDS",
    "EVENT_STEPS",
    "MAX_DESCENTS",
    "MAX_OCCURRENCES",
    "PARSE_BATCH",
    "SOURCE_SECONDS",
    "SOURCE_STEPS",
    "WHOLE_BELOW",
    "ZONE_TRANSITIONS_PER_YEAR",
    "ZONE_TRANSITIONS_WALKED",
    "NotACalendar",
    "ReadBudget",
    "iter_vevent_blocks",
    "read_calendar",
    "read_calendar_stream",
]
