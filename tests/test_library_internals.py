"""The library internals the code relies on, checked directly against the libraries.

The recurrence reader subclasses recurring-ical-events' ``Series`` and swaps the rules it
walks, and meters dateutil's rule loop by rebuilding ``rrule._iter`` with two of its global
names replaced; the feed server subclasses waitress's channel and TCP server and drives
``wasyncore`` itself; the reader uses icalendar's broken-value and time-zone helpers. None
of that is a promise of those libraries, so ``pyproject.toml`` bounds their versions
(docs/design.md section 11) and this file says loudly, naming the internal, when an
upgrade within or past those bounds changed one. The checks use the libraries only, never
our modules, so they stay valid however the code is laid out.
"""

from __future__ import annotations

import inspect
import socket
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from importlib import metadata
from pathlib import Path
from types import FunctionType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: The distributions whose internals are used, with what the pin is for.
PINNED = {
    "icalendar": "vBroken, Component.errors, tzp, WINDOWS_TO_OLSON",
    "recurring-ical-events": "Series/Occurrence/EventAdapter subclasses, Series.recurrence.rrules",
    "python-dateutil": "rrule._iter rebuilt with other globals, _iterinfo, __mod_distance",
    "waitress": "HTTPChannel/TcpWSGIServer subclasses, wasyncore.loop, trigger",
}


def changed(library: str, what: str) -> None:
    """Fail with a message that names the library, its version and the internal."""
    dist = {"dateutil": "python-dateutil", "recurring_ical_events": "recurring-ical-events"}
    name = dist.get(library, library)
    pytest.fail(
        f"LIBRARY INTERNAL CHANGED: {name} {metadata.version(name)}: {what}. clientlove "
        f"relies on it (docs/design.md section 11): adapt the code to the new shape, then "
        f"move the bound of {name} in pyproject.toml.",
        pytrace=False,
    )


def require(condition: object, library: str, what: str) -> None:
    if not condition:
        changed(library, what)


def parameters(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


def has_parameters(func: Callable[..., Any], *names: str) -> bool:
    present = parameters(func)
    return all(name in present for name in names)


# -- the pins themselves ------------------------------------------------------------------------


def _requirements() -> dict[str, Requirement]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    found = {}
    for line in data["project"]["dependencies"]:
        requirement = Requirement(line)
        found[requirement.name.lower()] = requirement
    return found


@pytest.mark.parametrize("dist", sorted(PINNED))
def test_pinned_below_the_next_release_that_may_change_them(dist: str) -> None:
    requirement = _requirements().get(dist)
    assert requirement is not None, f"{dist} is no longer a dependency in pyproject.toml"
    uppers = [s for s in requirement.specifier if s.operator in ("<", "<=")]
    assert uppers, (f"{dist} needs an upper bound in pyproject.toml: the code uses its "
                    f"internals ({PINNED[dist]})")


@pytest.mark.parametrize("dist", sorted(PINNED))
def test_installed_version_is_within_the_pin(dist: str) -> None:
    installed = Version(metadata.version(dist))
    requirement = _requirements()[dist]
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{dist} {installed} is installed but pyproject.toml asks for {requirement}: these "
        "checks run against a version the pin does not allow")


# -- icalendar ----------------------------------------------------------------------------------

_BROKEN = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:b@example.org\r\nDTSTART:2024013\r\nSUMMARY:x\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:g@example.org\r\nDTSTART;TZID=Europe/Berlin:20240105T100000\r\n"
    "CATEGORIES:one,two\r\nRDATE:20240110T100000Z,20240111T100000Z\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_icalendar_broken_values_and_errors() -> None:
    import icalendar

    try:
        from icalendar.prop.broken import vBroken
    except ImportError:
        changed("icalendar", "icalendar.prop.broken.vBroken is gone")
    require(getattr(icalendar, "vBroken", None) is vBroken, "icalendar",
            "icalendar.vBroken is no longer the class in icalendar.prop.broken")
    try:
        calendars = icalendar.Calendar.from_ical(_BROKEN, multiple=True)
    except TypeError:
        changed("icalendar", "Calendar.from_ical(text, multiple=True) no longer accepted")
    require(isinstance(calendars, list) and len(calendars) == 1, "icalendar",
            "Calendar.from_ical(..., multiple=True) no longer returns a list of calendars")
    broken, good = calendars[0].walk("VEVENT")
    value = broken.get("DTSTART")
    require(isinstance(value, vBroken), "icalendar",
            "an unreadable DTSTART is no longer kept as a vBroken value (lenient parsing)")
    error = getattr(value, "parse_error", None)
    require(isinstance(error, (str, Exception)) and "2024013" in str(error), "icalendar",
            "vBroken.parse_error no longer holds the parser's complaint about the value")
    require(str(value) == "2024013", "icalendar", "str(vBroken) is no longer the raw value")
    errors = getattr(broken, "errors", None)
    require(isinstance(errors, list) and errors and all(
        isinstance(e, tuple) and len(e) == 2 for e in errors), "icalendar",
        "Component.errors is no longer a list of (property name, message) pairs")
    require(errors[0][0] == "DTSTART", "icalendar",
            "Component.errors no longer names the property that failed")
    require(good.errors == [], "icalendar", "a readable component now carries errors")


