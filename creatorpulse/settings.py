"""The one settings object, read from ``CREATORPULSE_*`` environment variables and ``.env``.

Every setting is declared once, in :class:`Settings`, with its environment name, default and
meaning; ``creatorpulse settings`` prints them and README.md lists them. Parsing is strict: a bad
value, or a ``CREATORPULSE_*`` name that no setting has, raises :class:`SettingsError` naming the
key. Secrets are wrapped in :class:`Secret`, whose ``repr`` and ``str`` never show the value.

Build it once at an entry point with :meth:`Settings.from_env` and pass it down; nothing in the
project reads the environment anywhere else.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PREFIX = "CREATORPULSE_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENVIRONMENTS = ("development", "production")


class SettingsError(ValueError):
    """A setting is missing, malformed or unknown; the message names the environment key."""


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call this only where the value is handed to a client."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for display."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# --- parsers: each takes the raw text and returns the value or raises ValueError ---------------

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_DURATION_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"7d"``."""
    match = _DURATION.match(text.strip())
    if not match:
        msg = f"expected a duration such as 30s, 5m, 1h or 7d, got {text!r}"
        raise ValueError(msg)
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(delta: timedelta) -> str:
    """The shortest exact form that :func:`parse_duration` reads back (``90s``, ``5m``, ``7d``)."""
    ms = round(delta.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_bool(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off``; anything else is an error."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    msg = f"expected true or false, got {text!r}"
    raise ValueError(msg)


def parse_port(text: str) -> int:
    """A TCP port from 1 to 65535."""
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        msg = f"expected a port from 1 to 65535, got {text!r}"
        raise ValueError(msg)
    return port


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if value not in allowed:
            msg = f"expected one of {', '.join(allowed)}, got {text!r}"
            raise ValueError(msg)
        return value

    return parse


def _url(*schemes: str) -> Callable[[str], Secret]:
    def parse(text: str) -> Secret:
        value = text.strip()
        scheme = urlsplit(value).scheme
        if scheme not in schemes or not urlsplit(value).hostname:
            # The value may hold a password: say what is wrong without echoing it.
            msg = f"expected a {' or '.join(schemes)} URL with a host"
            raise ValueError(msg)
        return Secret(value)

    return parse


def _servers(text: str) -> str:
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    if not hosts or any(not re.match(r"^[\w.\-]+:\d+$", h) for h in hosts):
        msg = f"expected host:port[,host:port...], got {text!r}"
        raise ValueError(msg)
    return ",".join(hosts)


@dataclass(frozen=True)
class WindowSpec:
    """A sliding window: ``name`` (as written, e.g. ``24h``), its size and how often it slides."""

    name: str
    size: timedelta
    slide: timedelta


def parse_windows(text: str) -> tuple[WindowSpec, ...]:
    """``SIZE/SLIDE[,SIZE/SLIDE...]``, e.g. ``1h/1m,24h/5m,7d/1h``; the slide divides the size."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        size_text, sep, slide_text = item.partition("/")
        if not sep:
            msg = f"expected SIZE/SLIDE such as 1h/1m, got {item!r}"
            raise ValueError(msg)
        size, slide = parse_duration(size_text), parse_duration(slide_text)
        if not timedelta(0) < slide <= size or size % slide:
            msg = f"{item!r}: the slide must be positive and divide the size"
            raise ValueError(msg)
        specs.append(WindowSpec(size_text.strip(), size, slide))
    if len({s.name for s in specs}) != len(specs):
        msg = f"window sizes must differ, got {text!r}"
        raise ValueError(msg)
    return tuple(specs)


def _http_url(text: str) -> str:
    value = text.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.password:
        msg = f"expected an http(s) URL with a host and no password, got {text!r}"
        raise ValueError(msg)
    return value


def _token(text: str) -> str:
    value = text.strip()
    if not re.match(r"^[\w.\-]{1,128}$", value):
        msg = f"expected letters, digits, '.', '_' or '-' (1 to 128), got {text!r}"
        raise ValueError(msg)
    return value


def _secret(text: str) -> Secret:
    if not text.strip():
        msg = "expected a non-empty secret"
        raise ValueError(msg)
    return Secret(text.strip())


def _signing_key(text: str) -> Secret:
    if len(text.strip()) < 32:
        msg = "expected a key of at least 32 characters"
        raise ValueError(msg)
    return Secret(text.strip())


def _path(text: str) -> Path:
    return Path(text.strip()).expanduser()


def _memory(text: str) -> str:
    if not re.match(r"^\d+[kmgKMG]$", text.strip()):
        msg = f"expected a JVM memory size such as 512m or 1g, got {text!r}"
        raise ValueError(msg)
    return text.strip().lower()


def _byte_size(text: str) -> int:
    try:
        size = int(text.strip())
    except ValueError:
        size = 0
    if size < 1:
        msg = f"expected a positive number of bytes, got {text!r}"
        raise ValueError(msg)
    return size

def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise ValueError(msg)
    return value


def _fernet_keys(text: str) -> Secret:
    import base64
    import binascii

    keys = [k.strip() for k in text.split(",") if k.strip()]
    for number, key in enumerate(keys, start=1):
        try:
            ok = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:  # never echo a key, even a malformed one
            msg = f"key {number} is not a Fernet key (32 url-safe base64-encoded bytes)"
            raise ValueError(msg)
    if not keys:
        msg = "expected one or more Fernet keys, comma-separated"
        raise ValueError(msg)
    return Secret(",".join(keys))


_PLATFORMS = ("instagram", "facebook", "youtube", "tiktok", "x")


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``period`` for one platform."""

    platform: str
    requests: int
    period: timedelta


def _rate_limits(text: str) -> tuple[RateLimit, ...]:
    """``platform=N/PERIOD,...``, e.g. ``x=450/15m``; every platform must have one."""
    limits = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, rate = item.partition("=")
        count, slash, period = rate.partition("/")
        if not sep or not slash or not count.strip().isdigit() or int(count) < 1:
            msg = f"expected platform=N/PERIOD such as x=450/15m, got {item!r}"
            raise ValueError(msg)
        if name.strip() not in _PLATFORMS:
            msg = f"unknown platform {name.strip()!r}; expected one of {', '.join(_PLATFORMS)}"
            raise ValueError(msg)
        limits[name.strip()] = RateLimit(name.strip(), int(count), parse_duration(period))
    missing = [p for p in _PLATFORMS if p not in limits]
    if missing:
        msg = f"no limit for {', '.join(missing)}"
        raise ValueError(msg)
    return tuple(limits[p] for p in _PLATFORMS)


def _setting(env: str, parse: Callable[[str], Any], default: str | None, doc: str) -> Any:
    """Declare a setting: its environment name, parser, default text (parsed too) and meaning."""
    return field(metadata={"env": PREFIX + env, "parse": parse, "default": default, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every knob of CreatorPulse, typed and frozen. Build with :meth:`from_env`."""

    environment: str = _setting(
        "ENV", _choice(*ENVIRONMENTS), "development", "development or production."
    )
    log_level: str = _setting("LOG_LEVEL", _choice(*LOG_LEVELS), "INFO", "Log level.")
    state_dir: Path = _setting(
        "STATE_DIR",
        _path,
        ".creatorpulse",
        "Folder for the local stack: data, logs, pid files, jars, checkpoints.",
    )
    start_timeout: timedelta = _setting(
        "START_TIMEOUT", parse_duration, "180s", "How long each part may take to become ready."
    )
    database_url: Secret | None = _setting(
        "DATABASE_URL",
        _url("postgresql", "postgres"),
        None,
        "PostgreSQL/TimescaleDB URL. Unset: stack up runs a private cluster.",
    )
    postgres_port: int = _setting(
        "POSTGRES_PORT", parse_port, "5433", "Port of the private PostgreSQL cluster."
    )
    redis_url: Secret | None = _setting(
        "REDIS_URL", _url("redis", "rediss"), None, "Redis URL. Unset: stack up runs a private one."
    )
    redis_port: int = _setting("REDIS_PORT", parse_port, "6380", "Port of the private Redis.")
    kafka_bootstrap_servers: str | None = _setting(
        "KAFKA_BOOTSTRAP_SERVERS",
        _servers,
        None,
        "Kafka brokers (host:port,...). Unset: stack up runs a private KRaft broker.",
    )
    kafka_port: int = _setting("KAFKA_PORT", parse_port, "9092", "Port of the private broker.")
    kafka_controller_port: int = _setting(
        "KAFKA_CONTROLLER_PORT", parse_port, "9093", "KRaft controller port of the private broker."
    )
    kafka_heap: str = _setting("KAFKA_HEAP", _memory, "1g", "JVM heap of the private broker.")
    flink_conf_dir: Path = _setting(
        "FLINK_CONF_DIR",
        _path,
        "flink-conf",
        "Flink configuration folder (config.yaml) for the session cluster and clients.",
    )
    watermark_delay: timedelta = _setting(
        "WATERMARK_DELAY",
        parse_duration,
        "5s",
        "Bounded out-of-orderness of event time; later readings go to the late topic.",
    )
    source_idle_timeout: timedelta = _setting(
        "SOURCE_IDLE_TIMEOUT",
        parse_duration,
        "30s",
        "A Kafka partition silent this long stops holding the watermark back.",
    )

    windows: tuple[WindowSpec, ...] = _setting(
        "WINDOWS",
        parse_windows,
        "1h/1m,24h/5m,7d/1h",
        "Sliding windows of the engagement job, SIZE/SLIDE, comma-separated.",
    )
    state_ttl: timedelta = _setting(
        "STATE_TTL",
        parse_duration,
        "8d",
        "How long Flink keeps a counter's or event id's state after its last reading.",
    )

    # --- platform APIs: the simulators by default; a real platform is a change of URL --------
    instagram_api_url: str = _setting(
        "INSTAGRAM_API_URL", _http_url, "http://127.0.0.1:8601", "Instagram Graph API base URL."
    )
    facebook_api_url: str = _setting(
        "FACEBOOK_API_URL", _http_url, "http://127.0.0.1:8602", "Facebook Graph API base URL."
    )
    youtube_api_url: str = _setting(
        "YOUTUBE_API_URL", _http_url, "http://127.0.0.1:8603", "YouTube Data API v3 base URL."
    )
    tiktok_api_url: str = _setting(
        "TIKTOK_API_URL", _http_url, "http://127.0.0.1:8604", "TikTok API v2 base URL."
    )
    x_api_url: str = _setting("X_API_URL", _http_url, "http://127.0.0.1:8605", "X API v2 base URL.")

    instagram_client_id: str = _setting(
        "INSTAGRAM_CLIENT_ID",
        _token,
        "creatorpulse-instagram",
        "Instagram (Meta app): OAuth client id.",
    )
    instagram_client_secret: Secret = _setting(
        "INSTAGRAM_CLIENT_SECRET",
        _secret,
        "simulator-instagram-secret",
        "Instagram (Meta app): client secret (refresh, webhooks); default: the simulator's.",
    )
    facebook_client_id: str = _setting(
        "FACEBOOK_CLIENT_ID",
        _token,
        "creatorpulse-facebook",
        "Facebook (Meta app): OAuth client id.",
    )
    facebook_client_secret: Secret = _setting(
        "FACEBOOK_CLIENT_SECRET",
        _secret,
        "simulator-facebook-secret",
        "Facebook (Meta app): client secret (refresh, webhooks); default: the simulator's.",
    )
    youtube_client_id: str = _setting(
        "YOUTUBE_CLIENT_ID",
        _token,
        "creatorpulse-youtube",
        "YouTube (Google OAuth client): OAuth client id.",
    )
    youtube_client_secret: Secret = _setting(
        "YOUTUBE_CLIENT_SECRET",
        _secret,
        "simulator-youtube-secret",
        "YouTube (Google OAuth client): client secret (token refresh); default: the simulator's.",
    )
    tiktok_client_id: str = _setting(
        "TIKTOK_CLIENT_ID",
        _token,
        "creatorpulse-tiktok",
        "TikTok: OAuth client id.",
    )
    tiktok_client_secret: Secret = _setting(
        "TIKTOK_CLIENT_SECRET",
        _secret,
        "simulator-tiktok-secret",
        "TikTok: client secret (refresh, webhooks); default: the simulator's.",
    )
    x_client_id: str = _setting(
        "X_CLIENT_ID",
        _token,
        "creatorpulse-x",
        "X: OAuth client id.",
    )
    x_client_secret: Secret = _setting(
        "X_CLIENT_SECRET",
        _secret,
        "simulator-x-secret",
        "X: client secret (refresh, webhooks); default: the simulator's.",
    )
    api_url: str = _setting(
        "API_URL",
        _http_url,
        "http://127.0.0.1:8000",
        "Public base URL of the GraphQL API; `api serve` listens on this URL's port.",
    )
    # --- the GraphQL API: tokens ------------------------------------------------------------
    jwt_secret: Secret | None = _setting(
        "JWT_SECRET",
        _signing_key,
        None,
        "HS256 key that signs and checks API tokens. Unset: a fixed development key "
        "(refused in production).",
    )
    jwt_issuer: str = _setting("JWT_ISSUER", _token, "creatorpulse", "`iss` of API tokens.")
    jwt_audience: str = _setting(
        "JWT_AUDIENCE", _token, "creatorpulse-api", "`aud` of API tokens."
    )
    jwt_ttl: timedelta = _setting(
        "JWT_TTL", parse_duration, "1h", "Lifetime of tokens minted by `api token`."
    )
    # --- the GraphQL API: limits and cache ----------------------------------------------------
    api_max_depth: int = _setting(
        "API_MAX_DEPTH", _positive_int, "10", "Deepest selection nesting an operation may have."
    )
    api_max_aliases: int = _setting(
        "API_MAX_ALIASES", _positive_int, "15", "Most aliases in one operation."
    )
    api_max_tokens: int = _setting(
        "API_MAX_TOKENS", _positive_int, "2000", "Most lexical tokens in one GraphQL document."
    )
    api_max_first: int = _setting(
        "API_MAX_FIRST", _positive_int, "100", "Largest page (`first`) a list may ask for."
    )
    api_max_cost: int = _setting(
        "API_MAX_COST", _positive_int, "1000", "Largest estimated cost of one operation (points)."
    )
    api_rate_budget: int = _setting(
        "API_RATE_BUDGET",
        _positive_int,
        "5000",
        "Points in each client's token bucket (the burst an API client may spend).",
    )
    api_rate_refill: int = _setting(
        "API_RATE_REFILL", _positive_int, "50", "Points per second each client's bucket regains."
    )
    api_cache_ttl: timedelta = _setting(
        "API_CACHE_TTL",
        parse_duration,
        "5m",
        "How long an aggregate answer stays in the Redis cache (fresh aggregates evict it sooner).",
    )
    api_max_subscriptions: int = _setting(
        "API_MAX_SUBSCRIPTIONS",
        _positive_int,
        "200",
        "Most live subscriptions one token subject may hold at once, over all its connections.",
    )
    webhooks_url: str = _setting(
        "WEBHOOKS_URL",
        _http_url,
        "http://127.0.0.1:8700",
        "Public base URL of the webhook receiver; it listens on this URL's port.",
    )
    # --- webhook receiver (sources/webhooks) -------------------------------------------------
    meta_verify_token: Secret = _setting(
        "META_VERIFY_TOKEN",
        _secret,
        "simulator-meta-verify-token",
        "Meta webhooks: the verify token the hub.challenge handshake must carry.",
    )
    websub_secret: Secret = _setting(
        "WEBSUB_SECRET",
        _secret,
        "simulator-websub-secret",
        "YouTube WebSub: the hub.secret we subscribe with; the hub signs pushes with it.",
    )
    websub_hub_url: str | None = _setting(
        "WEBSUB_HUB_URL",
        _http_url,
        None,
        "YouTube WebSub hub. Unset: the YouTube API URL + /subscribe (the simulator's hub).",
    )
    websub_lease: timedelta = _setting(
        "WEBSUB_LEASE",
        parse_duration,
        "5d",
        "YouTube WebSub: the lease asked for; subscriptions are renewed before it ends.",
    )
    webhooks_timestamp_tolerance: timedelta = _setting(
        "WEBHOOKS_TIMESTAMP_TOLERANCE",
        parse_duration,
        "300s",
        "Signed webhook timestamps (TikTok) further than this from now are refused (replay).",
    )
    webhooks_max_body: int = _setting(
        "WEBHOOKS_MAX_BODY",
        _byte_size,
        "1048576",
        "Largest webhook body accepted, in bytes; a larger one is answered 413.",
    )

    # --- the sources' runtime: token vault, polling cadence, rate limits, workers -------------
    token_keys: Secret | None = _setting(
        "TOKEN_KEYS",
        _fernet_keys,
        None,
        "Fernet keys sealing OAuth tokens at rest, comma-separated: the first encrypts, all "
        "decrypt. Unset: a fixed development key (an error in production).",
    )
    poll_fresh_interval: timedelta = _setting(
        "POLL_FRESH_INTERVAL", parse_duration, "1m", "How often content younger than "
        "POLL_FRESH_AGE is polled; older content is polled less in proportion to its age."
    )
    poll_fresh_age: timedelta = _setting(
        "POLL_FRESH_AGE", parse_duration, "1h",
        "Content this young is polled at the fresh interval.",
    )
    poll_max_interval: timedelta = _setting(
        "POLL_MAX_INTERVAL", parse_duration, "6h", "The longest wait between two polls of content."
    )
    poll_max_age: timedelta = _setting(
        "POLL_MAX_AGE", parse_duration, "7d", "Content older than this is no longer polled."
    )
    poll_backoff_factor: int = _setting(
        "POLL_BACKOFF_FACTOR", _positive_int, "8",
        "Unchanged results double the interval, at most this many times the normal one.",
    )
    app_rate_limits: tuple[RateLimit, ...] = _setting(
        "APP_RATE_LIMITS", _rate_limits,
        "instagram=40000/1h,facebook=40000/1h,youtube=300/1m,tiktok=600/1m,x=450/15m",
        "Requests per platform app shared by all workers, platform=N/PERIOD, comma-separated "
        "(Meta allows 200 per hour per app user: the default fits 200 users).",
    )
    account_rate_limits: tuple[RateLimit, ...] = _setting(
        "ACCOUNT_RATE_LIMITS", _rate_limits,
        "instagram=200/1h,facebook=200/1h,youtube=60/1m,tiktok=600/1m,x=900/15m",
        "Requests per credential (account token), platform=N/PERIOD, comma-separated.",
    )
    youtube_daily_quota: int = _setting(
        "YOUTUBE_DAILY_QUOTA", _positive_int, "10000",
        "YouTube Data API quota units per day for the app (resets at midnight Pacific time).",
    )
    retry_base: timedelta = _setting(
        "RETRY_BASE", parse_duration, "1s", "First wait of the exponential backoff (with jitter)."
    )
    retry_max: timedelta = _setting(
        "RETRY_MAX", parse_duration, "5m", "Longest wait of the exponential backoff."
    )
    retry_attempts: int = _setting(
        "RETRY_ATTEMPTS", _positive_int, "5", "Attempts of one request before the poll fails."
    )
    http_timeout: timedelta = _setting(
        "HTTP_TIMEOUT", parse_duration, "10s", "Connect and read timeout of platform requests."
    )
    token_refresh_margin: timedelta = _setting(
        "TOKEN_REFRESH_MARGIN", parse_duration, "5m",
        "An access token is refreshed this long before it expires.",
    )
    lease_ttl: timedelta = _setting(
        "LEASE_TTL", parse_duration, "15s",
        "A worker's hold on an account; a dead worker's accounts move on after this.",
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read the settings from ``environ``, falling back to ``dotenv`` when it exists."""
        values = {}
        if dotenv is not None and dotenv.is_file():
            values.update((k, v) for k, v in read_dotenv(dotenv) if k.startswith(PREFIX))
        values.update({k: v for k, v in environ.items() if k.startswith(PREFIX)})
        known = {f.metadata["env"]: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
            msg = f"unknown setting: {', '.join(hints)}; see `creatorpulse settings`"
            raise SettingsError(msg)
        parsed: dict[str, Any] = {}
        for key, f in known.items():
            raw = values.get(key, f.metadata["default"])
            if raw is None:
                parsed[f.name] = None
                continue
            try:
                parsed[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                msg = f"{key}: {exc}"
                raise SettingsError(msg) from None
        largest = max(w.size for w in parsed["windows"])
        if parsed["state_ttl"] <= largest:
            msg = (f"{PREFIX}STATE_TTL: must be longer than the largest window "
                   f"({format_duration(largest)}), or windows would lose their counters' state")
            raise SettingsError(msg)
        parsed["state_dir"] = parsed["state_dir"].resolve()
        parsed["flink_conf_dir"] = parsed["flink_conf_dir"].resolve()
        return cls(**parsed)

    # --- addresses derived from the settings: one rule for "external, or our own" --------------

    @property
    def manages_postgres(self) -> bool:
        return self.database_url is None

    @property
    def manages_redis(self) -> bool:
        return self.redis_url is None

    @property
    def manages_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def database_dsn(self) -> Secret:
        """The PostgreSQL URL to connect to: the configured one, or the private cluster's."""
        if self.database_url is not None:
            return self.database_url
        return Secret(f"postgresql://creatorpulse@127.0.0.1:{self.postgres_port}/creatorpulse")

    @property
    def redis_dsn(self) -> Secret:
        if self.redis_url is not None:
            return self.redis_url
        return Secret(f"redis://127.0.0.1:{self.redis_port}/0")

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def websub_hub(self) -> str:
        """The WebSub hub to subscribe YouTube channels at: the configured one, or the API's."""
        return self.websub_hub_url or f"{self.youtube_api_url}/subscribe"

    def platform_api_url(self, platform: str) -> str:
        """The base URL of ``platform``'s API (``instagram``, ``facebook``, ``youtube``, ...)."""
        return str(getattr(self, f"{platform}_api_url"))

    def platform_client(self, platform: str) -> tuple[str, Secret]:
        """``platform``'s OAuth client id and secret."""
        return getattr(self, f"{platform}_client_id"), getattr(self, f"{platform}_client_secret")

    def rate_limit(self, platform: str, scope: str) -> RateLimit:
        """``platform``'s limit per ``app`` or per ``account`` (credential)."""
        limits = self.app_rate_limits if scope == "app" else self.account_rate_limits
        return next(r for r in limits if r.platform == platform)

    def describe(self) -> list[tuple[str, str, str]]:
        """``(env name, shown value, meaning)`` for every setting, secrets masked."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                shown = "(unset)"
            elif isinstance(value, Secret):
                shown = mask_url(value.reveal()) if "://" in value.reveal() else "**********"
            elif isinstance(value, timedelta):
                shown = format_duration(value)
            elif f.name.endswith("rate_limits"):
                shown = ",".join(f"{r.platform}={r.requests}/{format_duration(r.period)}"
                                 for r in value)
            elif f.name == "windows":
                shown = ",".join(f"{w.name}/{format_duration(w.slide)}" for w in value)
            else:
                shown = str(value)
            rows.append((f.metadata["env"], shown, f.metadata["doc"]))
        return rows


def read_dotenv(path: Path) -> list[tuple[str, str]]:
    """``KEY=VALUE`` pairs of a ``.env`` file; blank lines and ``#`` comments are skipped."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            msg = f"{path}:{number}: expected KEY=VALUE"
            raise SettingsError(msg)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        pairs.append((key.strip(), value))
    return pairs
