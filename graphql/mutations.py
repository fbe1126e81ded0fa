"""The Mutation root: dynamic management of the registry, platforms, backfills and erasure.

Roles: editors add, change, link, pause and unlink; admins enable or disable platforms and
erase. Every change applies at once, with no restart: the registry module announces it to the
pollers with NOTIFY. Expected failures are results, not errors: ``ValidationErrors`` lists every
bad field with the reason, ``NotFound`` says the id is not in your tenant.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import strawberry
from redis.exceptions import RedisError
from strawberry.scalars import JSON
from strawberry.types import Info

from creatorpulse.graphql import management, validation
from creatorpulse.graphql.auth import Role
from creatorpulse.graphql.context import Context, Services
from creatorpulse.graphql.influencers import account_by_ids, by_ids
from creatorpulse.graphql.types import Account, Influencer, Platform
from creatorpulse.observation import Platform as PlatformValue
from creatorpulse.sinks import registry
from creatorpulse.topics import AGGREGATES

T = TypeVar("T")
log = logging.getLogger(__name__)


@strawberry.type(description="One invalid input field and why.")
class FieldError:
    field: str
    message: str


@strawberry.type(description="The input was refused; nothing changed.")
class ValidationErrors:
    errors: list[FieldError]


@strawberry.type(description="No such thing in your tenant; nothing changed.")
class NotFound:
    message: str


@strawberry.type
class Removed:
    id: strawberry.ID


@strawberry.type(description="An influencer's data was erased everywhere it lived.")
class Erased:
    id: strawberry.ID
    erasure_id: strawberry.ID
    erased_at: datetime
    rows: JSON = strawberry.field(description="Rows deleted per table.")
    cache_entries: int
    tombstone_topics: list[str]
    pending: list[str] = strawberry.field(description=(
        "Steps that could not be done now (`cache`, `tombstone:<topic>`); empty when complete."))


@strawberry.type(description="Whether a platform is polled for your tenant.")
class TenantPlatform:
    platform: Platform
    enabled: bool
    updated_at: datetime | None


@strawberry.type(description="A recorded backfill request.")
class BackfillRequest:
    id: strawberry.ID
    influencer_id: strawberry.ID
    platform: Platform | None
    from_: datetime = strawberry.field(name="from")
    to: datetime
    status: str
    requested_at: datetime


InfluencerResult = Annotated[Influencer | ValidationErrors | NotFound,
                             strawberry.union("InfluencerResult")]
AccountResult = Annotated[Account | ValidationErrors | NotFound, strawberry.union("AccountResult")]
RemoveResult = Annotated[Removed | Erased | NotFound, strawberry.union("RemoveResult")]
PlatformResult = Annotated[TenantPlatform | ValidationErrors, strawberry.union("PlatformResult")]
BackfillResult = Annotated[BackfillRequest | ValidationErrors | NotFound,
                           strawberry.union("BackfillResult")]


@strawberry.input
class AddInfluencerInput:
    name: str
    tags: list[str] = strawberry.field(default_factory=list)
    metadata: JSON | None = None


@strawberry.input(description="Fields left out (null) keep their value.")
class UpdateInfluencerInput:
    id: strawberry.ID
    name: str | None = None
    tags: list[str] | None = None
    metadata: JSON | None = None


@strawberry.input(description="Tokens are sealed before they are stored and never readable.")
class LinkAccountInput:
    influencer_id: strawberry.ID
    platform: Platform
    external_id: str
    handle: str | None = None
    poll_interval_seconds: int | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_expires_at: datetime | None = None
    scopes: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class BackfillInput:
    influencer_id: strawberry.ID
    from_: datetime = strawberry.field(name="from")
    to: datetime
    platform: Platform | None = None


def _invalid(problems: list[validation.Problem]) -> ValidationErrors:
    return ValidationErrors(errors=[FieldError(field=p.field, message=p.message)
                                    for p in problems])


async def _write(ctx: Context, work: Callable[..., T], *args: Any) -> T:
    """Run a registry change in a worker thread on a connection of the registry pool, then drop
    the tenant's cached registry answers at once (the NOTIFY listener would too, a moment
    later: the caller reads its own write)."""
    services: Services = ctx.services

    def run() -> T:
        with services.registry_pool.connection() as conn:
            return work(conn, *args)

    result = await asyncio.to_thread(run)
    await services.cache.registry_changed(ctx.tenant())
    return result


async def _reload_influencer(ctx: Context, tenant: str, influencer_id: str) -> Influencer | None:
    async with ctx.services.pool.connection() as conn:
        found = await by_ids(conn, tenant, [influencer_id])
    row = found.get(influencer_id)
    return Influencer.from_row(row) if row else None


async def _reload_account(ctx: Context, tenant: str, account_id: str) -> Account | NotFound:
    async with ctx.services.pool.connection() as conn:
        found = await account_by_ids(conn, tenant, [account_id])
    row = found.get(account_id)
    return Account.from_row(row) if row else NotFound(message=f"no account {account_id!r}")


def _principal_name(ctx: Context) -> str:
    assert ctx.principal is not None
    return ctx.principal.subject


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Add an influencer to your tenant (editor).")
    async def add_influencer(self, info: Info, input: AddInfluencerInput) -> InfluencerResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.EDITOR)
        problems = (validation.name(input.name, "input.name", required=True)
                    + validation.tags(input.tags, "input.tags")
                    + validation.metadata(input.metadata, "input.metadata"))
        if problems:
            return _invalid(problems)
        added = await _write(ctx, management.add_influencer, tenant, input.name, input.tags,
                             input.metadata)
        return await _reload_influencer(ctx, tenant, added.id) or NotFound(message=added.id)

    @strawberry.mutation(description="Change an influencer's name, tags or metadata (editor).")
    async def update_influencer(self, info: Info,
                                input: UpdateInfluencerInput) -> InfluencerResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.EDITOR)
        problems = (validation.name(input.name, "input.name", required=False)
                    + validation.tags(input.tags, "input.tags")
                    + validation.metadata(input.metadata, "input.metadata"))
        if problems:
            return _invalid(problems)
        try:
            await _write(ctx, lambda conn: registry.update_influencer(
                conn, tenant, str(input.id), name=input.name, tags=input.tags,
                metadata=input.metadata))
        except registry.NotFound:
            return NotFound(message=f"no influencer {str(input.id)!r} in your tenant")
        await ctx.services.cache.invalidate(str(input.id), tenant)
        return await _reload_influencer(ctx, tenant, str(input.id)) or NotFound(message="gone")

    @strawberry.mutation(description=(
        "Remove an influencer with its accounts (editor). With erase: true (admin), also delete "
        "its data everywhere it lives and record the erasure."))
    async def remove_influencer(self, info: Info, id: strawberry.ID,
                                erase: bool = False) -> RemoveResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.ADMIN if erase else Role.EDITOR)
        influencer_id = str(id)
        if not erase:
            try:
                await _write(ctx, registry.remove_influencer, tenant, influencer_id)
            except registry.NotFound:
                return NotFound(message=f"no influencer {influencer_id!r} in your tenant")
            await ctx.services.cache.invalidate(influencer_id, tenant)
            return Removed(id=id)
        try:
            done = await _write(ctx, management.erase_rows, tenant, influencer_id,
                                _principal_name(ctx))
        except registry.NotFound:
            return NotFound(message=f"no influencer {influencer_id!r} in your tenant")
        return await _finish_erasure(ctx, done, tenant)

    @strawberry.mutation(description="Link a platform account; polling starts at once (editor).")
    async def link_account(self, info: Info, input: LinkAccountInput) -> AccountResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.EDITOR)
        problems = (validation.external_id(input.external_id, "input.externalId")
                    + validation.handle(input.handle, "input.handle")
                    + validation.poll_interval(input.poll_interval_seconds,
                                               "input.pollIntervalSeconds")
                    + validation.token(input.access_token, "input.accessToken")
                    + validation.token(input.refresh_token, "input.refreshToken"))
        if input.refresh_token is not None and input.access_token is None:
            problems.append(validation.Problem("input.accessToken",
                                               "is required with a refresh token"))
        if problems:
            return _invalid(problems)
        platform = PlatformValue(input.platform)
        enabled = await _write(ctx, management.platform_enabled, tenant, platform)
        if not enabled:
            return _invalid([validation.Problem("input.platform",
                                                f"{platform.value} is disabled for your tenant")])
        interval = (timedelta(seconds=input.poll_interval_seconds)
                    if input.poll_interval_seconds else None)
        try:
            account = await _write(
                ctx, lambda conn: management.link_account(
                    conn, ctx.services.vault, tenant, str(input.influencer_id), platform,
                    input.external_id.strip(), handle=input.handle, poll_interval=interval,
                    access_token=input.access_token, refresh_token=input.refresh_token,
                    expires_at=input.token_expires_at, scopes=input.scopes))
        except registry.NotFound:
            return NotFound(message=f"no influencer {str(input.influencer_id)!r} in your tenant")
        except registry.Conflict as exc:
            return _invalid([validation.Problem("input.externalId", str(exc))])
        return await _reload_account(ctx, tenant, account.id)

    @strawberry.mutation(description="Stop polling an account until it is resumed (editor).")
    async def pause_account(self, info: Info, id: strawberry.ID) -> AccountResult:
        return await _set_status(info, str(id), registry.PAUSED)

    @strawberry.mutation(description="Resume polling a paused account (editor).")
    async def resume_account(self, info: Info, id: strawberry.ID) -> AccountResult:
        return await _set_status(info, str(id), registry.ACTIVE)

    @strawberry.mutation(description="Unlink an account and delete its tokens (editor).")
    async def unlink_account(self, info: Info, id: strawberry.ID) -> RemoveResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.EDITOR)
        try:
            await _write(ctx, registry.unlink_account, tenant, str(id))
        except registry.NotFound:
            return NotFound(message=f"no account {str(id)!r} in your tenant")
        return Removed(id=id)

    @strawberry.mutation(description="Enable or disable a platform for your tenant (admin).")
    async def set_platform_enabled(self, info: Info, platform: Platform,
                                   enabled: bool) -> PlatformResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.ADMIN)
        done = await _write(ctx, management.set_platform, tenant, PlatformValue(platform),
                            enabled, _principal_name(ctx))
        return TenantPlatform(platform=PlatformValue(done.platform), enabled=done.enabled,
                              updated_at=done.updated_at)

    @strawberry.mutation(description="Ask for an influencer's figures to be rebuilt over a range "
                                     "(editor).")
    async def request_backfill(self, info: Info, input: BackfillInput) -> BackfillResult:
        ctx: Context = info.context
        tenant = ctx.tenant(Role.EDITOR)
        problems = validation.time_range(input.from_, input.to, datetime.now(UTC),
                                         "input.from", "input.to")
        if problems:
            return _invalid(problems)
        platform = PlatformValue(input.platform) if input.platform else None
        try:
            done = await _write(ctx, management.request_backfill, tenant,
                                str(input.influencer_id), platform, input.from_, input.to,
                                _principal_name(ctx))
        except registry.NotFound:
            return NotFound(message=f"no influencer {str(input.influencer_id)!r} in your tenant")
        return BackfillRequest(
            id=strawberry.ID(done.id), influencer_id=strawberry.ID(done.influencer_id),
            platform=PlatformValue(done.platform) if done.platform else None,
            from_=done.range_start, to=done.range_end, status=done.status,
            requested_at=done.requested_at)


async def _set_status(info: Info, account_id: str, status: str) -> Account | NotFound:
    ctx: Context = info.context
    tenant = ctx.tenant(Role.EDITOR)
    try:
        await _write(ctx, registry.set_account_status, tenant, account_id, status)
    except registry.NotFound:
        return NotFound(message=f"no account {account_id!r} in your tenant")
    return await _reload_account(ctx, tenant, account_id)


async def _finish_erasure(ctx: Context, done: management.Erasure, tenant: str) -> Erased:
    """After the database: refresh rollups, evict the cache, tombstone the keyed topic.

    The rows are gone once the transaction committed; a step that fails here (Redis or Kafka
    down) is reported in ``pending`` and in the erasure's record, to be repeated, rather than
    failing the whole erasure.
    """
    services = ctx.services
    pending: list[str] = []
    dropped = 0
    try:
        dropped = await services.cache.invalidate(done.influencer_id, tenant)
    except RedisError as exc:
        log.warning("erasure %s: cache not evicted: %s", done.id, exc)
        pending.append("cache")
    topics: list[str] = []
    if services.producer is not None:
        producer = services.producer

        def tombstone() -> None:
            producer.produce(AGGREGATES.name, value=None, key=done.influencer_id.encode())
            if producer.flush(10):
                msg = "the tombstone was not delivered within 10 s"
                raise RuntimeError(msg)

        try:
            await asyncio.to_thread(tombstone)
            topics.append(AGGREGATES.name)
        except Exception as exc:
            log.warning("erasure %s: no tombstone on %s: %s", done.id, AGGREGATES.name, exc)
            pending.append(f"tombstone:{AGGREGATES.name}")
    else:
        pending.append(f"tombstone:{AGGREGATES.name}")
    refreshed = False
    if done.time_range is not None:
        refreshed = await _write(ctx, management.refresh_rollups, done.time_range)
    await _write(ctx, management.record_scope, done.id,
                 {"cache_entries": dropped, "tombstones": topics, "rollups_refreshed": refreshed,
                  "pending": pending})
    return Erased(id=strawberry.ID(done.influencer_id), erasure_id=strawberry.ID(done.id),
                  erased_at=done.erased_at, rows=dict(done.rows),  # type: ignore[arg-type]
                  cache_entries=dropped,
                  tombstone_topics=topics, pending=pending)
