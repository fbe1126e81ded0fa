"""``creatorpulse simulate``: serve the platform simulators until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from creatorpulse.sources.simulator.world import PLATFORMS

if TYPE_CHECKING:
    from collections.abc import Callable

    from creatorpulse.settings import Settings
    from creatorpulse.sources.simulator.config import SimConfig

DESCRIPTION = """\
Serve local simulators of the platform APIs (Instagram and Facebook Graph API, YouTube Data API
v3 with its WebSub hub, TikTok API v2, X API v2), one HTTP server per platform on the address of
CREATORPULSE_<PLATFORM>_API_URL. Engagement evolves deterministically from --seed: new posts gain
likes, comments, shares and views on a decaying curve, followers grow, some posts go viral, lose
likes or are deleted. Each server also answers an admin surface under /_sim/ (GET /_sim/accounts
lists the seeded accounts with their ids, handles and initial OAuth tokens; GET /_sim/stats counts
requests and over-limit requests per credential). Webhooks go to CREATORPULSE_WEBHOOKS_URL,
signed with the CREATORPULSE_<PLATFORM>_CLIENT_SECRET. Stop with Ctrl-C.
"""


def _origin(text: str) -> float:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        msg = f"expected an ISO 8601 time with a zone, e.g. 2026-11-25T00:00:00Z, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return stamp.timestamp()


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            msg = f"expected a positive number, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        msg = f"expected 0 or a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser(
        "simulate", help="serve local simulators of the five platform APIs",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=_positive(int), default=200,
                   help="seeded accounts per platform (default 200; 10,000 fit on one core)")
    p.add_argument("--seed", type=int, default=1, help="the world's seed (default 1)")
    p.add_argument("--platforms", nargs="+", choices=PLATFORMS, default=list(PLATFORMS),
                   help="serve only these platforms (default: all five)")
    p.add_argument("--speed", type=_positive(float), default=1.0,
                   help="simulated seconds per real second (default 1: real time)")
    p.add_argument("--origin", type=_origin, default=None,
                   help="when the world's story starts (default: today 00:00 UTC, so a restart "
                   "the same day serves the same world)")
    p.add_argument("--webhook-every", type=_not_negative, default=10.0, metavar="SECONDS",
                   help="send a signed webhook for each new post this often (0: never; "
                   "default 10)")
    p.add_argument("--webhook-path", default="/webhooks/{platform}",
                   help="path of the receiver under CREATORPULSE_WEBHOOKS_URL for deliveries "
                   "nobody subscribed to ({platform} is replaced; default /webhooks/{platform})")
    p.add_argument("--token-ttl", type=_positive(float), default=None, metavar="SECONDS",
                   help="access tokens of every platform expire after this (default: each "
                   "platform's own: Meta 60 d, Google 3599 s, TikTok and X 2 h)")
    p.add_argument("--meta-buc-limit", type=_positive(int), default=None,
                   help="Meta calls per business object per 24 h (default 4800)")
    p.add_argument("--youtube-quota", type=_positive(int), default=None,
                   help="YouTube quota units per day (default 10000)")
    p.add_argument("--tiktok-limit", type=_positive(int), default=None,
                   help="TikTok requests per endpoint per minute (default 600)")
    p.add_argument("--x-limit", type=_positive(int), default=None,
                   help="X requests per endpoint per 15 min (default: X's per-endpoint table)")
    p.set_defaults(handler=cmd_simulate)

    p = commands.add_parser(
        "enrol", help="link the running simulators' seeded accounts into the registry (demo)",
        description="Read the first --accounts seeded accounts of each running simulator "
        "(GET /_sim/accounts on CREATORPULSE_<PLATFORM>_API_URL) and link them under --tenant: "
        "one influencer per creator, tagged demo, with an account and its sealed tokens per "
        "platform. Idempotent: what is already linked stays as it is.")
    p.add_argument("--tenant", default="demo", help="tenant id (default demo; created if new)")
    p.add_argument("--accounts", type=_positive(int), default=200,
                   help="creators to link per platform (default 200)")
    p.add_argument("--platforms", nargs="+", choices=PLATFORMS, default=list(PLATFORMS),
                   help="only these platforms (default: all five)")
    p.add_argument("--interval", type=_positive(float), default=60.0, metavar="SECONDS",
                   help="base poll interval of each account (default 60)")
    p.set_defaults(handler=cmd_enrol)


def cmd_enrol(args: argparse.Namespace, settings: Settings) -> int:
    import sys
    import urllib.error
    from datetime import timedelta

    import psycopg

    from creatorpulse.cli import say
    from creatorpulse.sources.simulator.enrol import enrol_running
    from creatorpulse.tokens import TokenVault

    urls = {p: settings.platform_api_url(p) for p in args.platforms}
    try:
        with psycopg.connect(settings.database_dsn.reveal(), autocommit=True,
                             connect_timeout=10) as conn:
            done = enrol_running(
                conn, TokenVault.from_settings(settings), args.tenant, urls, int(args.accounts),
                timedelta(seconds=args.interval),
                progress=lambda i: say(f"enrolled creator {i + 1}/{args.accounts}")
                if (i + 1) % 50 == 0 else None)
    except urllib.error.URLError as exc:
        print(f"error: a simulator does not answer ({exc.reason}); start them with "
              "`creatorpulse simulate`", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    say(f"tenant {args.tenant}: {done.influencers} influencers and {done.accounts} accounts "
        f"linked, {done.already} already there")
    return 0


def config_from_args(args: argparse.Namespace, settings: Settings) -> SimConfig:
    from creatorpulse.sources.simulator.config import SimConfig

    config = SimConfig(seed=args.seed, accounts=args.accounts,
                       webhook_path=args.webhook_path).with_settings(settings)
    overrides = {"meta_buc_limit": args.meta_buc_limit, "youtube_quota": args.youtube_quota,
                 "tiktok_limit": args.tiktok_limit, "x_limit": args.x_limit}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.token_ttl is not None:
        config = replace(config, token_ttl=dict.fromkeys(config.token_ttl, args.token_ttl))
    return config


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from creatorpulse.cli import say
    from creatorpulse.sources.simulator.clock import RealClock
    from creatorpulse.sources.simulator.server import SimulatorError, Simulators, build

    config = config_from_args(args, settings)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    origin = args.origin if args.origin is not None else today.timestamp()
    clock = RealClock(speed=args.speed)
    platforms = tuple(args.platforms)
    started = time.monotonic()
    built = build(config, clock, platforms, origin=origin)
    addresses = {p: settings.platform_api_url(p) for p in platforms}
    try:
        sims = Simulators.start(built, addresses)
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    say(f"simulating {config.accounts} accounts per platform (seed {config.seed}, speed "
        f"{args.speed:g}x) in {time.monotonic() - started:.1f}s")
    for platform, url in sims.urls.items():
        print(f"  {platform:<9} {url}   accounts and tokens: {url}/_sim/accounts")
    print(f"  webhooks  -> {config.webhooks_url}{config.webhook_path}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    last = clock.now()
    while not stop.wait(args.webhook_every or 1.0):
        if not sims.alive():
            print("error: the simulators stopped unexpectedly", file=sys.stderr)
            return 1
        if args.webhook_every:
            now = clock.now()
            for app in sims.apps.values():
                app.emit_new_content(last, now)
            last = now
    sims.stop()
    say("simulators stopped")
    return 0