def test_icalendar_value_shapes() -> None:
    import icalendar

    event = icalendar.Calendar.from_ical(_BROKEN).walk("VEVENT")[1]
    require(has_parameters(icalendar.cal.Component.property_items, "recursive", "sorted"),
            "icalendar", "Component.property_items(recursive=, sorted=) changed")
    names = [name for name, _ in event.property_items(sorted=False)]
    require("DTSTART" in names, "icalendar", "property_items no longer yields (name, value)")
    start = event["DTSTART"]
    require(str(start.params.get("TZID")) == "Europe/Berlin", "icalendar",
            "a property value no longer carries its parameters as .params")
    require(isinstance(start.dt, datetime) and start.dt.tzinfo is not None, "icalendar",
            "a DTSTART with a known TZID no longer reads as an aware datetime in .dt")
    cats = getattr(event["CATEGORIES"], "cats", None)
    require(cats is not None and [str(c) for c in cats] == ["one", "two"], "icalendar",
            "vCategory.cats no longer lists the categories")
    dts = getattr(event["RDATE"], "dts", None)
    require(dts is not None and all(isinstance(d.dt, datetime) for d in dts), "icalendar",
            "vDDDLists.dts no longer lists values with .dt")
    require(hasattr(icalendar.Event, "from_ical") and hasattr(icalendar, "vDuration"),
            "icalendar", "Event.from_ical or vDuration is gone")


def test_icalendar_time_zone_helpers() -> None:
    try:
        from icalendar.timezone import tzp
        from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
    except ImportError as error:
        changed("icalendar", f"a time-zone helper moved ({error})")
    require(callable(getattr(tzp, "timezone", None)), "icalendar", "tzp.timezone is gone")
    require(callable(getattr(tzp, "clean_timezone_id", None)), "icalendar",
            "tzp.clean_timezone_id is gone")
    berlin = tzp.timezone("Europe/Berlin")
    require(isinstance(berlin, tzinfo), "icalendar",
            "tzp.timezone(name) no longer returns a tzinfo for an IANA name")
    require(tzp.timezone("No/Such_Zone") is None, "icalendar",
            "tzp.timezone(unknown name) no longer returns None")
    cleaned = tzp.clean_timezone_id("/citadel.org/20190914_1/Europe/Berlin")
    require(isinstance(cleaned, str) and cleaned.endswith("Europe/Berlin")
            and not cleaned.startswith("/"), "icalendar",
            "tzp.clean_timezone_id no longer strips a vendor prefix's leading slash")
    require(isinstance(WINDOWS_TO_OLSON, Mapping)
            and WINDOWS_TO_OLSON.get("AUS Eastern Standard Time") == "Australia/Sydney",
            "icalendar", "WINDOWS_TO_OLSON no longer maps Windows zone names to IANA names")


def test_x_wr_timezone_to_standard() -> None:
    import x_wr_timezone

    require(has_parameters(x_wr_timezone.to_standard, "calendar", "timezone"),
            "x-wr-timezone", "to_standard(calendar, timezone=) changed")


# -- recurring-ical-events ------------------------------------------------------------------------

_SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:s@example.org\r\nDTSTART:20240101T100000Z\r\n"
    "DTEND:20240101T110000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:daily\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:s@example.org\r\nRECURRENCE-ID:20240102T100000Z\r\n"
    "DTSTART:20240102T150000Z\r\nDTEND:20240102T160000Z\r\nSUMMARY:moved\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_recurring_ical_events_classes() -> None:
    import recurring_ical_events as rie

    for name in ("EventAdapter", "Occurrence", "Series"):
        require(inspect.isclass(getattr(rie, name, None)), "recurring_ical_events",
                f"recurring_ical_events.{name} is gone")
    require(parameters(rie.EventAdapter.__init__)[1:] == ["component"],
            "recurring_ical_events", "EventAdapter(component) changed")
    require(parameters(rie.Occurrence.__init__)[1:] == ["adapter", "start", "end", "sequence"],
            "recurring_ical_events", "Occurrence(adapter, start, end, sequence) changed")
    require(parameters(rie.Series.__init__)[1:] == ["components"], "recurring_ical_events",
            "Series(components) changed")
    require(has_parameters(rie.Series.occurrence, "adapter", "start", "end"),
            "recurring_ical_events", "the hook Series.occurrence(adapter, start, end) changed")
    require(has_parameters(rie.Series.between, "span_start", "span_stop"),
            "recurring_ical_events", "Series.between(span_start, span_stop) changed")


