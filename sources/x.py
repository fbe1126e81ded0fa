"""X API v2.

- Content list: ``GET /2/users/:id/tweets`` (retweets excluded: their counts are the original
  post's), following ``meta.next_token`` as ``pagination_token`` back to the cutoff (``since``).
- Account: from the same first page, ``expansions=author_id&user.fields=public_metrics`` (the
  author of the user's tweets is the user); a user with no tweets is asked for with
  ``GET /2/users/:id?user.fields=public_metrics``. A ``resource-not-found`` error with no
  ``data`` (inside an HTTP 200) means the account is gone.
- Targeted poll: ``GET /2/tweets?ids=…`` (100 a call); an id reported ``resource-not-found``, or
  left out with no error, is deleted.

Rate limits: every answer carries ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` (epoch
seconds). A 429 waits until the reset; a success with nothing remaining pauses until it. The
monthly usage cap (``usage-capped``) waits for the reset, or the first of the next month.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from creatorpulse.observation import ContentKind, Platform
from creatorpulse.sources._common import (
    ConnectorBase,
    Malformed,
    Observer,
    body_json,
    is_transient,
    iso_time,
    items,
    lookup,
    map_each,
    newer,
    obj,
    pages,
    reason,
    retry_after,
    text,
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

TWEET_FIELDS = "created_at,public_metrics"
PAGE_SIZE = "100"
LOOKUP_BATCH = 100
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
USAGE_CAPPED = "usage-capped"

ACCOUNT_METRICS = {
    "public_metrics.followers_count": "followers",
    "public_metrics.following_count": "following",
    "public_metrics.tweet_count": "media_count",
    "public_metrics.listed_count": "listed",
    "public_metrics.like_count": "likes_given",
}
TWEET_METRICS = {
    "public_metrics.like_count": "likes",
    "public_metrics.reply_count": "comments",
    "public_metrics.retweet_count": "shares",
    "public_metrics.quote_count": "quotes",
    "public_metrics.bookmark_count": "saves",
    "public_metrics.impression_count": "views",
}


def reset_wait(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """The wait until ``x-rate-limit-reset`` (epoch seconds); None when absent or garbled."""
    value = headers.get("x-rate-limit-reset", "").strip()
    if not value.isdigit():
        return None
    return max(datetime.fromtimestamp(int(value), UTC) - now, timedelta(0))


def _next_month(now: datetime) -> timedelta:
    at = now.astimezone(UTC)
    first = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return first - at


class X(ConnectorBase):
    platform: ClassVar[Platform] = Platform.X

    def fetch_account(
        self, api: Api, account: Account, now: datetime, since: datetime | None = None
    ) -> Poll:
        observe = Observer(self.platform, account, now, since)
        poll = Poll()
        user_id = account.external_id
        timeline = f"/2/users/{user_id}/tweets"
        params = {"tweet.fields": TWEET_FIELDS, "max_results": PAGE_SIZE, "exclude": "retweets"}
        # The timeline's first page with its author expanded (the user's public metrics): one
        # request for both; a user with no tweets has no author to expand, so it is asked for.
        first = api.get(timeline, {**params, "expansions": "author_id",
                                   "user.fields": "public_metrics"})
        _check_found(first, user_id)
        user = _author(first, user_id)
        if user is not None:
            map_each(poll, [user], lambda item, part: observe.counts(
                part, obj(item, "user"), ACCOUNT_METRICS), "user")
        else:  # a bad answer is dead-lettered whole, as it came
            body = api.get(f"/2/users/{user_id}", {"user.fields": "public_metrics"})
            _check_found(body, user_id)
            map_each(poll, [body], lambda item, part: observe.counts(
                part, obj(obj(item, "body").get("data"), "data"), ACCOUNT_METRICS), "user")
        tweets = newer(pages(poll, "tweets", lambda token: api.get(
            timeline, {**params, "pagination_token": token}) if token else first, _split),
            since, lambda item: iso_time(obj(item, "tweet"), "created_at"))
        map_each(poll, tweets, lambda item, part: _tweet(observe, item, part), "tweet")
        return poll

    def fetch_content(
        self, api: Api, account: Account, content: Sequence[Content], now: datetime
    ) -> Poll:
        observe = Observer(self.platform, account, now)
        poll = Poll()
        lookup(poll, "tweet", [c.id for c in content], LOOKUP_BATCH, lambda batch: api.get(
            "/2/tweets", {"ids": ",".join(batch), "tweet.fields": TWEET_FIELDS}), _found,
            lambda item, part: _tweet(observe, item, part))
        return poll

    def check(self, response: Response) -> timedelta | None:
        now = self.clock()
        until_reset = reset_wait(response.headers, now)
        if 200 <= response.status < 300:
            remaining = response.headers.get("x-rate-limit-remaining", "").strip()
            return until_reset if remaining == "0" else None
        body = body_json(response)
        body = body if isinstance(body, dict) else {}
        problem = str(body.get("type") or "")
        details = [str(e.get("message") or e.get("detail")) for e in body.get("errors") or []
                   if isinstance(e, dict)]
        message = " ".join(str(body[k]) for k in ("title", "detail") if body.get(k)) or (
            "no problem details in the body")
        what = reason(self.platform, response.status, message, "; ".join(details))
        code = problem.rsplit("/", 1)[-1] or None
        if response.status == 401:
            raise AuthExpired(what)
        if response.status == 429:
            if code == USAGE_CAPPED:
                raise Retry(what, until_reset or _next_month(now))
            raise Retry(what, until_reset or retry_after(response.headers, now))
        if is_transient(response.status):
            raise Retry(what, retry_after(response.headers, now))
        raise ApiError(what, response.status, code)


def _check_found(body: Any, user_id: str) -> None:
    if isinstance(body, dict) and "data" not in body and user_id in _not_found(body):
        msg = f"x: user {user_id} not found"
        raise Gone(msg)


def _author(page: Any, user_id: str) -> Any:
    """The user expanded in a timeline page (``expansions=author_id``); None when the page has
    none (no tweets, so no author)."""
    includes = page.get("includes") if isinstance(page, dict) else None
    users = includes.get("users") if isinstance(includes, dict) else None
    for user in users if isinstance(users, list) else ():
        if isinstance(user, dict) and user.get("id") == user_id:
            return user
    return None


def _not_found(body: Any) -> set[str]:
    """The ids an answer reports as ``resource-not-found`` (partial errors inside an HTTP 200)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str(e.get("resource_id") or e.get("value")) for e in errors or []
            if isinstance(e, dict) and e.get("type") == NOT_FOUND}


def _found(body: Any) -> tuple[list[Any], set[str]]:
    """A lookup's tweets, and the ids it reports with an error other than not found."""
    body = obj(body, "body")
    errors = [e for e in items(body.get("errors"), "errors") if isinstance(e, dict)]
    kept = {str(e.get("resource_id")) for e in errors if e.get("type") != NOT_FOUND}
    return items(body.get("data"), "data"), kept


def _split(page: Any) -> tuple[list[Any], str | None]:
    page = obj(page, "page")
    meta = obj(page.get("meta", {}), "meta")
    token = meta.get("next_token")
    if token is not None and (not isinstance(token, str) or not token):
        msg = f"meta.next_token: expected a string, got {token!r}"
        raise Malformed(msg)
    return items(page.get("data"), "data"), token


def _tweet(observe: Observer, item: Any, poll: Poll) -> None:
    tweet = obj(item, "tweet")
    tweet_id = text(tweet, "id")
    observe.content(poll, tweet_id, ContentKind.POST, iso_time(tweet, "created_at"))
    observe.counts(poll, tweet, TWEET_METRICS, content_id=tweet_id, kind=ContentKind.POST)
