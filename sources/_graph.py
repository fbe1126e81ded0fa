"""Meta's Graph API, shared by Instagram and Facebook: errors, usage headers, paging, insights.

Rate limits: every answer may carry ``X-App-Usage`` (platform limits), ``X-Business-Use-Case-Usage``
(per business object, with ``estimated_time_to_regain_access`` in minutes) and the legacy
``X-Page-Usage``, all JSON percentages where throttling starts at 100. A success at or above
:data:`PAUSE_FROM` percent returns a pause growing to :data:`PAUSE_AT_FULL` at 100 %, or the
platform's own estimate when it gave one. Throttle codes 4, 17, 32, 341, 613 and 80000-80014 are
:class:`Retry` with the estimate (or ``Retry-After``); code 190 (and 102) or HTTP 401 is
:class:`AuthExpired`; code 100 with subcode 33 (the object does not exist) is :class:`Gone`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

from creatorpulse.observation import Platform
from creatorpulse.sources._common import (
    ConnectorBase,
    Malformed,
    Observer,
    body_json,
    is_transient,
    iso_time,
    items,
    map_each,
    newer,
    obj,
    pages,
    reason,
    retry_after,
)
from creatorpulse.sources.base import (
    Account,
    Api,
    ApiError,
    AuthExpired,
    Content,
    Gone,
    Poll,
    Response,
    Retry,
)

VERSION = "v25.0"

THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
AUTH_CODES = frozenset({102, 190})
TRANSIENT_CODES = frozenset({1, 2})
NOT_FOUND = (100, 33)  # "Unsupported get request. Object ... does not exist"
# Insights that are not there are missing, not an error: too few viewers, or media posted before
# the account became a business account.
NO_INSIGHTS = frozenset({(10, None), (100, 2108006)})

PAUSE_FROM = 80
PAUSE_AT_FULL = timedelta(minutes=5)
_USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage", "x-page-usage")
_USAGE_FIELDS = ("call_count", "total_time", "total_cputime")


class GraphError(ApiError):
    """A Graph API refusal, with Meta's code and subcode to tell the harmless ones apart."""

    def __init__(self, reason: str, status: int, code: Any, subcode: Any) -> None:
        super().__init__(reason, status, None if code is None else str(code))
        self.subcode = subcode

    @property
    def no_insights(self) -> bool:
        """Whether it means "no insights for this object" rather than a failure."""
        return any(self.code == str(code) and sub in (None, self.subcode)
                   for code, sub in NO_INSIGHTS)


def path(*parts: str) -> str:
    return "/" + "/".join((VERSION, *parts))


