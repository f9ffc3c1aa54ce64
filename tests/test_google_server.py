"""The fake Google Calendar server, driven by the real googleapiclient over HTTP.

Why: the Google provider's tests are only worth what this server is; these tests pin the
behaviours the provider must survive (sync tokens, 409/410/412, short pages, batch, OAuth
refresh, rate limits) and that the real client library understands every answer.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import googleapiclient.http
import pytest
from googleapiclient.errors import HttpError

from tests.google_server import FakeGoogleCalendar, batch_request, google_service


@pytest.fixture
def google_api() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar() as server:
        yield server
    assert not server.internal_errors, server.internal_errors[0]


@pytest.fixture
def service(google_api: FakeGoogleCalendar) -> Any:
    return google_service(google_api.base_url)


def timed(day: int, hour: int, hours: int = 1, **extra: Any) -> dict[str, Any]:
    """An event body on 2026-03-<day> at <hour>:00 UTC."""
    return {"summary": f"meeting {day} {hour}",
            "start": {"dateTime": f"2026-03-{day:02d}T{hour:02d}:00:00Z"},
            "end": {"dateTime": f"2026-03-{day:02d}T{hour + hours:02d}:00:00Z"}, **extra}


def error_of(call: Any) -> HttpError:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value


def reason_of(err: HttpError) -> str:
    return json.loads(err.content)["error"]["errors"][0]["reason"]


def list_all(service: Any, **kw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All items and every page, following nextPageToken with the library's list_next."""
    pages = []
    request = service.events().list(calendarId="primary", **kw)
    while request is not None:
        page = request.execute()
        pages.append(page)
        request = service.events().list_next(request, page)
    return [item for page in pages for item in page.get("items", [])], pages


# -- plumbing ----------------------------------------------------------------------------------

def test_client_paths_and_counters(google_api: FakeGoogleCalendar, service: Any) -> None:
    entries = service.calendarList().list().execute()["items"]
    assert [(e["id"], e.get("primary")) for e in entries] == [("me@example.com", True)]
    service.events().insert(calendarId="primary", body=timed(2, 9)).execute()
    assert google_api.requests == [("GET", "/calendar/v3/users/me/calendarList"),
                                   ("POST", "/calendar/v3/calendars/primary/events")]
    assert google_api.calls == google_api.requests
    assert google_api.call_log[1].body["summary"] == "meeting 2 9"
    google_api.reset_counts()
    assert google_api.requests == google_api.calls == []


