"""The contract between a platform connector and the polling runtime.

A connector (``sources/<platform>.py``) knows one platform: which requests to make, how to follow
its pagination, how to read its rate-limit signals and error bodies, and how to map its JSON to
:class:`~creatorpulse.observation.Observation` records. It owns no client: the runtime hands it
an :class:`Api` (HTTP through the account's OAuth session, the shared rate limiter and retries)
and the clock's ``now``. The runtime (scheduler, rate limits, OAuth, Kafka) knows no platform.

Exceptions, all :class:`SourceError`:

- :class:`Retry` — wait ``after`` and try again (rate limit, quota, outage); carries the wait
  the platform asked for when it said one.
- :class:`AuthExpired` — the access token was refused (401 or the platform's code): refresh, retry.
- :class:`Gone` — the content or account no longer exists: stop polling it.
- :class:`ApiError` — the platform refused the request for another reason; the message says what.
- :class:`MappingError` — a response could not be mapped; it goes to the dead-letter topic with
  the original bytes and polling goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from creatorpulse.observation import ContentKind, Observation, Platform


class SourceError(Exception):
    """Base of every error a connector or the runtime raises about a platform."""


class Retry(SourceError):
    """Try again after ``after``: the platform is limiting us or is briefly unavailable."""

    def __init__(self, reason: str, after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after  # None: the runtime's exponential backoff with jitter decides


class AuthExpired(SourceError):
    """The access token was refused; refresh it (once, across all workers) and retry."""


class Gone(SourceError):
    """The account or content no longer exists on the platform."""

    def __init__(self, reason: str, content_id: str | None = None) -> None:
        super().__init__(reason)
        self.content_id = content_id


class ApiError(SourceError):
    """The platform refused the request for a reason retrying will not fix."""

    def __init__(self, reason: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code


class MappingError(SourceError):
    """A platform payload could not be mapped to observations; ``payload`` is the original."""

    def __init__(self, reason: str, payload: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload


@dataclass(frozen=True)
class Account:
    """A platform account to poll, as the registry holds it."""

    id: str  # platform_accounts.id
    tenant_id: str
    influencer_id: str
    platform: Platform
    external_id: str  # the account's id on the platform
    handle: str | None = None


@dataclass(frozen=True)
class Content:
    """A piece of content the runtime keeps polling, with what the cadence needs."""

    id: str
    kind: ContentKind
    published_at: datetime


@dataclass(frozen=True)
class Response:
    """One HTTP answer as the runtime received it, for the connector to judge."""

    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass
class Poll:
    """What one poll produced.

    ``content`` lists the content seen (new or still there) so the cadence can schedule it;
    ``deleted`` the content ids the platform says are gone (stop polling them);
    ``dead_letters`` the parts that could not be mapped (the rest still counts).
    """

    observations: list[Observation] = field(default_factory=list)
    content: list[Content] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    dead_letters: list[MappingError] = field(default_factory=list)

    def extend(self, other: Poll) -> None:
        self.observations += other.observations
        self.content += other.content
        self.deleted += other.deleted
        self.dead_letters += other.dead_letters


class Api(Protocol):
    """HTTP to one platform for one account, provided by the runtime.

    ``get`` goes through the account's OAuth session, waits for the shared rate limiter (``cost``
    units: 1 everywhere but YouTube's quota), lets the connector's :meth:`Connector.check` judge
    the answer, refreshes the token on :class:`AuthExpired`, retries :class:`Retry` with backoff,
    and returns the parsed JSON body. ``url`` is a path (``/v21.0/me``) joined to the platform's
    base URL from settings, or an absolute URL from the platform's own ``next`` link.
    ``post`` is the same for the endpoints that read with a POST and a JSON body (TikTok's
    ``/v2/video/list/`` and ``/v2/video/query/``).
    """

    def get(self, url: str, params: Mapping[str, str] | None = None, *, cost: int = 1) -> Any: ...

    def post(
        self,
        url: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        cost: int = 1,
    ) -> Any: ...


class Connector(Protocol):
    """One platform. Implement the methods below; register the class in ``sources/registry.py``.

    Both fetch methods follow pagination (an empty page that still carries a next link is
    followed too) and map with the ``now`` they are given as ``observed_at``.
    """

    platform: ClassVar[Platform]

    def fetch_account(
        self, api: Api, account: Account, now: datetime, since: datetime | None = None
    ) -> Poll:
        """The account's own counters and the list of its recent content, with their counters.

        ``since``: content published before it is past polling (the runtime passes ``now -
        POLL_MAX_AGE``). Content lists are newest first, so paging stops at the first older
        item, and older content yields neither observations nor :class:`Content`. None reads
        the list to its end. A connector without the parameter is called without it.
        """
        ...

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        """The counters of the given content only (a targeted poll: cadence or webhook hint)."""
        ...

    def check(self, response: Response) -> timedelta | None:
        """Judge an answer: return for success, else raise Retry/AuthExpired/Gone/ApiError.

        Reads the platform's rate-limit signals too (Retry-After, ``x-rate-limit-reset``, Meta's
        usage headers, YouTube's ``quotaExceeded``) and says the wait in :class:`Retry`. On a
        success it returns a pause the platform asks for before the next request (Meta usage
        near 100 %, ``x-rate-limit-remaining`` at 0 until the reset), or None.
        """
        ...
