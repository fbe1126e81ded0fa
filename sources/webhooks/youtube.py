"""YouTube WebSub payloads: Atom feeds of uploads and updates, and tombstones for deletions.

An ``entry`` names its video (``yt:videoId``) and channel (``yt:channelId``); it is a hint on the
channel and video and a ``published`` content event (YouTube pushes uploads, title and description
changes alike, so consumers treat it as "this video exists", keyed by the video id). An
``at:deleted-entry`` (removal, or the video going private) has no ``yt:channelId``: the channel is
the last part of ``at:by/uri``. The delivery id is a hash of each entry's id and ``updated`` (or
the tombstone's ``ref`` and ``when``), so the hub's retries of one notification deduplicate.

XML is parsed with defusedxml: a document type declaration (and so any entity) is refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # types only: parsing goes through defusedxml
from datetime import datetime

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from creatorpulse.observation import Platform
from creatorpulse.sources.webhooks.mapping import (
    Collector,
    Delivery,
    Unmappable,
    fields_id,
    from_iso,
)

ATOM = "{http://www.w3.org/2005/Atom}"
YT = "{http://www.youtube.com/xml/schemas/2015}"
AT = "{http://purl.org/atompub/tombstones/1.0}"


def _text(element: ET.Element, path: str) -> str | None:
    found = element.find(path)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def parse_feed(body: bytes) -> ET.Element:
    """The feed element; :class:`Unmappable` for bad XML, a DTD or an entity, or another root."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        msg = f"XML refused: {type(exc).__name__}"
        raise Unmappable(msg) from None
    except ET.ParseError as exc:
        msg = f"not XML: {exc}"
        raise Unmappable(msg) from None
    if root.tag != f"{ATOM}feed":
        msg = f"expected an Atom feed, got <{root.tag}>"
        raise Unmappable(msg)
    return root


def channel_of(uri: str | None) -> str | None:
    """``…/channel/UC…`` -> ``UC…``."""
    if not uri or "/channel/" not in uri:
        return None
    channel = uri.rsplit("/channel/", 1)[1].strip("/")
    return channel or None


def read(body: bytes, received_at: datetime) -> Delivery:
    root = parse_feed(body)
    uploads, deletions, keys = [], [], []
    for entry in root.iter(f"{ATOM}entry"):
        video, channel = _text(entry, f"{YT}videoId"), _text(entry, f"{YT}channelId")
        if video and channel:
            updated = _text(entry, f"{ATOM}updated")
            uploads.append((video, channel, _text(entry, f"{ATOM}published"), updated))
            keys.append(("entry", _text(entry, f"{ATOM}id") or video, updated))
    for gone in root.iter(f"{AT}deleted-entry"):
        ref, when = gone.get("ref"), gone.get("when")
        channel = channel_of(_text(gone, f"{AT}by/{ATOM}uri"))
        video = ref.rsplit(":", 1)[-1] if ref else None
        if video and channel:
            deletions.append((video, channel, when))
            keys.append(("deleted", ref, when))
    if not keys:
        msg = "no entry with yt:videoId and yt:channelId, and no deleted-entry with at:by/uri"
        raise Unmappable(msg)
    out = Collector(fields_id(*keys), received_at)
    for video, channel, published, updated in uploads:
        out.hint(Platform.YOUTUBE, channel, video, "video")
        at = from_iso(published, from_iso(updated, received_at))
        out.event(Platform.YOUTUBE, channel, video, "published", at)
    for video, channel, when in deletions:
        out.hint(Platform.YOUTUBE, channel, video, "deleted")
        out.event(Platform.YOUTUBE, channel, video, "deleted", from_iso(when, received_at))
    return out.done()
