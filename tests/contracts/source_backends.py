"""The source backends of the contract suite: each writes the user's calendar in its own
format (an ``.ics`` file, a feed on loopback, objects on a CalDAV server, events on the local
Google Calendar API server) and makes the source that reads it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from providers.base import Source
from tests.contracts.source import Meeting, SourceBackend
from tests.google_server import FakeGoogleCalendar
from tests.servers import DavServer

_STAMP = "20260101T000000Z"
#: where a broken event would start, were it readable
_BROKEN_START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vevent(meeting: Meeting) -> str:
    """The meeting as one VEVENT (UTC times), CRLF lines."""
    lines = ["BEGIN:VEVENT", f"UID:{meeting.uid}", f"DTSTAMP:{_STAMP}",
             f"DTSTART:{_utc(meeting.start)}", f"DTEND:{_utc(meeting.start + meeting.duration)}",
             f"SUMMARY:{meeting.summary}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{meeting.attendee}"]
    if meeting.rrule:
        lines.append(f"RRULE:{meeting.rrule}")
    lines.append("END:VEVENT")
    return "".join(f"{line}\r\n" for line in lines)


def broken_vevent(uid: str) -> str:
    """An event every server here stores but no reader can expand (a negative COUNT)."""
    return vevent(Meeting(uid, _BROKEN_START, "Acme broken", rrule="FREQ=WEEKLY;COUNT=-3"))


def calendar(*vevents: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//user//their app//EN\r\n"
            + "".join(vevents) + "END:VCALENDAR\r\n").encode()


class _IcsBackend(SourceBackend):
    """A whole calendar rewritten on every change, as a calendar app exports it."""

    def __init__(self) -> None:
        self.vevents: dict[str, str] = {}

    def publish(self, data: bytes) -> None:
        raise NotImplementedError

    def _publish(self) -> None:
        self.publish(calendar(*self.vevents.values()))

    def put(self, meeting: Meeting) -> None:
        self.vevents[meeting.uid] = vevent(meeting)
        self._publish()

    change = put

    def delete(self, uid: str) -> None:
        del self.vevents[uid]
        self._publish()

    def put_broken(self, uid: str) -> None:
        self.vevents[uid] = broken_vevent(uid)
        self._publish()


class IcsFileBackend(_IcsBackend):
    name = "ics-file"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._publish()

    def publish(self, data: bytes) -> None:
        self.path.write_bytes(data)

    def source(self) -> Source:
        from providers.ics import IcsSource

        return IcsSource(self.name, path=self.path)


class IcsUrlBackend(_IcsBackend):
    """A feed on 127.0.0.1 with ETag and Last-Modified (``tests.test_ics_source``)."""

    name = "ics-url"

    def __init__(self, feed) -> None:
        super().__init__()
        self.feed = feed
        self._publish()

    def publish(self, data: bytes) -> None:
        self.feed.body = data

    def source(self) -> Source:
        from providers.ics import IcsSource

        return IcsSource(self.name, url=self.feed.url)


class CalDavBackend(SourceBackend):
    """One object per event in a fresh collection on a real server, written over HTTP."""

    def __init__(self, server: DavServer) -> None:
        self.server = server
        self.name = f"{server.kind}-source"
        self.url = server.new_calendar()
        self.http = server.session()

    def source(self) -> Source:
        from providers.caldav import CalDavSource

        return CalDavSource(self.name, self.url, username=self.server.username,
                            secret=lambda: self.server.password)

    def _href(self, uid: str) -> str:
        return f"{self.url}{uid}.ics"

    def _put(self, uid: str, text: str) -> None:
        reply = self.http.put(self._href(uid), data=calendar(text),
                              headers={"Content-Type": "text/calendar"})
        assert reply.status_code in (201, 204), (reply.status_code, reply.text[:300])

    def put(self, meeting: Meeting) -> None:
        self._put(meeting.uid, vevent(meeting))

    change = put

    def delete(self, uid: str) -> None:
        reply = self.http.delete(self._href(uid))
        assert reply.status_code in (200, 204), reply.status_code

    def put_broken(self, uid: str) -> None:
        self._put(uid, broken_vevent(uid))

    def expire(self, cursor: str) -> str:
        """A sync token the server never issued (as after it forgot its history)."""
        data = json.loads(cursor)
        assert data.get("mode") == "sync", "the source reads with sync-collection"
        token = str(data["token"])
        data["token"] = token[: token.rfind("/") + 1] + "0" * 40
        return json.dumps(data)


class GoogleBackend(SourceBackend):
    """A calendar on the local Calendar API server; the user acts on its data directly."""

    name = "google-source"

    def __init__(self, api: FakeGoogleCalendar) -> None:
        self.api = api
        self.calendar_id = api.add_calendar("Work", time_zone="Europe/London")

    def source(self) -> Source:
        from providers.google import SCOPES, GoogleApi, GoogleSource

        info = {"token": "t", "refresh_token": "r", "token_uri": f"{self.api.base_url}/token",
                "client_id": "c", "client_secret": "s", "scopes": SCOPES}
        client = GoogleApi(self.name, credentials_json=lambda: json.dumps(info),
                           api_base=self.api.base_url)
        return GoogleSource(self.name, self.calendar_id, client)

    def shown_uid(self, uid: str) -> str:
        """A client-chosen event id (base32hex letters and digits) per UID."""
        return hashlib.sha1(uid.encode()).hexdigest()[:20].translate(
            str.maketrans("wxyz", "0123"))

    @staticmethod
    def _body(meeting: Meeting) -> dict:
        body = {
            "summary": meeting.summary,
            "start": {"dateTime": meeting.start.isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": (meeting.start + meeting.duration).isoformat(),
                    "timeZone": "UTC"},
            "attendees": [{"email": meeting.attendee, "responseStatus": "accepted"}],
        }
        if meeting.rrule:
            body["recurrence"] = [f"RRULE:{meeting.rrule}"]
        return body

    def put(self, meeting: Meeting) -> None:
        self.api.add_event(self.calendar_id,
                           {"id": self.shown_uid(meeting.uid), **self._body(meeting)})

    def change(self, meeting: Meeting) -> None:
        self.api.user_edit(self.calendar_id, self.shown_uid(meeting.uid), **self._body(meeting))

    def delete(self, uid: str) -> None:
        self.api.user_delete(self.calendar_id, self.shown_uid(uid))

    def put_broken(self, uid: str) -> None:
        """An event whose start names a zone that does not exist: the server keeps what it
        was sent (as a buggy sync client may have written it), the reader cannot place it."""
        event_id = self.shown_uid(uid)
        self.api.add_event(self.calendar_id, {
            "id": event_id, **self._body(Meeting(uid, _BROKEN_START, "Acme broken"))})
        with self.api._lock:
            stored = self.api.calendars[self.calendar_id].events[event_id]
            stored.body["start"] = {"dateTime": "2026-11-18T10:00:00",
                                    "timeZone": "Mars/Olympus_Mons"}

    def expire(self, cursor: str) -> str:
        self.api.expire_sync_tokens(self.calendar_id)
        return cursor

