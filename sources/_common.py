"""What every connector shares: reading counters, building observations, dead letters, paging.

Mapping is item by item: :func:`map_each` maps each item of a page into its own :class:`Poll`
and keeps it only when the whole item mapped, so a malformed item becomes one dead letter (its
JSON bytes and the reason) while the rest of the page still counts. :func:`pages` walks any
cursor-based pagination to the end, empty pages included, and refuses a cursor seen twice;
:func:`newer` ends a newest-first walk at the first item older than the cutoff.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

from creatorpulse.observation import ContentKind, Platform, Provenance, Readings
from creatorpulse.sources.base import Account, ApiError, Content, MappingError, Poll, Response

C = TypeVar("C")
T = TypeVar("T")

Clock = Callable[[], datetime]

_MAX_REASON = 300


def utc_now() -> datetime:
    return datetime.now(UTC)


class Malformed(ValueError):
    """Part of a payload has the wrong shape; the message says which field and why."""


class ConnectorBase:
    """Holds the injected clock; ``check`` needs ``now`` for waits given as a point in time."""

    platform: ClassVar[Platform]

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock


# --- reading values ----------------------------------------------------------------------------


def counter(item: Mapping[str, Any], name: str, *, strings: bool = False) -> int | None:
    """The count at ``name`` (a dotted path into nested objects, e.g. ``shares.count``): None
    when the platform did not report it (missing is not zero).

    ``strings`` also accepts a decimal string, the JSON form of Google's uint64 counts.
    """
    if "." in name:
        value: Any = item
        keys = name.split(".")
        for depth, key in enumerate(keys):
            if depth:
                value = obj(value, ".".join(keys[:depth]))
            value = value.get(key)
            if value is None:
                return None
    else:
        value = item.get(name)
        if value is None:
            return None
    if value.__class__ is int and value >= 0:
        return value  # the common case first; a subclass of int (bool) is refused below
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if strings and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    msg = f"{name}: expected a non-negative count, got {_short(value)}"
    raise Malformed(msg)


def obj(value: Any, name: str) -> dict[str, Any]:
    """``value`` as a JSON object, or :class:`Malformed` naming ``name``."""
    if not isinstance(value, dict):
        msg = f"{name}: expected a JSON object, got {_short(value)}"
        raise Malformed(msg)
    return value


def items(value: Any, name: str) -> list[Any]:
    """``value`` as a JSON array (absent counts as empty), or :class:`Malformed`."""
    if value is None:
        return []
    if not isinstance(value, list):
        msg = f"{name}: expected a JSON array, got {_short(value)}"
        raise Malformed(msg)
    return value


def text(item: Mapping[str, Any], name: str) -> str:
    """A required non-empty string field (ids, cursors)."""
    value = item.get(name)
    if not isinstance(value, str) or not value:
        msg = f"{name}: expected a non-empty string, got {_short(value)}"
        raise Malformed(msg)
    return value


def iso_time(item: Mapping[str, Any], name: str) -> datetime:
    """An ISO 8601 time with an offset (``+0000``, ``Z`` and ``.000`` all parse)."""
    value = text(item, name)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        msg = f"{name}: expected an ISO 8601 time with a zone, got {value!r}"
        raise Malformed(msg)
    return at.astimezone(UTC)


def unix_time(item: Mapping[str, Any], name: str) -> datetime:
    """Unix seconds as a UTC time."""
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{name}: expected unix seconds, got {_short(value)}"
        raise Malformed(msg)
    return datetime.fromtimestamp(value, UTC)


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


# --- building a poll ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Observer:
    """Builds the observations of one poll: one platform, one account, one ``now``.

    What the records share (account, influencer, time) is checked once, in :class:`Readings`.
    ``since``: content published before it is past polling (``POLL_MAX_AGE``); None polls all.
    """

    platform: Platform
    account: Account
    now: datetime
    since: datetime | None = None
    readings: Readings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "readings", Readings(
            self.platform, self.account.id, self.account.influencer_id, self.now))

    def current(self, published: datetime) -> bool:
        """Whether content published then is still polled."""
        return self.since is None or published >= self.since

    def counts(
        self,
        poll: Poll,
        item: Mapping[str, Any],
        metrics: Mapping[str, str],
        *,
        content_id: str | None = None,
        kind: ContentKind = ContentKind.ACCOUNT,
        strings: bool = False,
        provenance: Provenance = Provenance.MEASURED,
    ) -> None:
        """One observation per ``field -> metric`` of ``metrics`` that ``item`` reports."""
        self.readings.make_many(
            None if kind is ContentKind.ACCOUNT else content_id, kind,
            [(metric, counter(item, name, strings=strings)) for name, metric in metrics.items()],
            provenance, poll.observations)

    def add(
        self,
        poll: Poll,
        metric: str,
        value: int | None,
        *,
        content_id: str | None = None,
        kind: ContentKind = ContentKind.ACCOUNT,
        provenance: Provenance = Provenance.MEASURED,
    ) -> None:
        if value is None:
            return
        poll.observations.append(self.readings.make(
            None if kind is ContentKind.ACCOUNT else content_id, kind, metric, value, provenance))

    def content(self, poll: Poll, content_id: str, kind: ContentKind, published: datetime) -> None:
        poll.content.append(Content(id=content_id, kind=kind, published_at=published))


def payload_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dead_letter(value: Any, reason: str) -> MappingError:
    """A :class:`MappingError` carrying ``value`` JSON-encoded, for the dead-letter topic.

    Token-like query parameters are masked in it too: Meta's ``paging`` links carry the
    ``access_token``, and no token may reach a topic.
    """
    raw = redact(payload_bytes(value).decode()).encode()
    return MappingError(redact(reason)[:_MAX_REASON], raw)


def parse(poll: Poll, answer: Any, read: Callable[[Any], T], what: str) -> T | None:
    """``read(answer)``, or None with the answer dead-lettered when its shape is wrong."""
    try:
        return read(answer)
    except Malformed as exc:
        poll.dead_letters.append(dead_letter(answer, f"{what}: {exc}"))
        return None


def map_each(poll: Poll, values: Iterable[Any], map_one: Callable[[Any, Poll], None],
             what: str) -> None:
    """Map each value with ``map_one(value, poll)``; a :class:`Malformed` one is a dead letter,
    and whatever its mapping had added to ``poll`` before it failed is taken out again (a
    value counts whole or not at all; cheaper than a poll of its own for every value)."""
    observations, content, deleted, letters = (
        poll.observations, poll.content, poll.deleted, poll.dead_letters)
    for value in values:
        marks = len(observations), len(content), len(deleted), len(letters)
        try:
            map_one(value, poll)
        except Malformed as exc:
            del observations[marks[0]:], content[marks[1]:], deleted[marks[2]:]
            del letters[marks[3]:]
            letters.append(dead_letter(value, f"{what}{_id_of(value)}: {exc}"))


def _id_of(value: Any) -> str:
    ident = value.get("id") if isinstance(value, dict) else None
    return f" {ident}" if isinstance(ident, str | int) and not isinstance(ident, bool) else ""


# --- pagination --------------------------------------------------------------------------------


def pages(
    poll: Poll,
    what: str,
    fetch: Callable[[C | None], Any],
    split: Callable[[Any], tuple[list[Any], C | None]],
) -> Iterator[Any]:
    """The items of every page: ``fetch(cursor)`` gets a page, ``split(page)`` its items and the
    next cursor (None at the end). An empty page with a next cursor is followed. A page whose
    shape is wrong is a dead letter and ends the walk (the pages before it still count); a cursor
    seen twice is an :class:`ApiError` (a loop on the platform's side).
    """
    seen: set[Any] = set()
    cursor: C | None = None
    while True:
        parsed = parse(poll, fetch(cursor), split, f"{what} page")
        if parsed is None:
            return
        found, cursor = parsed
        yield from found
        if cursor is None:
            return
        if cursor in seen:
            msg = f"{what}: the platform returned the same next-page cursor twice (a paging loop)"
            raise ApiError(msg)
        seen.add(cursor)


def newer(values: Iterable[Any], since: datetime | None,
          published: Callable[[Any], datetime]) -> Iterator[Any]:
    """``values`` up to the first one published before ``since``.

    Content lists are newest first on every platform, so everything after that one is older
    too: the walk ends there, and :func:`pages` (lazy) fetches no further page. A value whose
    time cannot be read is passed on, for its mapping to dead-letter it.
    """
    for value in values:
        if since is not None:
            try:
                at = published(value)
            except Malformed:
                at = None
            if at is not None and at < since:
                return
        yield value


def chunks(values: list[C], size: int) -> Iterator[list[C]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def lookup(
    poll: Poll,
    what: str,
    ids: list[str],
    size: int,
    fetch: Callable[[list[str]], Any],
    split: Callable[[Any], tuple[list[Any], set[str]]],
    map_one: Callable[[Any, Poll], None],
) -> None:
    """A targeted poll by ids, ``size`` a request: ``fetch(batch)`` answers, ``split(answer)``
    gives the items and the ids it speaks of without having them (e.g. not authorized). An id
    the answer neither has nor speaks of no longer exists (deleted, or no longer public).
    """
    for batch in chunks(ids, size):
        parsed = parse(poll, fetch(batch), split, what)
        if parsed is None:
            continue
        found, kept = parsed
        map_each(poll, found, map_one, what)
        kept |= {v["id"] for v in found if isinstance(v, dict) and isinstance(v.get("id"), str)}
        poll.deleted += [i for i in batch if i not in kept]


# --- responses ---------------------------------------------------------------------------------


def body_json(response: Response) -> Any:
    """The body as JSON, or None when it is not JSON (an HTML error page, an empty body)."""
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None


def retry_after(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """``Retry-After`` as a wait: delay seconds or an HTTP date; None when absent or garbled."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def is_transient(status: int) -> bool:
    return status >= 500 or status in (408, 429)


_SECRET = re.compile(
    r"(?i)((?:access_token|refresh_token|client_secret|token|key|code)=)[^&\s\"']+"
    r"|(bearer\s+)[A-Za-z0-9._~+/=-]+"
)


def redact(message: str) -> str:
    """``message`` with anything token-like masked: error texts may echo the request."""
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", message)


def reason(platform: Platform, status: int, message: str, detail: str = "") -> str:
    """An error message naming the platform and status, without a token; a long platform
    message is cut, the codes in ``detail`` are kept."""
    extra = f" ({redact(detail)[:100]})" if detail else ""
    head = f"{platform.value}: HTTP {status}: "
    room = _MAX_REASON - len(head) - len(extra)
    text = redact(message)
    return head + (text if len(text) <= room else text[:room - 3] + "...") + extra
