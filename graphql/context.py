"""The per-request context: who is calling, the shared clients, and fresh DataLoaders.

:class:`Services` holds what the app's lifespan opens once (pools, Redis, cache, rate limiter,
Kafka producer, the live hub); :class:`Context` is built for every request (and every WebSocket
connection) from it, with DataLoaders scoped to the caller's tenant, so a nested path such as
``leaderboard { influencer { accounts } }`` costs one query per level, never one per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from strawberry.dataloader import DataLoader

from creatorpulse.graphql import influencers, metrics
from creatorpulse.graphql.auth import Principal, Role, require

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
    from redis.asyncio import Redis

    from creatorpulse.graphql.cache import AggregateCache
    from creatorpulse.graphql.limits import TokenBucket
    from creatorpulse.graphql.observability import ApiMetrics
    from creatorpulse.settings import Settings
    from creatorpulse.tokens import TokenVault


class LiveHub(Protocol):
    """What the app's lifespan needs from the live-updates hub (the aggregates consumer).

    ``start`` is awaited once the services are open (the hub may keep them, e.g. to call
    ``services.cache.invalidate(influencer_id)`` when fresh aggregates arrive); ``stop`` is
    awaited at shutdown, before the services close.
    """

    async def start(self, services: Services) -> None: ...

    async def stop(self) -> None: ...


class Producer(Protocol):
    """The part of confluent_kafka.Producer the API uses (tombstones on erasure)."""

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                **kwargs: Any) -> None: ...

    def flush(self, timeout: float = ...) -> int: ...


@dataclass
class Services:
    """Everything the lifespan owns, shared by all requests."""

    settings: Settings
    pool: AsyncConnectionPool
    registry_pool: ConnectionPool
    redis: Redis
    cache: AggregateCache
    bucket: TokenBucket | None
    metrics: ApiMetrics
    vault: TokenVault
    producer: Producer | None = None
    live: LiveHub | None = None


class Loaders:
    """DataLoaders of one request, scoped to one tenant."""

    def __init__(self, services: Services, tenant_id: str) -> None:
        pool = services.pool

        async def load_influencers(ids: list[str]) -> list[influencers.InfluencerRow | None]:
            async with pool.connection() as conn:
                found = await influencers.by_ids(conn, tenant_id, ids)
            return [found.get(i) for i in ids]

        async def load_accounts(ids: list[str]) -> list[list[influencers.AccountRow]]:
            async with pool.connection() as conn:
                found = await influencers.accounts_by_influencer(conn, tenant_id, ids)
            return [found.get(i, []) for i in ids]

        async def load_account(ids: list[str]) -> list[influencers.AccountRow | None]:
            async with pool.connection() as conn:
                found = await influencers.account_by_ids(conn, tenant_id, ids)
            return [found.get(i) for i in ids]

        async def load_rates(keys: list[metrics.RateKey]) -> list[metrics.Rate | None]:
            async with pool.connection() as conn:
                found = await metrics.engagement_rates(conn, tenant_id, keys)
            return [found.get(k) for k in keys]

        self.influencer = DataLoader(load_fn=load_influencers)
        self.accounts = DataLoader(load_fn=load_accounts)
        self.account = DataLoader(load_fn=load_account)
        self.engagement_rate = DataLoader(load_fn=load_rates)


@dataclass
class Context:
    """What every resolver gets as ``info.context``."""

    services: Services
    principal: Principal | None
    client_key: str
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    # What the operation's answer depends on (cache dependency names), collected while a
    # response-cacheable operation executes (graphql/response_cache.py); None otherwise.
    response_deps: set[str] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def bucket(self) -> TokenBucket | None:
        return self.services.bucket

    @property
    def metrics(self) -> ApiMetrics:
        return self.services.metrics

    def depends_on(self, *dependencies: str) -> list[str]:
        """Note that the answer being computed depends on ``dependencies``; returns them."""
        if self.response_deps is not None:
            self.response_deps.update(dependencies)
        return list(dependencies)

    def tenant(self, role: Role = Role.VIEWER) -> str:
        """The caller's tenant, once the caller is known to hold ``role`` (else AuthError)."""
        return require(self.principal, role).tenant_id

    @property
    def loaders(self) -> Loaders:
        tenant_id = self.tenant()
        if self._loaders is None:
            self._loaders = Loaders(self.services, tenant_id)
        return self._loaders

    def fresh_loaders(self) -> Loaders:
        """New loaders (a WebSocket connection lives long: call this per event)."""
        self._loaders = Loaders(self.services, self.tenant())
        return self._loaders

    def authenticate(self, principal: Principal) -> None:
        """Bind the connection to ``principal`` (WebSocket ``connection_init``)."""
        self.principal = principal
        self.client_key = client_key(principal, None)
        self._loaders = None


def client_key(principal: Principal | None, address: str | None) -> str:
    """Whose budget an operation is charged to: the token's subject, or the caller's address."""
    if principal is not None:
        return f"sub:{principal.tenant_id}:{principal.subject}"
    return f"ip:{address or 'unknown'}"
