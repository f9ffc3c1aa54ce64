"""A DAV ``multistatus`` answer read as it arrives, in bounded memory, never trusted.

A server (or whatever answers in its place: a captive portal, a proxy) can send anything:
HTML, plain text, XML that is not DAV, a DOCTYPE declaring entities, an endless stream of
``<response>`` elements. This reader

- refuses what is not a ``DAV:multistatus`` document with :class:`BadData`, naming what it
  was (``an HTML page``, ``XML <foo>``), so no caller ever meets a half-built tree;
- never resolves an entity (no file, no network, no billion laughs): a ``calendar-data``
  holding one is handed on flagged, with the entity's name, for the caller to warn about;
- hands each ``<response>`` on as soon as it is complete and drops it from the tree, so a
  sync answer of millions of hrefs costs memory only for what the caller keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from providers.base import BadData

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"


@dataclass(slots=True)
class Answer:
    """One ``<response>``: its href, its status (the response's own, else its 200
    propstat's), the text of each property found with 200, and the entities met."""

    href: str
    status: int | None = None
    props: dict[str, str] = field(default_factory=dict)
    #: property tag -> names of the XML entities found in it (never resolved)
    entities: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Multistatus:
    """Everything but the responses: the sync token at the top level, if any."""

    sync_token: str | None = None


def read_multistatus(pieces: Iterable[bytes], what: str, provider: str,
                     top: Multistatus | None = None) -> Iterator[Answer]:
    """The responses of a multistatus body given in ``pieces``; ``top`` receives its
    sync token. Anything but well-formed DAV XML raises :class:`BadData`."""
    parser = etree.XMLPullParser(
        events=("end",), tag=(f"{DAV}response", f"{DAV}sync-token"),
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True)
    started = False
    checked = [False]
    try:
        for piece in pieces:
            if not started and not piece.strip():
                continue
            if not started:
                _check_start(piece, what, provider)
                started = True
            parser.feed(piece)
            yield from _drain(parser, what, provider, top, checked)
        if not started:
            raise BadData(f"{what}: the answer is empty, not DAV XML", provider=provider)
        root = parser.close()
        _check_root(root, what, provider)
        yield from _drain(parser, what, provider, top, checked)
    except etree.XMLSyntaxError as exc:
        if "Resource limit exceeded" in str(exc) or "amplification" in str(exc):
            raise BadData(f"{what}: the answer is over the XML parser's limits (a value over "
                          "10 MB, or entities that would multiply); refused",
                          provider=provider) from None
        raise BadData(f"{what}: the answer is not well-formed XML ({_short(exc)})",
                      provider=provider) from None


def _check_start(piece: bytes, what: str, provider: str) -> None:
    """Refuse at once what cannot be XML (an HTML page, text), before the parser's guess."""
    head = piece.lstrip()[:512].lower()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith((b"<!doctype html", b"<html")):
        raise BadData(f"{what}: the answer is an HTML page, not DAV XML (a login page or "
                      "a captive portal?)", provider=provider)
    if not head.startswith(b"<"):
        raise BadData(f"{what}: the answer is text, not DAV XML", provider=provider)


def _check_root(root: etree._Element | None, what: str, provider: str) -> None:
    if root is None or root.tag != f"{DAV}multistatus":
        name = _local(root.tag) if root is not None else "?"
        raise BadData(f"{what}: the answer is XML <{name}>, not a DAV multistatus",
                      provider=provider)


def _drain(parser: etree.XMLPullParser, what: str, provider: str,
           top: Multistatus | None, checked: list[bool]) -> Iterator[Answer]:
    for _event, element in parser.read_events():
        parent = element.getparent()
        if not checked[0]:  # the first element seen tells what the document is
            root = element
            while root.getparent() is not None:
                root = root.getparent()
            _check_root(root, what, provider)
            checked[0] = True
        if parent is None or parent.getparent() is not None:
            continue  # not at the top level of the multistatus
        if element.tag == f"{DAV}response":
            yield _answer(element)
            element.clear()
            parent.remove(element)
        elif top is not None:
            top.sync_token = _text(element).strip()


_HREF, _STATUS, _PROPSTAT, _PROP = (f"{DAV}{n}" for n in ("href", "status", "propstat", "prop"))


def _answer(response: etree._Element) -> Answer:
    """One response, read in a single pass over its children (a sync answer has many)."""
    answer = Answer(href="")
    for child in response:
        tag = child.tag
        if tag == _HREF:
            answer.href = _text(child).strip()
        elif tag == _STATUS:
            answer.status = _status(_text(child))
        elif tag == _PROPSTAT:
            _propstat(child, answer)
    return answer


def _propstat(propstat: etree._Element, answer: Answer) -> None:
    """The properties of a propstat whose status is a success (or missing)."""
    status = None
    prop = None
    for child in propstat:
        if child.tag == _STATUS:
            status = _status(_text(child))
        elif child.tag == _PROP:
            prop = child
    if (status is not None and status >= 300) or prop is None:
        return
    if answer.status is None:
        answer.status = status or 200
    for item in prop:
        if not isinstance(item.tag, str):
            continue
        answer.props[item.tag] = _text(item)
        if len(item):  # a value with children: look for entities among them
            found = [node.name for node in item.iter() if isinstance(node, etree._Entity)]
            if found:
                answer.entities[item.tag] = found


def _text(element: etree._Element | None) -> str:
    """An element's own text and its children's, entities left out (never resolved)."""
    if element is None:
        return ""
    if not len(element):
        return element.text or ""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _status(line: str) -> int | None:
    """``HTTP/1.1 404 Not Found`` -> 404; None for anything else."""
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _local(tag: object) -> str:
    text = str(tag)
    return text.rpartition("}")[2][:40] or "?"


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."