def error_of(response: Response) -> dict[str, Any]:
    body = body_json(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _usage_entries(headers: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Every usage object of the usage headers (BUC and page headers nest them by object id)."""
    for name in _USAGE_HEADERS:
        raw = headers.get(name)
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                if any(k in node for k in (*_USAGE_FIELDS, "estimated_time_to_regain_access")):
                    yield node
                else:
                    stack.extend(node.values())


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def usage(headers: Mapping[str, str]) -> tuple[float, timedelta]:
    """The highest usage percentage and the longest ``estimated_time_to_regain_access``."""
    percent, regain = 0.0, 0.0
    for entry in _usage_entries(headers):
        percent = max(percent, *(_number(entry.get(f)) for f in _USAGE_FIELDS))
        regain = max(regain, _number(entry.get("estimated_time_to_regain_access")))
    return percent, timedelta(minutes=regain)


def usage_pause(headers: Mapping[str, str]) -> timedelta | None:
    """The pause to take after a success, from how close the usage is to the limit."""
    percent, regain = usage(headers)
    if regain > timedelta(0):
        return regain
    if percent <= PAUSE_FROM:
        return None
    share = min(percent - PAUSE_FROM, 100 - PAUSE_FROM) / (100 - PAUSE_FROM)
    return PAUSE_AT_FULL * share


def check(platform: Platform, response: Response, now: datetime) -> timedelta | None:
    if 200 <= response.status < 300:
        return usage_pause(response.headers)
    error = error_of(response)
    code, subcode = error.get("code"), error.get("error_subcode")
    message = str(error.get("message") or "no Graph API error in the body")
    codes = f"code {code}" + (f", subcode {subcode}" if subcode is not None else "")
    what = reason(platform, response.status, message, codes)
    if response.status == 401 or code in AUTH_CODES:
        raise AuthExpired(what)
    if code in THROTTLE_CODES or response.status == 429:
        _, regain = usage(response.headers)
        waits = [w for w in (regain, retry_after(response.headers, now)) if w]
        raise Retry(what, max(waits) if waits else None)
    if (code, subcode) == NOT_FOUND:
        raise Gone(what)
    if code in TRANSIENT_CODES or error.get("is_transient") is True or is_transient(
        response.status
    ):
        raise Retry(what, retry_after(response.headers, now))
    raise GraphError(what, response.status, code, subcode)


_EMPTY: dict[str, Any] = {"data": []}


def split(page: Any) -> tuple[list[Any], str | None]:
    """A Graph edge page: ``data`` and the absolute ``paging.next`` link (absent at the end)."""
    page = obj(page, "page")
    data = items(page.get("data"), "data")
    paging = page.get("paging")
    link = obj(paging, "paging").get("next") if paging is not None else None
    if link is not None and (not isinstance(link, str) or not link):
        msg = f"paging.next: expected a URL, got {link!r}"
        raise Malformed(msg)
    return data, link


def edge(api: Api, poll: Poll, what: str, first: Any) -> Iterator[Any]:
    """Every item of a Graph edge from its ``first`` page (the edge expanded in the account's
    answer), following ``paging.next`` (passed to the Api as it is)."""
    def fetch(link: str | None) -> Any:
        return api.get(link) if link else first

    return pages(poll, what, fetch, split)


def insights(body: Any) -> dict[str, Any]:
    """``{metric name: value}`` of an insights answer; a metric with no value is left out.

    A metric carries ``values[0].value`` (time series, lifetime) or ``total_value.value``.
    """
    found: dict[str, Any] = {}
    for entry in items(obj(body, "insights").get("data"), "data"):
        entry = obj(entry, "data[]")
        name = entry.get("name")
        if not isinstance(name, str):
            msg = f"insights name: expected a string, got {name!r}"
            raise Malformed(msg)
        if isinstance(entry.get("total_value"), dict):
            value = entry["total_value"].get("value")
        else:
            values = items(entry.get("values"), f"{name}.values")
            value = obj(values[-1], f"{name}.values[]").get("value") if values else None
        if value is not None:
            found[name] = value
    return found


class GraphConnector(ConnectorBase):
    """A Meta connector: the account object, one edge of its content, and insights per item.

    A platform sets the class attributes and implements :meth:`map_item` and
    :meth:`insight_metrics`; paging, deletion, missing insights and errors are the Graph API's.
    """

    account_fields: ClassVar[str]
    account_metrics: ClassVar[Mapping[str, str]]
    content_edge: ClassVar[str]  # "media", "posts"
    item_fields: ClassVar[str]
    page_size: ClassVar[str] = "50"

    def map_item(self, observe: Observer, item: Any, poll: Poll) -> None:
        raise NotImplementedError

    def insight_metrics(self, item: Any) -> Mapping[str, str]:
        """``{insight name: metric}`` to ask for ``item`` (its fields as the platform sent them)."""
        raise NotImplementedError

    def check(self, response: Response) -> timedelta | None:
        return check(self.platform, response, self.clock())

    published_field: ClassVar[str]  # the item's publication time: "timestamp", "created_time"

    def fetch_account(
        self, api: Api, account: Account, now: datetime, since: datetime | None = None
    ) -> Poll:
        observe = Observer(self.platform, account, now, since)
        poll = Poll()
        name = self.content_edge
        # Field expansion: the account's fields and the first page of its content in one
        # request (one call against the rate limits); the later pages through paging.next.
        found = api.get(path(account.external_id), {"fields": (
            f"{self.account_fields},{name}.limit({self.page_size}){{{self.item_fields}}}")})
        map_each(poll, [found], lambda item, part: observe.counts(
            part, obj(item, "account"), self.account_metrics), "account")
        # The Graph API leaves out an edge with nothing in it.
        first = found.get(name, _EMPTY) if isinstance(found, dict) else _EMPTY
        listed = newer(edge(api, poll, name, first), since,
                       lambda item: iso_time(obj(item, name), self.published_field))
        map_each(poll, listed, lambda item, part: self.map_item(observe, item, part), name)
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        """Each object's fields and lifetime insights; an object that no longer exists is
        deleted, and insights the platform has not got are missing."""
        observe = Observer(self.platform, account, now)
        poll = Poll()
        for piece in content:
            try:
                item = api.get(path(piece.id), {"fields": self.item_fields})
                metrics = self.insight_metrics(item)
                raw = self._insights(api, piece.id, ",".join(metrics))
            except Gone:
                poll.deleted.append(piece.id)
                continue
            map_each(poll, [item], lambda value, part: self.map_item(observe, value, part),
                     self.content_edge)
            if raw is not None:
                map_each(poll, [raw], partial(_map_insights, observe, piece, metrics),
                         f"{self.content_edge} {piece.id} insights")
        return poll

    def _insights(self, api: Api, object_id: str, metrics: str) -> Any:
        try:
            return api.get(path(object_id, "insights"), {"metric": metrics, "period": "lifetime"})
        except GraphError as exc:
            if exc.no_insights:
                return None
            raise


def _map_insights(observe: Observer, piece: Content, metrics: Mapping[str, str], body: Any,
                  poll: Poll) -> None:
    observe.counts(poll, insights(body), metrics, content_id=piece.id, kind=piece.kind)