def test_recurring_ical_events_series_hooks() -> None:
    """A subclassed series sees what the reader relies on: its own occurrence class, no
    start exactly for a RECURRENCE-ID override, and rules that are only asked for
    ``between(..., inc=True)`` and ``until``."""
    import icalendar
    import recurring_ical_events as rie

    made: list[tuple[str, bool]] = []
    asked: list[bool] = []

    class Rule:
        def __init__(self, rule: Any) -> None:
            self.rule = rule
            self.until = getattr(rule, "until", None)

        def between(self, after: datetime, before: datetime, inc: bool = False) -> Any:
            asked.append(inc)
            return self.rule.between(after, before, inc=inc)

    class Occurrence(rie.Occurrence):
        def __init__(self, adapter: Any, start: Any = None, end: Any = None,
                     sequence: int = -1) -> None:
            super().__init__(adapter, start, end, sequence)
            made.append((str(adapter.component.get("SUMMARY")), start is None))

    class Adapter(rie.EventAdapter):
        def __init__(self, component: Any) -> None:
            super().__init__(component)
            self.component = component

    class Series(rie.Series):
        def __init__(self, components: Any) -> None:
            super().__init__(components)
            rules = getattr(self.recurrence, "rrules", None)
            require(isinstance(rules, list) and rules, "recurring_ical_events",
                    "Series.recurrence.rrules is no longer the list of rules walked")
            self.recurrence.rrules = [Rule(rule) for rule in rules]

        def occurrence(self, adapter: Any, start: Any = None, end: Any = None) -> Any:
            return Occurrence(adapter, start, end, sequence=self.sequence)

    components = icalendar.Calendar.from_ical(_SERIES).walk("VEVENT")
    series = Series([Adapter(c) for c in components])
    require(isinstance(series.sequence, int), "recurring_ical_events",
            "Series.sequence is no longer an int")
    found = list(series.between(datetime(2023, 12, 1, tzinfo=UTC),
                                datetime(2024, 2, 1, tzinfo=UTC)))
    require(asked and all(asked), "recurring_ical_events",
            "the rules in Series.recurrence.rrules are no longer walked by between(inc=True)")
    require(all(isinstance(o, Occurrence) for o in found) and len(found) == 3,
            "recurring_ical_events", "Series.between no longer makes its occurrences through "
            "Series.occurrence (or expands the series differently)")
    require(sorted(made) == [("daily", False), ("daily", False), ("moved", True)],
            "recurring_ical_events", "an override is no longer made without a start, or a "
            "computed occurrence no longer with one (the reader tells them apart so)")
    starts = sorted(o.start for o in found)
    require(starts[1] == datetime(2024, 1, 2, 15, tzinfo=starts[1].tzinfo),
            "recurring_ical_events", "an override's occurrence no longer starts at its "
            "own DTSTART")


# -- python-dateutil ------------------------------------------------------------------------------


