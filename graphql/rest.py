"""The REST endpoints of the original service, as thin routes over the same service layer.

- ``GET /influencers/{id}/metrics?platform=&metric=&period=7d``: series over the last period
  (minute buckets up to 6 h, hours up to 7 d, days beyond);
- ``GET /aggregated/metrics?metric=&start=&end=[&groupBy=platform|influencer|tag]``;
- ``POST /influencers`` with ``{"name": ..., "tags": [...], "metadata": {...}}`` (editor).

The same bearer tokens, tenant scoping and per-client budget as GraphQL: 401 without a valid
token, 403 when the role is too weak, 404 for an id outside the caller's tenant, 422 naming each
bad field, 429 with ``Retry-After`` when the caller's budget is spent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from creatorpulse.graphql import influencers as inf
from creatorpulse.graphql import management, validation
from creatorpulse.graphql import metrics as met
from creatorpulse.graphql.auth import AuthError, Forbidden, Principal, Role, authenticate, require
from creatorpulse.graphql.context import Services, client_key
from creatorpulse.graphql.errors import InputError
from creatorpulse.observation import Platform
from creatorpulse.settings import parse_duration

MAX_PERIOD = timedelta(days=90)
REST_COST = 5  # points charged to the caller's bucket per request (a few objects' worth)

Handler = Callable[[Request, Principal, Services], Awaitable[Response]]


def _problem(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _guarded(role: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, check ``role``, and turn expected failures into their HTTP status."""

    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        try:
            principal = require(authenticate(request.headers.get("authorization"),
                                             services.settings), role)
            if services.bucket is not None:
                charge = await services.bucket.charge(client_key(principal, None), REST_COST)
                if not charge.allowed:
                    retry = max(1, math.ceil(charge.retry_after))
                    return JSONResponse({"error": f"rate limit: retry in {retry} s"},
                                        status_code=429, headers={"Retry-After": str(retry)})
            return await handler(request, principal, services)
        except AuthError as exc:
            return _problem(401, str(exc), reason=exc.reason)
        except Forbidden as exc:
            return _problem(403, str(exc))
        except InputError as exc:
            return _problem(422, "invalid input", errors=[{"field": exc.field,
                                                           "message": exc.reason}])

    return endpoint


def _time(text: str | None, field: str) -> datetime:
    if not text:
        raise InputError(field, "is required (ISO 8601 with a time zone)")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(field, "expected ISO 8601, e.g. 2026-11-25T10:00:00Z") from None
    if value.tzinfo is None:
        raise InputError(field, "needs a time zone")
    return value


def _platform(text: str | None) -> Platform | None:
    if not text:
        return None
    try:
        return Platform(text)
    except ValueError:
        raise InputError("platform",
                         f"expected one of {', '.join(p.value for p in Platform)}") from None


def _series_json(s: met.Series) -> dict[str, Any]:
    return {"platform": s.platform, "metric": s.metric, "interval": s.interval.name.lower(),
            "provenance": s.provenance, "total": s.total,
            "buckets": [{"start": b.start.isoformat(), "gain": b.gain,
                         "observations": b.observations, "provenance": b.provenance}
                        for b in s.buckets]}


async def influencer_metrics(request: Request, principal: Principal,
                             services: Services) -> Response:
    influencer_id = request.path_params["id"]
    query = request.query_params
    try:
        period = parse_duration(query.get("period", "7d"))
    except ValueError as exc:
        raise InputError("period", str(exc)) from None
    if not timedelta(0) < period <= MAX_PERIOD:
        raise InputError("period", f"must be positive and at most {MAX_PERIOD.days}d")
    interval = (met.Interval.MINUTE if period <= timedelta(hours=6)
                else met.Interval.HOUR if period <= timedelta(days=7) else met.Interval.DAY)
    platform = _platform(query.get("platform"))
    metric = query.get("metric")
    end = datetime.now(UTC)
    start = end - period
    async with services.pool.connection() as conn:
        found = await inf.by_ids(conn, principal.tenant_id, [influencer_id])
        if influencer_id not in found:
            return _problem(404, f"no influencer {influencer_id!r} in your tenant")
        rows = await met.series(conn, principal.tenant_id, influencer_id,
                                platforms=[platform.value] if platform else None,
                                metrics=[metric] if metric else None, start=start, end=end,
                                interval=interval)
    return JSONResponse({"influencerId": influencer_id, "from": start.isoformat(),
                         "to": end.isoformat(), "period": query.get("period", "7d"),
                         "series": [_series_json(s) for s in rows]})


async def aggregated_metrics(request: Request, principal: Principal,
                             services: Services) -> Response:
    query = request.query_params
    metric = query.get("metric")
    if not metric:
        raise InputError("metric", "is required (e.g. likes)")
    start, end = _time(query.get("start"), "start"), _time(query.get("end"), "end")
    if end <= start:
        raise InputError("end", "must be later than start")
    group = query.get("groupBy", "platform").upper()
    if group not in met.GroupBy.__members__:
        raise InputError("groupBy", "expected platform, influencer or tag")
    async with services.pool.connection() as conn:
        rows = await met.aggregate(conn, principal.tenant_id, metric=metric, start=start, end=end,
                                   group_by=met.GroupBy[group], f=inf.InfluencerFilter())
    return JSONResponse({"metric": metric, "start": start.isoformat(), "end": end.isoformat(),
                         "groupBy": group.lower(),
                         "groups": [{"key": r.key, "total": r.total,
                                     "observations": r.observations} for r in rows]})


async def add_influencer(request: Request, principal: Principal, services: Services) -> Response:
    try:
        body = await request.json()
    except ValueError:
        raise InputError("body", "expected a JSON object") from None
    if not isinstance(body, dict):
        raise InputError("body", "expected a JSON object")
    name, tags, metadata = body.get("name"), body.get("tags", []), body.get("metadata")
    problems = []
    if not isinstance(name, str):
        problems.append(validation.Problem("name", "is required (a string)"))
    else:
        problems += validation.name(name, "name", required=True)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(validation.Problem("tags", "expected a list of strings"))
    else:
        problems += validation.tags(tags, "tags")
    problems += validation.metadata(metadata, "metadata")
    if problems:
        return _problem(422, "invalid input",
                        errors=[{"field": p.field, "message": p.message} for p in problems])

    def write() -> Any:
        with services.registry_pool.connection() as conn:
            return management.add_influencer(conn, principal.tenant_id, name, tags, metadata)

    added = await asyncio.to_thread(write)
    await services.cache.registry_changed(principal.tenant_id)
    return JSONResponse({"id": added.id, "name": added.name, "tags": list(added.tags),
                         "metadata": dict(added.metadata),
                         "createdAt": added.created_at.isoformat()}, status_code=201)


def routes() -> list[BaseRoute]:
    return [
        Route("/influencers/{id}/metrics", _guarded(Role.VIEWER, influencer_metrics),
              methods=["GET"]),
        Route("/aggregated/metrics", _guarded(Role.VIEWER, aggregated_metrics), methods=["GET"]),
        Route("/influencers", _guarded(Role.EDITOR, add_influencer), methods=["POST"]),
    ]
