"""What a simulator run is made of: the world's seed and size, limits, token lifetimes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from creatorpulse.settings import Settings

DAY = 86_400.0


@dataclass(frozen=True)
class Client:
    """A platform app's OAuth client, as the platform knows it."""

    id: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SimConfig:
    """Everything a simulator run can vary; the defaults are the platforms' real numbers.

    Tests shrink limits and token lifetimes; the demo raises limits it does not care about.
    """

    seed: int = 1
    accounts: int = 100
    clients: dict[str, Client] = field(default_factory=dict)
    webhooks_url: str = "http://127.0.0.1:8700"
    webhook_path: str = "/webhooks/{platform}"  # joined to webhooks_url
    # Meta: Business Use Case limit per business object (rolling), Platform limit per app.
    meta_buc_limit: int = 4800
    meta_buc_window: float = DAY
    meta_app_limit: int | None = None  # None: 200 calls per account per window
    meta_app_window: float = 3600.0
    # YouTube: quota units per app per day (midnight Pacific), and what each call costs.
    youtube_quota: int = 10_000
    youtube_costs: dict[str, int] = field(default_factory=lambda: {
        "channels": 1, "videos": 1, "playlistItems": 1, "search": 100, "reports": 1})
    # TikTok: requests per endpoint per credential in a sliding minute.
    tiktok_limit: int = 600
    tiktok_window: float = 60.0
    # X: None follows the per-endpoint table; a number caps every endpoint per credential.
    x_limit: int | None = None
    x_window: float = 900.0
    # Access-token lifetimes (seconds) and refresh rules.
    token_ttl: dict[str, float] = field(default_factory=lambda: {
        "instagram": 60 * DAY, "facebook": 60 * DAY, "youtube": 3599.0, "tiktok": 7200.0,
        "x": 7200.0})
    tiktok_refresh_ttl: float = 180 * DAY
    instagram_refresh_min_age: float = DAY
    websub_lease_seconds: int = 432_000

    def client(self, platform: str) -> Client:
        return self.clients.get(platform) or Client(
            f"creatorpulse-{platform}", f"simulator-{platform}-secret")

    def with_settings(self, settings: Settings) -> SimConfig:
        """The OAuth clients and the webhook receiver's URL from ``settings``."""
        clients = {}
        for platform in ("instagram", "facebook", "youtube", "tiktok", "x"):
            client_id, secret = settings.platform_client(platform)
            clients[platform] = Client(client_id, secret.reveal())
        return replace(self, clients=clients, webhooks_url=settings.webhooks_url)

    def ttl(self, platform: str) -> float:
        return self.token_ttl[platform]