def test_dateutil_rule_loop_can_be_metered() -> None:
    """dateutil's rule loop rebuilt with ``_iterinfo`` and ``divmod`` replaced, as the
    recurrence budget does, still yields the same values and calls the replacements."""
    import dateutil.rrule as dr

    code = getattr(dr.rrule, "_iter", None)
    require(isinstance(code, FunctionType), "dateutil", "rrule._iter is no longer a function")
    require(not code.__code__.co_freevars and code.__closure__ is None, "dateutil",
            "rrule._iter now closes over variables (it cannot be rebuilt with other globals)")
    for name in ("_iterinfo", "divmod"):
        require(name in code.__code__.co_names, "dateutil",
                f"rrule._iter no longer looks up the global {name!r}")
    mod_distance = getattr(dr.rrule, "_rrule__mod_distance", None)
    require(callable(mod_distance) and parameters(mod_distance)[1:] == ["value", "byxxx",
                                                                       "base"],
            "dateutil", "rrule.__mod_distance(value, byxxx, base) changed")
    info = getattr(dr, "_iterinfo", None)
    require(inspect.isclass(info) and parameters(info.__init__)[1:] == ["rrule"], "dateutil",
            "dateutil.rrule._iterinfo(rrule) changed")
    require(parameters(info.rebuild)[1:] == ["year", "month"], "dateutil",
            "_iterinfo.rebuild(year, month) changed")
    for name in ("ydayset", "mdayset", "wdayset", "ddayset"):
        require(parameters(getattr(info, name))[1:] == ["year", "month", "day"], "dateutil",
                f"_iterinfo.{name}(year, month, day) changed")

    calls = {"divmod": 0, "sets": 0, "distance": 0}

    class Info(info):  # type: ignore[misc, valid-type]
        def ddayset(self, year: int, month: int, day: int) -> tuple:
            found = super().ddayset(year, month, day)
            require(isinstance(found, tuple) and len(found) == 3, "dateutil",
                    "_iterinfo.ddayset no longer returns (set, start, end)")
            calls["sets"] += 1
            return found

    def counted_divmod(a: int, b: int) -> tuple[int, int]:
        calls["divmod"] += 1
        return divmod(a, b)

    names = dict(vars(dr))
    names["_iterinfo"] = Info
    names["divmod"] = counted_divmod
    rebuilt = FunctionType(code.__code__, names, "_iter", code.__defaults__, code.__closure__)

    def metered(rule: Any) -> Any:
        copy = rule.replace(cache=False)
        copy._iter = rebuilt.__get__(copy)
        original = copy._rrule__mod_distance

        def distance(value: int, byxxx: set, base: int) -> tuple:
            calls["distance"] += 1
            return original(value, byxxx, base)

        copy._rrule__mod_distance = distance
        return copy

    start = datetime(2024, 1, 1, 9, 0)
    rules = {
        "distance": dr.rrule(dr.HOURLY, interval=5, byhour=(9, 14), dtstart=start, count=6),
        "divmod": dr.rrule(dr.HOURLY, interval=7, dtstart=start, count=6),
        "sets": dr.rrule(dr.DAILY, dtstart=date(2024, 1, 1), count=3),
    }
    for what, rule in rules.items():
        require(hasattr(rule, "_bysetpos"), "dateutil", "rrule._bysetpos is gone")
        require(has_parameters(rule.replace, "kwargs"), "dateutil",
                "rrule.replace(**kwargs) changed")
        before = calls[what]
        require(list(metered(rule)) == list(rule), "dateutil", "a rule iterated by a "
                "rebuilt _iter no longer yields what the rule itself does")
        require(calls[what] > before, "dateutil", {
            "distance": "a rebuilt _iter no longer calls the instance's __mod_distance",
            "divmod": "a rebuilt _iter no longer calls the divmod of its globals",
            "sets": "a rebuilt _iter no longer asks the _iterinfo of its globals for its "
                    "day sets",
        }[what])


# -- waitress -------------------------------------------------------------------------------------


