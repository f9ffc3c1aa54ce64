"""Durations as written in the config, and the calendar arithmetic the counter relies on."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.durations import Span, parse_span

WEEK = Span(days=7)
HINT = "(use ISO 8601 like P1W or a short form like 7d, 2mo, 15min)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ISO 8601
        ("P1W", Span(days=7)),
        ("P2W", Span(days=14)),
        ("P3D", Span(days=3)),
        ("P2M", Span(months=2)),
        ("P1Y", Span(months=12)),
        ("P1Y2M", Span(months=14)),
        ("PT15M", Span(seconds=900)),
        ("PT1H", Span(seconds=3600)),
        ("PT30S", Span(seconds=30)),
        ("P1DT2H", Span(days=1, seconds=7200)),
        ("P1Y2M3DT4H5M6S", Span(months=14, days=3, seconds=4 * 3600 + 5 * 60 + 6)),
        ("PT36H", Span(days=1, seconds=12 * 3600)),
        ("p1w", Span(days=7)),
        ("  P1W  ", Span(days=7)),
        ("P0.5D", Span(seconds=12 * 3600)),
        ("P1,5D", Span(days=1, seconds=12 * 3600)),
        # short forms
        ("7d", Span(days=7)),
        ("1w", Span(days=7)),
        ("2mo", Span(months=2)),
        ("1y", Span(months=12)),
        ("15min", Span(seconds=900)),
        ("15m", Span(seconds=900)),
        ("15M", Span(seconds=900)),
        ("1h", Span(seconds=3600)),
        ("30s", Span(seconds=30)),
        ("1.5h", Span(seconds=5400)),
        ("1h30m", Span(seconds=5400)),
        ("+7d", Span(days=7)),
        # words, with and without a space
        ("2 weeks", Span(days=14)),
        ("1 week", Span(days=7)),
        ("1 month", Span(months=1)),
        ("3 months", Span(months=3)),
        ("2 years", Span(months=24)),
        ("15 minutes", Span(seconds=900)),
        ("1 minute", Span(seconds=60)),
        ("3 days", Span(days=3)),
        ("1 day", Span(days=1)),
        ("2 hours", Span(seconds=7200)),
        ("45 seconds", Span(seconds=45)),
        ("3days", Span(days=3)),
        ("2 Weeks", Span(days=14)),
        ("1 day, 2 hours", Span(days=1, seconds=7200)),
        ("1 hour and 30 minutes", Span(seconds=5400)),
        ("2 wks", Span(days=14)),
        ("1 hr", Span(seconds=3600)),
    ],
)
def test_parse_span_accepts(text: str, expected: Span) -> None:
    assert parse_span(text) == expected


def test_parse_span_accepts_int_seconds_timedelta_and_span() -> None:
    assert parse_span(90) == Span(seconds=90)
    assert parse_span(86_400) == Span(days=1)
    assert parse_span(timedelta(days=2)) == Span(days=2)
    assert parse_span(timedelta(hours=36)) == Span(days=1, seconds=12 * 3600)
    assert parse_span(WEEK) is WEEK


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", f"not a duration: 'abc' {HINT}"),
        ("", f"not a duration: '' {HINT}"),
        ("P", f"not a duration: 'P' {HINT}"),
        ("PT", f"not a duration: 'PT' {HINT}"),
        ("P1DT", f"not a duration: 'P1DT' {HINT}"),
        ("1 fortnight", f"not a duration: '1 fortnight' {HINT}"),
        ("mon", f"not a duration: 'mon' {HINT}"),
        ("7 d d", f"not a duration: '7 d d' {HINT}"),
        ("d7", f"not a duration: 'd7' {HINT}"),
        ("7", f"not a duration: '7' (add a unit, like 7d; {HINT[1:]}"),
        ("0.5mo", "not a duration: '0.5mo' (months and years must be whole)"),
        ("1.25s", "not a duration: '1.25s' (the smallest unit is a second)"),
        ("0d", "duration must be longer than zero: '0d'"),
        ("PT0S", "duration must be longer than zero: 'PT0S'"),
        ("-7d", "duration must be longer than zero: '-7d'"),
        ("-P1W", "duration must be longer than zero: '-P1W'"),
        (0, "duration must be longer than zero: 0"),
        (-5, "duration must be longer than zero: -5"),
        (True, f"not a duration: True {HINT}"),
        (None, f"not a duration: None {HINT}"),
        (1.5, f"not a duration: 1.5 {HINT}"),
        (timedelta(0), "duration must be longer than zero: 0:00:00"),
        (timedelta(days=-1), "duration must be longer than zero: -1 day, 0:00:00"),
        (timedelta(milliseconds=1500), "not a duration: 0:00:01.500000"),
        (Span(), "duration must be longer than zero"),
    ],
)
def test_parse_span_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_span(text)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("span", "iso"),
    [
        (Span(days=7), "P1W"),
        (Span(days=14), "P2W"),
        (Span(days=3), "P3D"),
        (Span(days=8), "P8D"),
        (Span(months=2), "P2M"),
        (Span(months=12), "P1Y"),
        (Span(months=14, days=7), "P1Y2M7D"),
        (Span(seconds=900), "PT15M"),
        (Span(seconds=3600), "PT1H"),
        (Span(seconds=45), "PT45S"),
        (Span(days=1, seconds=7200), "P1DT2H"),
        (Span(days=7, seconds=1), "P7DT1S"),
        (Span(), "PT0S"),
    ],
)
def test_str_is_iso_8601(span: Span, iso: str) -> None:
    assert str(span) == iso


@given(
    months=st.integers(0, 500),
    days=st.integers(0, 5000),
    seconds=st.integers(0, 86_399),
)
def test_str_parses_back(months: int, days: int, seconds: int) -> None:
    span = Span(months, days, seconds)
    if span:
        assert parse_span(str(span)) == span


def test_two_months_is_calendar_arithmetic() -> None:
    # docs/design.md section 3, the seed example: 2006-04-17 plus two months.
    assert Span(months=2).after(date(2006, 4, 17)) == date(2006, 6, 17)
    assert parse_span("2mo").after(date(2006, 4, 17)) == date(2006, 6, 17)


@pytest.mark.parametrize(
    ("span", "start", "end"),
    [
        (Span(months=1), date(2023, 1, 31), date(2023, 2, 28)),
        (Span(months=1), date(2024, 1, 31), date(2024, 2, 29)),
        (Span(months=12), date(2024, 2, 29), date(2025, 2, 28)),
        (Span(days=7), date(2006, 1, 2), date(2006, 1, 9)),
        (Span(days=14), date(2006, 1, 9), date(2006, 1, 23)),
        (Span(months=1, days=1), date(2023, 1, 31), date(2023, 3, 1)),
        (Span(seconds=86_400), date(2023, 1, 1), date(2023, 1, 2)),
    ],
)
def test_after_dates(span: Span, start: date, end: date) -> None:
    result = span.after(start)
    assert result == end
    assert type(result) is date


def test_before_subtracts() -> None:
    assert Span(months=1).before(date(2023, 3, 31)) == date(2023, 2, 28)
    assert Span(days=7).before(date(2006, 1, 9)) == date(2006, 1, 2)
    assert Span(months=12).before(date(2025, 5, 17)) == date(2024, 5, 17)
    assert Span(seconds=900).before(datetime(2024, 1, 1, 9, 30)) == datetime(2024, 1, 1, 9, 15)


def test_after_datetime_keeps_the_zone_and_wall_time() -> None:
    london = ZoneInfo("Europe/London")
    start = datetime(2024, 3, 30, 9, 30, tzinfo=london)  # the day before the clocks change
    assert Span(days=1).after(start) == datetime(2024, 3, 31, 9, 30, tzinfo=london)
    assert Span(days=1, seconds=7200).after(start) == datetime(2024, 3, 31, 11, 30, tzinfo=london)
    assert Span(months=2).after(start).tzinfo is london


def test_after_a_date_refuses_a_time_part() -> None:
    with pytest.raises(ValueError, match="has a time part"):
        Span(seconds=900).after(date(2024, 1, 1))
    with pytest.raises(ValueError, match="has a time part"):
        Span(days=1, seconds=1).before(date(2024, 1, 1))


def test_to_timedelta() -> None:
    assert Span(days=1, seconds=60).to_timedelta() == timedelta(days=1, minutes=1)
    assert Span(seconds=900).to_timedelta() == timedelta(minutes=15)
    with pytest.raises(ValueError, match="calendar months"):
        Span(months=1).to_timedelta()


def test_whole_days() -> None:
    assert Span(days=14).whole_days() == 14
    with pytest.raises(ValueError, match="not a whole number of days"):
        Span(months=1).whole_days()
    with pytest.raises(ValueError, match="not a whole number of days"):
        Span(days=1, seconds=1).whole_days()


def test_total_seconds_approx_orders_mixed_spans() -> None:
    assert Span(seconds=90).total_seconds_approx() == 90
    assert Span(days=2).total_seconds_approx() == 2 * 86_400
    assert Span(months=12).total_seconds_approx() == pytest.approx(365.2425 * 86_400)
    assert (
        Span(days=56).total_seconds_approx()
        < Span(months=2).total_seconds_approx()
        < Span(days=63).total_seconds_approx()
    )


def test_add_and_multiply() -> None:
    assert Span(days=7) * 2 == Span(days=14)
    assert 2 * Span(months=1, days=1) == Span(months=2, days=2)
    assert Span(months=1) + Span(days=3, seconds=5) == Span(months=1, days=3, seconds=5)
    with pytest.raises(TypeError):
        Span(days=1) * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        Span(days=1) + timedelta(days=1)  # type: ignore[operator]


def test_span_is_frozen_hashable_and_falsy_when_empty() -> None:
    assert {Span(days=7), parse_span("1w")} == {WEEK}
    assert not Span()
    assert Span(seconds=1)
    with pytest.raises(AttributeError):
        WEEK.days = 8  # type: ignore[misc]


def test_span_refuses_negative_or_non_int_parts() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Span(days=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        Span(days=7) * -1
    with pytest.raises(TypeError, match="must be an int"):
        Span(days=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an int"):
        Span(months=True)