def test_keep_alive_without_nagle_is_fast(google_api: FakeGoogleCalendar,
                                          service: Any) -> None:
    """The calls share one kept-alive connection whose server side has Nagle off (with it on,
    each call waits ~40 ms for a delayed ACK). Read from the socket, not timed, so a loaded
    machine cannot fail it."""
    event = service.events().insert(calendarId="primary", body=timed(2, 9)).execute()
    for _ in range(50):
        service.events().get(calendarId="primary", eventId=event["id"]).execute()
    with google_api._lock:
        connections = list(google_api._conns)
    assert len(connections) == 1
    assert connections[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_calendars_insert_get_and_list_paging(google_api: FakeGoogleCalendar,
                                              service: Any) -> None:
    made = service.calendars().insert(body={"summary": "Client love",
                                            "timeZone": "Europe/Berlin"}).execute()
    assert made["id"].endswith("@group.calendar.google.com")
    assert made["kind"] == "calendar#calendar" and made["timeZone"] == "Europe/Berlin"
    assert service.calendars().get(calendarId=made["id"]).execute()["summary"] == "Client love"
    assert error_of(service.calendars().insert(body={"timeZone": "UTC"})).status_code == 400
    assert error_of(service.calendars().get(calendarId="nope@x")).status_code == 404
    google_api.add_calendar("Holidays", access_role="reader")
    ids, pages = [], 0
    request = service.calendarList().list(maxResults=2)
    while request is not None:
        page = request.execute()
        pages += 1
        ids += [e["id"] for e in page["items"]]
        assert ("nextPageToken" in page) != ("nextSyncToken" in page)
        request = service.calendarList().list_next(request, page)
    assert pages == 2 and len(ids) == 3 and ids[0] == "me@example.com"


def test_reader_calendar_refuses_writes(google_api: FakeGoogleCalendar, service: Any) -> None:
    cal = google_api.add_calendar("Holidays", access_role="reader")
    err = error_of(service.events().insert(calendarId=cal, body=timed(2, 9)))
    assert err.status_code == 403 and reason_of(err) == "requiredAccessLevel"


# -- events.insert ---------------------------------------------------------------------------

def test_insert_body_like_google(google_api: FakeGoogleCalendar, service: Any) -> None:
    body = timed(2, 9, id="clientlove0001", transparency="transparent",
                 description="ping Ada",
                 reminders={"useDefault": False,
                            "overrides": [{"method": "popup", "minutes": 1440}]},
                 extendedProperties={"private": {"clientlove": "1"}})
    event = service.events().insert(calendarId="primary", body=body,
                                    sendUpdates="none").execute()
    assert event["kind"] == "calendar#event" and event["id"] == "clientlove0001"
    assert event["etag"].startswith('"') and event["etag"].endswith('"')
    assert event["status"] == "confirmed" and event["sequence"] == 0
    assert event["iCalUID"] == "clientlove0001@google.com"
    assert event["eventType"] == "default" and event["transparency"] == "transparent"
    assert event["extendedProperties"] == {"private": {"clientlove": "1"}}
    assert event["reminders"]["overrides"] == [{"method": "popup", "minutes": 1440}]
    assert event["creator"]["email"] == event["organizer"]["email"] == "me@example.com"
    assert event["htmlLink"].startswith("https://www.google.com/calendar/event?eid=")
    assert event["created"].endswith("Z") and event["updated"].endswith("Z")
    assert service.events().get(calendarId="primary",
                                eventId="clientlove0001").execute() == event
    assert google_api.sent_updates == ["none"]
    assert google_api.events("primary")[0]["id"] == "clientlove0001"


def test_datetime_rewritten_to_zone(google_api: FakeGoogleCalendar, service: Any) -> None:
    event = service.events().insert(calendarId="primary", body={
        "start": {"dateTime": "2026-03-02T10:00:00+01:00"},
        "end": {"dateTime": "2026-03-02T11:00:00", "timeZone": "Europe/Berlin"}}).execute()
    assert event["start"] == {"dateTime": "2026-03-02T09:00:00Z"}
    assert event["end"] == {"dateTime": "2026-03-02T11:00:00+01:00",
                            "timeZone": "Europe/Berlin"}


@pytest.mark.parametrize("event_id", ["abcd", "ABCDEF", "abcdw", "abc-de", "abc_de",
                                      "a" * 1025])
def test_client_id_rejected(service: Any, event_id: str) -> None:
    err = error_of(service.events().insert(calendarId="primary",
                                           body=timed(2, 9, id=event_id)))
    assert err.status_code == 400 and reason_of(err) == "invalid"


def test_client_id_limits_accepted(service: Any) -> None:
    for event_id in ("0v0v0", "v" * 1024):
        made = service.events().insert(calendarId="primary", body=timed(2, 9, id=event_id))
        assert made.execute()["id"] == event_id


def test_duplicate_id_409_also_after_delete(service: Any) -> None:
    events = service.events()
    events.insert(calendarId="primary", body=timed(2, 9, id="dup00001")).execute()
    err = error_of(events.insert(calendarId="primary", body=timed(3, 9, id="dup00001")))
    assert err.status_code == 409 and reason_of(err) == "duplicate"
    events.delete(calendarId="primary", eventId="dup00001").execute()
    err = error_of(events.insert(calendarId="primary", body=timed(3, 9, id="dup00001")))
    assert err.status_code == 409


def test_extended_properties_cut_silently(service: Any) -> None:
    private = {"k" * 44: "kept", "k" * 45: "dropped", "long": "x" * 2000}
    event = service.events().insert(calendarId="primary", body=timed(
        2, 9, extendedProperties={"private": private, "shared": {"s": "1"}})).execute()
    assert event["extendedProperties"]["private"] == {"k" * 44: "kept", "long": "x" * 1024}
    assert event["extendedProperties"]["shared"] == {"s": "1"}


@pytest.mark.parametrize(("reminders", "reason"), [
    ({"useDefault": False, "overrides": [{"method": "popup", "minutes": m}
                                         for m in range(6)]}, "cannotUseMoreThan5Reminders"),
    ({"useDefault": False, "overrides": [{"method": "popup", "minutes": -1}]},
     "invalidReminderMinutes"),
    ({"useDefault": False, "overrides": [{"method": "popup", "minutes": 40321}]},
     "invalidReminderMinutes"),
    ({"useDefault": False, "overrides": [{"method": "sms", "minutes": 10}]},
     "invalidReminderMethod"),
    ({"useDefault": True, "overrides": [{"method": "popup", "minutes": 10}]},
     "cannotUseDefaultRemindersAndSpecifyOverride"),
])
def test_reminder_limits_rejected(service: Any, reminders: dict[str, Any],
                                  reason: str) -> None:
    err = error_of(service.events().insert(calendarId="primary",
                                           body=timed(2, 9, reminders=reminders)))
    assert err.status_code == 400 and reason_of(err) == reason


def test_reminder_limits_accepted(service: Any) -> None:
    overrides = [{"method": "popup", "minutes": 0}, {"method": "email", "minutes": 40320},
                 {"method": "popup", "minutes": 1}, {"method": "popup", "minutes": 2},
                 {"method": "popup", "minutes": 3}]
    event = service.events().insert(calendarId="primary", body=timed(
        2, 9, reminders={"useDefault": False, "overrides": overrides})).execute()
    assert event["reminders"] == {"useDefault": False, "overrides": overrides}
    plain = service.events().insert(calendarId="primary", body=timed(3, 9)).execute()
    assert plain["reminders"] == {"useDefault": True}


def test_time_validation(service: Any) -> None:
    events = service.events()
    backwards = timed(2, 9)
    backwards["end"] = {"dateTime": "2026-03-02T08:00:00Z"}
    err = error_of(events.insert(calendarId="primary", body=backwards))
    assert err.status_code == 400 and reason_of(err) == "timeRangeEmpty"
    no_zone = {"start": {"dateTime": "2026-03-02T09:00:00"},
               "end": {"dateTime": "2026-03-02T10:00:00"}}
    assert reason_of(error_of(events.insert(calendarId="primary", body=no_zone))) == "required"
    missing_end = {"start": {"date": "2026-03-02"}}
    assert error_of(events.insert(calendarId="primary", body=missing_end)).status_code == 400
    mixed = {"start": {"date": "2026-03-02"}, "end": {"dateTime": "2026-03-03T00:00:00Z"}}
    assert error_of(events.insert(calendarId="primary", body=mixed)).status_code == 400
    all_day = {"start": {"date": "2026-03-02"}, "end": {"date": "2026-03-03"}}
    assert events.insert(calendarId="primary", body=all_day).execute()["start"] == all_day[
        "start"]


# -- get / update / patch / delete ----------------------------------------------------------------

def test_if_match_412_and_etag_changes(service: Any) -> None:
    events = service.events()
    first = events.insert(calendarId="primary", body=timed(2, 9, id="etag00001")).execute()
    request = events.patch(calendarId="primary", eventId="etag00001", body={"summary": "b"})
    request.headers["If-Match"] = first["etag"]
    second = request.execute()
    assert second["etag"] != first["etag"] and second["summary"] == "b"
    for stale in (events.patch(calendarId="primary", eventId="etag00001", body={"summary": "c"}),
                  events.update(calendarId="primary", eventId="etag00001", body=timed(2, 9)),
                  events.delete(calendarId="primary", eventId="etag00001")):
        stale.headers["If-Match"] = first["etag"]
        err = error_of(stale)
        assert err.status_code == 412 and reason_of(err) == "conditionNotMet"
    fresh = events.delete(calendarId="primary", eventId="etag00001")
    fresh.headers["If-Match"] = second["etag"]
    fresh.execute()


def test_patch_merges_update_replaces(service: Any) -> None:
    events = service.events()
    base = timed(2, 9, id="merge00001", description="keep me",
                 extendedProperties={"private": {"a": "1", "b": "2"}})
    events.insert(calendarId="primary", body=base).execute()
    patched = events.patch(calendarId="primary", eventId="merge00001", body={
        "summary": "new", "extendedProperties": {"private": {"b": "3"}}}).execute()
    assert patched["description"] == "keep me"
    assert patched["extendedProperties"]["private"] == {"a": "1", "b": "3"}
    assert patched["sequence"] == 0
    moved = events.update(calendarId="primary", eventId="merge00001",
                          body=timed(4, 9, summary="replaced")).execute()
    assert "description" not in moved and "extendedProperties" not in moved
    assert moved["sequence"] == 1 and moved["created"] == patched["created"]


def test_deleted_event_rules(service: Any) -> None:
    events = service.events()
    events.insert(calendarId="primary", body=timed(2, 9, id="gone00001")).execute()
    events.delete(calendarId="primary", eventId="gone00001", sendUpdates="none").execute()
    got = events.get(calendarId="primary", eventId="gone00001").execute()
    assert got["status"] == "cancelled" and got["summary"] == "meeting 2 9"
    err = error_of(events.delete(calendarId="primary", eventId="gone00001"))
    assert err.status_code == 410 and reason_of(err) == "deleted"
    err = error_of(events.patch(calendarId="primary", eventId="gone00001", body={"summary": "x"}))
    assert err.status_code == 403 and reason_of(err) == "forbidden"
    err = error_of(events.get(calendarId="primary", eventId="unknown01"))
    assert err.status_code == 404 and reason_of(err) == "notFound"


# -- events.list --------------------------------------------------------------------------------

def test_time_window_bounds_exclusive(google_api: FakeGoogleCalendar, service: Any) -> None:
    for hour in (8, 9, 10, 11):  # 08-09, 09-10, 10-11, 11-12
        google_api.add_event("primary", timed(2, hour, summary=f"h{hour}"))
    items, _ = list_all(service, timeMin="2026-03-02T09:00:00Z",
                        timeMax="2026-03-02T11:00:00+00:00")
    assert sorted(i["summary"] for i in items) == ["h10", "h9"]
    for bad in ("2026-03-02T09:00:00", "2026-03-02"):
        err = error_of(service.events().list(calendarId="primary", timeMin=bad))
        assert err.status_code == 400
    err = error_of(service.events().list(calendarId="primary", timeMin="2026-03-03T00:00:00Z",
                                         timeMax="2026-03-02T00:00:00Z"))
    assert reason_of(err) == "timeRangeEmpty"


def test_list_filters(google_api: FakeGoogleCalendar, service: Any) -> None:
    ours = google_api.add_event("primary", timed(2, 9, summary="Lunch with Ada",
                                                 extendedProperties={
        "private": {"clientlove": "1", "client": "ada"}, "shared": {"s": "x"}}))
    google_api.add_event("primary", timed(2, 10, extendedProperties={
        "private": {"clientlove": "1", "client": "bob"}}))
    google_api.add_event("primary", {**timed(3, 9), "eventType": "birthday"})

    def ids(**kw: Any) -> list[str]:
        return [i["id"] for i in list_all(service, **kw)[0]]

    assert ids(privateExtendedProperty=["clientlove=1", "client=ada"]) == [ours["id"]]
    assert len(ids(privateExtendedProperty="clientlove=1")) == 2
    assert ids(sharedExtendedProperty="s=x") == [ours["id"]]
    assert ids(q="ada") == [ours["id"]]
    assert ids(iCalUID=ours["iCalUID"]) == [ours["id"]]
    assert len(ids()) == 3 and len(ids(eventTypes="default")) == 2
    assert len(ids(eventTypes=["default", "birthday"])) == 3
    assert error_of(service.events().list(calendarId="primary",
                                          privateExtendedProperty="novalue")).status_code == 400


def test_show_deleted_updated_min_and_order_by_updated(google_api: FakeGoogleCalendar,
                                                       service: Any) -> None:
    old = google_api.add_event("primary", timed(2, 9))
    gone = google_api.add_event("primary", timed(2, 10))
    google_api.user_delete("primary", gone["id"])
    assert [i["id"] for i in list_all(service)[0]] == [old["id"]]
    shown = list_all(service, showDeleted=True)[0]
    assert [(i["id"], i["status"]) for i in shown] == [(old["id"], "confirmed"),
                                                       (gone["id"], "cancelled")]
    since = google_api.event("primary", gone["id"])["updated"]
    google_api.user_edit("primary", old["id"], summary="later")
    # updatedMin brings deleted events back even without showDeleted
    assert {i["id"] for i in list_all(service, updatedMin=since)[0]} == {old["id"], gone["id"]}
    ordered = list_all(service, orderBy="updated", showDeleted=True)[0]
    assert [i["id"] for i in ordered] == [gone["id"], old["id"]]


def test_max_results_bounds(service: Any) -> None:
    err = error_of(service.events().list(calendarId="primary", maxResults=2501))
    assert err.status_code == 400
    assert service.events().list(calendarId="primary", maxResults=2500).execute()["items"] == []


def test_single_events_expansion(google_api: FakeGoogleCalendar, service: Any) -> None:
    master = google_api.add_event("primary", {
        "summary": "weekly", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Berlin"}})
    google_api.add_event("primary", timed(9, 12, summary="single"))
    items, _ = list_all(service, singleEvents=True, orderBy="startTime")
    assert [i["summary"] for i in items] == ["weekly", "weekly", "single", "weekly"]
    first = items[0]
    assert first["id"] == f"{master['id']}_20260302T080000Z"
    assert first["recurringEventId"] == master["id"]
    assert first["originalStartTime"] == first["start"]
    assert items[3]["start"]["dateTime"] == "2026-03-16T09:00:00+01:00"
    got = service.events().get(calendarId="primary", eventId=first["id"]).execute()
    assert got["recurringEventId"] == master["id"]
    masters, _ = list_all(service)
    assert [m["summary"] for m in masters] == ["weekly", "single"]
    err = error_of(service.events().list(calendarId="primary", orderBy="startTime"))
    assert err.status_code == 400


def test_full_then_incremental_sync(google_api: FakeGoogleCalendar, service: Any) -> None:
    keep = google_api.add_event("primary", timed(2, 9))
    edit = google_api.add_event("primary", timed(2, 10))
    drop = google_api.add_event("primary", timed(2, 11))
    items, pages = list_all(service, eventTypes="default")
    assert len(items) == 3
    token = pages[-1]["nextSyncToken"]

    google_api.user_edit("primary", edit["id"], summary="moved by user")
    google_api.user_delete("primary", drop["id"])
    new = service.events().insert(calendarId="primary", body=timed(3, 9)).execute()
    changes, pages = list_all(service, syncToken=token, eventTypes="default")
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {edit["id"], drop["id"], new["id"]} and keep["id"] not in by_id
    assert by_id[drop["id"]] == {"kind": "calendar#event", "etag": by_id[drop["id"]]["etag"],
                                 "id": drop["id"], "status": "cancelled"}
    assert by_id[edit["id"]]["summary"] == "moved by user" and by_id[edit["id"]]["sequence"] == 1
    again, pages = list_all(service, syncToken=pages[-1]["nextSyncToken"],
                            eventTypes="default")
    assert again == [] and pages[-1]["nextSyncToken"]


@pytest.mark.parametrize(("name", "value"), [
    ("iCalUID", "x@google.com"), ("orderBy", "updated"), ("privateExtendedProperty", "a=b"),
    ("q", "x"), ("sharedExtendedProperty", "a=b"), ("timeMin", "2026-01-01T00:00:00Z"),
    ("timeMax", "2026-01-01T00:00:00Z"), ("updatedMin", "2026-01-01T00:00:00Z"),
])
def test_sync_token_forbidden_combinations(service: Any, name: str, value: str) -> None:
    token = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    err = error_of(service.events().list(calendarId="primary", syncToken=token, **{name: value}))
    assert err.status_code == 400


def test_expired_sync_token_410(google_api: FakeGoogleCalendar, service: Any) -> None:
    token = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    assert service.events().list(calendarId="primary", syncToken=token).execute()["items"] == []
    google_api.expire_sync_tokens()
    for stale in (token, "CPgarbage"):
        err = error_of(service.events().list(calendarId="primary", syncToken=stale))
        assert err.status_code == 410 and reason_of(err) == "fullSyncRequired"
    fresh = service.events().list(calendarId="primary").execute()["nextSyncToken"]
    service.events().list(calendarId="primary", syncToken=fresh).execute()


def test_short_pages_sync_token_only_on_last(google_api: FakeGoogleCalendar,
                                             service: Any) -> None:
    for hour in range(8, 12):
        google_api.add_event("primary", timed(2, hour))
    google_api.short_pages = True
    google_api.empty_first_page = True
    items, pages = list_all(service, maxResults=3)
    assert len(items) == 4 and len(pages) == 5 and pages[0]["items"] == []
    assert all("nextPageToken" in p and "nextSyncToken" not in p for p in pages[:-1])
    assert "nextPageToken" not in pages[-1] and "nextSyncToken" in pages[-1]
    google_api.short_pages = google_api.empty_first_page = False
    google_api.add_event("primary", timed(3, 9))
    changes, _ = list_all(service, syncToken=pages[-1]["nextSyncToken"])
    assert len(changes) == 1


def test_writes_while_paging_are_not_lost(google_api: FakeGoogleCalendar,
                                          service: Any) -> None:
    made = [google_api.add_event("primary", timed(2, hour)) for hour in range(8, 12)]
    first = service.events().list(calendarId="primary", maxResults=2).execute()
    google_api.user_delete("primary", made[0]["id"])  # already served
    google_api.user_edit("primary", made[3]["id"], summary="edited")  # not served yet
    rest = service.events().list(calendarId="primary", maxResults=2,
                                 pageToken=first["nextPageToken"]).execute()
    assert [i["id"] for i in first["items"] + rest["items"]] == [m["id"] for m in made]
    changes, _ = list_all(service, syncToken=rest["nextSyncToken"])
    assert {c["id"] for c in changes} == {made[0]["id"], made[3]["id"]}


def test_fields_partial_response(google_api: FakeGoogleCalendar, service: Any) -> None:
    google_api.add_event("primary", timed(2, 9))
    page = service.events().list(calendarId="primary",
                                 fields="items(id,start/dateTime),nextSyncToken").execute()
    assert set(page) == {"items", "nextSyncToken"}
    assert set(page["items"][0]) == {"id", "start"}


# -- batch --------------------------------------------------------------------------------------

def test_batch_of_50_inserts_is_one_http_request(google_api: FakeGoogleCalendar,
                                                 service: Any) -> None:
    answers: dict[str, Any] = {}

    def done(request_id: str, response: Any, exception: Any) -> None:
        answers[request_id] = exception or response

    batch = batch_request(service, google_api.base_url, done)
    for n in range(50):
        batch.add(service.events().insert(calendarId="primary", sendUpdates="none",
                                          body=timed(2, 9, id=f"batch{n:05d}")),
                  request_id=f"r{n}")
    batch.execute()
    assert google_api.requests == [("POST", "/batch/calendar/v3")]
    assert len(google_api.calls) == 50 and all(c.in_batch for c in google_api.call_log)
    assert {answers[f"r{n}"]["id"] for n in range(50)} == {f"batch{n:05d}" for n in range(50)}
    assert google_api.sent_updates == ["none"] * 50


def test_batch_faults_apply_per_part(google_api: FakeGoogleCalendar, service: Any) -> None:
    google_api.inject(429, count=2, retry_after=3)
    failed: list[HttpError] = []
    ok: list[str] = []

    def done(request_id: str, response: Any, exception: Any) -> None:
        if exception is not None:
            failed.append(exception)
        else:
            ok.append(response["id"])

    batch = batch_request(service, google_api.base_url, done)
    for _ in range(5):
        batch.add(service.events().insert(calendarId="primary", body=timed(2, 9)))
    batch.execute()
    assert len(ok) == 3 and [e.status_code for e in failed] == [429, 429]
    assert failed[0].resp["retry-after"] == "3"
    assert len(google_api.requests) == 1 and len(google_api.calls) == 5


def test_batch_part_if_match_and_401_refresh(google_api: FakeGoogleCalendar) -> None:
    creds = google.oauth2.credentials.Credentials(
        token="old", refresh_token="1//refresh", token_uri=google_api.base_url + "/token",
        client_id="cid", client_secret="secret")
    service = google_service(google_api.base_url, credentials=creds)
    event = google_api.add_event("primary", timed(2, 9))
    google_api.user_edit("primary", event["id"], summary="user was here")
    google_api.expire_access_tokens()
    answers: list[Any] = []
    batch = batch_request(service, google_api.base_url,
                          lambda _id, response, exception: answers.append(exception or response))
    stale = service.events().patch(calendarId="primary", eventId=event["id"],
                                   body={"summary": "ours"})
    stale.headers["If-Match"] = event["etag"]
    batch.add(stale)
    batch.add(service.events().insert(calendarId="primary", body=timed(3, 9)))
    batch.execute()  # both parts 401, the library refreshes and re-sends them
    assert [c.status for c in google_api.call_log] == [401, 401, 412, 200]
    assert len(google_api.requests) == 3  # batch, /token, batch
    assert isinstance(answers[0], HttpError) and answers[0].status_code == 412
    assert answers[1]["kind"] == "calendar#event"


def test_whole_batch_fault(google_api: FakeGoogleCalendar, service: Any) -> None:
    google_api.inject(503, match="^POST /batch/")
    batch = batch_request(service, google_api.base_url, None)
    batch.add(service.events().list(calendarId="primary"))
    with pytest.raises(HttpError) as info:
        batch.execute()
    assert info.value.status_code == 503 and google_api.calls == []


def test_batch_over_1000_parts_rejected(google_api: FakeGoogleCalendar) -> None:
    part = ("--b\r\nContent-Type: application/http\r\nContent-ID: <x + {n}>\r\n\r\n"
            "GET /calendar/v3/calendars/primary/events HTTP/1.1\r\n\r\n\r\n")
    body = "".join(part.format(n=n) for n in range(1001)) + "--b--\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", google_api.port, timeout=10)
    conn.request("POST", "/batch/calendar/v3", body=body.encode(), headers={
        "Content-Type": "multipart/mixed; boundary=b", "Authorization": "Bearer t"})
    reply = conn.getresponse()
    assert reply.status == 400 and b"1000" in reply.read()
    conn.close()
    assert google_api.calls == []


# -- OAuth and faults -----------------------------------------------------------------------------

def test_token_refresh_and_invalid_grant(google_api: FakeGoogleCalendar) -> None:
    def credentials() -> google.oauth2.credentials.Credentials:
        return google.oauth2.credentials.Credentials(
            token=None, refresh_token="1//refresh", token_uri=google_api.base_url + "/token",
            client_id="cid", client_secret="secret")

    creds = credentials()
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.") and creds.valid
    assert google_api.token_requests[0]["grant_type"] == "refresh_token"
    google_api.revoke("1//refresh")
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        credentials().refresh(google.auth.transport.requests.Request())


def test_strict_tokens_401_then_client_refreshes(google_api: FakeGoogleCalendar) -> None:
    google_api.expire_access_tokens()
    creds = google.oauth2.credentials.Credentials(
        token="old", refresh_token="1//refresh", token_uri=google_api.base_url + "/token",
        client_id="cid", client_secret="secret")
    service = google_service(google_api.base_url, credentials=creds)
    service.events().list(calendarId="primary").execute()  # 401, refresh, retry
    assert [c for c in google_api.call_log if c.status == 401]
    assert len(google_api.token_requests) == 1 and creds.token in google_api.valid_tokens
    request = urllib.request.Request(google_api.base_url + "/calendar/v3/users/me/calendarList")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    assert json.loads(info.value.read())["error"]["errors"][0]["reason"] == "required"


def test_injected_429_retry_after_seen_by_client(google_api: FakeGoogleCalendar,
                                                 service: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    google_api.inject(429, retry_after=7)
    err = error_of(service.events().list(calendarId="primary"))
    assert err.status_code == 429 and err.resp["retry-after"] == "7"
    assert reason_of(err) == "rateLimitExceeded"
    slept: list[float] = []
    monkeypatch.setattr(googleapiclient.http.time, "sleep", slept.append)
    google_api.inject(500)
    service.events().list(calendarId="primary").execute(num_retries=2)
    assert len(slept) == 1 and [c.status for c in google_api.call_log][-2:] == [500, 200]


def test_injected_403_usage_limits_and_match(google_api: FakeGoogleCalendar,
                                             service: Any) -> None:
    google_api.inject(403, reason="userRateLimitExceeded", match=r"^POST .*/events$")
    service.events().list(calendarId="primary").execute()  # not matched
    err = error_of(service.events().insert(calendarId="primary", body=timed(2, 9)))
    detail = json.loads(err.content)["error"]["errors"][0]
    assert err.status_code == 403 and detail == {
        "domain": "usageLimits", "reason": "userRateLimitExceeded",
        "message": "User Rate Limit Exceeded"}
    service.events().insert(calendarId="primary", body=timed(2, 9)).execute()


def test_quota_per_minute(google_api: FakeGoogleCalendar, service: Any) -> None:
    google_api.quota_per_minute = 3
    for _ in range(3):
        service.events().list(calendarId="primary").execute()
    err = error_of(service.events().list(calendarId="primary"))
    assert err.status_code == 403 and reason_of(err) == "rateLimitExceeded"


# -- the user's side ------------------------------------------------------------------------------

def test_user_helpers(google_api: FakeGoogleCalendar) -> None:
    event = google_api.add_event("primary", timed(2, 9))
    edited = google_api.user_edit("primary", event["id"], summary="renamed")
    assert edited["etag"] != event["etag"] and edited["sequence"] == 1
    assert edited["updated"] > event["updated"]
    google_api.user_delete("primary", event["id"])
    assert google_api.events("primary") == []
    assert google_api.events("primary", include_deleted=True)[0]["status"] == "cancelled"
    with pytest.raises(ValueError, match="timeRangeEmpty"):
        google_api.add_event("primary", timed(2, 9, hours=-1))