def _app(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


OUR_ADJUSTMENTS: dict[str, Any] = {
    "listen": "127.0.0.1:0",
    "threads": 1,
    "channel_timeout": 10,
    "cleanup_interval": 1,
    "connection_limit": 100,
    "max_request_header_size": 8192,
    "max_request_body_size": 1024,
    "clear_untrusted_proxy_headers": True,
    "ident": "clientlove",
    "expose_tracebacks": False,
    "log_socket_errors": False,
    "asyncore_use_poll": True,
}


def test_waitress_modules_and_signatures() -> None:
    try:
        from waitress import wasyncore
        from waitress.adjustments import Adjustments
        from waitress.channel import HTTPChannel
        from waitress.server import TcpWSGIServer
        from waitress.task import ThreadedTaskDispatcher
        from waitress.trigger import trigger
    except ImportError as error:
        changed("waitress", f"an internal module moved ({error})")
    require(has_parameters(wasyncore.loop, "timeout", "use_poll", "map", "count"), "waitress",
            "wasyncore.loop(timeout, use_poll, map, count) changed")
    require(has_parameters(wasyncore.close_all, "map"), "waitress",
            "wasyncore.close_all(map) changed")
    require(parameters(HTTPChannel.__init__)[1:] == ["server", "sock", "addr", "adj", "map"],
            "waitress", "HTTPChannel(server, sock, addr, adj, map) changed")
    require(parameters(HTTPChannel.received)[1:] == ["data"], "waitress",
            "HTTPChannel.received(data) changed")
    for name in ("request", "will_close", "total_outbufs_len"):
        require(hasattr(HTTPChannel, name), "waitress", f"HTTPChannel.{name} is gone")
    require(has_parameters(TcpWSGIServer.__init__, "application", "map", "dispatcher", "adj",
                           "sockinfo"), "waitress",
            "TcpWSGIServer(application, map=, dispatcher=, adj=, sockinfo=) changed")
    for name in ("maintenance", "readable", "handle_accept"):
        require(callable(getattr(TcpWSGIServer, name, None)), "waitress",
                f"TcpWSGIServer.{name} is gone")
    require(parameters(TcpWSGIServer.maintenance)[1:] == ["now"], "waitress",
            "TcpWSGIServer.maintenance(now) changed")
    require(has_parameters(ThreadedTaskDispatcher.set_thread_count, "count"), "waitress",
            "ThreadedTaskDispatcher.set_thread_count(count) changed")
    require(has_parameters(ThreadedTaskDispatcher.shutdown, "timeout"), "waitress",
            "ThreadedTaskDispatcher.shutdown(timeout=) changed")
    require(callable(getattr(trigger, "pull_trigger", None)), "waitress",
            "trigger.pull_trigger is gone")
    try:
        adj = Adjustments(**OUR_ADJUSTMENTS)
    except (TypeError, ValueError) as error:
        changed("waitress", f"Adjustments no longer takes the feed's settings ({error})")
    require(adj.cleanup_interval == 1 and adj.connection_limit == 100, "waitress",
            "Adjustments no longer keeps cleanup_interval and connection_limit")
    require(isinstance(adj.listen, list) and len(adj.listen) == 1, "waitress",
            "Adjustments.listen is no longer the list of socket infos to bind")


def test_waitress_server_override_points() -> None:
    """What the feed's server subclass reads and overrides: the readable loop's names, the
    channel class it accepts with, the socket map holding a trigger, the channel's state."""
    from waitress import wasyncore
    from waitress.adjustments import Adjustments
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer, TcpWSGIServer
    from waitress.task import ThreadedTaskDispatcher
    from waitress.trigger import trigger

    readable = BaseWSGIServer.readable.__code__.co_names
    for name in ("next_channel_cleanup", "adj", "cleanup_interval", "maintenance",
                 "accepting", "_map", "connection_limit"):
        require(name in readable, "waitress", f"BaseWSGIServer.readable no longer uses "
                f"{name!r} (the feed's server replaces that method and mirrors its start)")
    require("channel_class" in BaseWSGIServer.handle_accept.__code__.co_names, "waitress",
            "BaseWSGIServer.handle_accept no longer makes channels of self.channel_class")
    require({"requests", "last_activity", "will_close"}
            <= set(BaseWSGIServer.maintenance.__code__.co_names), "waitress",
            "BaseWSGIServer.maintenance no longer closes idle channels the way it did")

    adj = Adjustments(**OUR_ADJUSTMENTS)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(1)
    socket_map: dict[int, Any] = {}
    server = TcpWSGIServer(_app, map=socket_map, dispatcher=dispatcher, adj=adj,
                           sockinfo=adj.listen[0])
    left, right = socket.socketpair()
    try:
        require(server._map is socket_map, "waitress",
                "TcpWSGIServer._map is no longer the socket map it was given")
        for name in ("accepting", "active_channels", "next_channel_cleanup", "effective_port",
                     "adj"):
            require(hasattr(server, name), "waitress", f"TcpWSGIServer().{name} is gone")
        require(str(server.effective_port).isdigit() and int(server.effective_port) > 0,
                "waitress", "TcpWSGIServer.effective_port is no longer the bound port")
        require(any(isinstance(item, trigger) for item in socket_map.values()), "waitress",
                "the server no longer puts its trigger in the socket map")
        require(server.channel_class is HTTPChannel, "waitress",
                "TcpWSGIServer.channel_class is no longer HTTPChannel")
        server.maintenance(0.0)
        require(server.readable() is True, "waitress",
                "an idle server below the connection limit is no longer readable")
        channel = HTTPChannel(server, left, ("127.0.0.1", 1), adj, map=socket_map)
        require(channel.requests == [] and channel.connected is True
                and channel.request is None and channel.will_close is False, "waitress",
                "a new HTTPChannel no longer starts with no requests, connected, open")
        channel.received(b"GET /x HTTP/1.1\r\nHost: loc")
        require(channel.request is not None, "waitress",
                "HTTPChannel.request no longer holds the request being received")
        require(channel in server.active_channels.values(), "waitress",
                "a channel no longer registers in server.active_channels")
        wasyncore.loop(timeout=0.01, map=socket_map, use_poll=True, count=1)
    finally:
        dispatcher.shutdown(timeout=1)
        wasyncore.close_all(socket_map)
        right.close()
    require(not socket_map, "waitress", "wasyncore.close_all no longer empties the map")
