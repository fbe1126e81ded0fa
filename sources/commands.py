"""CLI of the registry and the pollers: ``influencers``, ``accounts``, ``tokens``, ``sources``.

Tokens are never taken from the command line (``ps`` would show them): ``accounts link`` reads
them as JSON from a file (``--tokens-file``) or from standard input (``--tokens-file -``), in the
shape a token endpoint answers: ``{"access_token": ..., "refresh_token": ..., "expires_in": ...
or "expires_at": ISO time, "scope": "a b" or [...]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from creatorpulse.observation import Platform
from creatorpulse.settings import Secret, Settings, format_duration, parse_duration
from creatorpulse.sinks import registry
from creatorpulse.sinks.registry import Credentials, RegistryError
from creatorpulse.sources.base import SourceError
from creatorpulse.tokens import TokenVault, VaultError, rotate

DEFAULT_TENANT = "default"


class CommandError(Exception):
    """An expected failure: the message is printed and the command exits with 1."""


def _guard(handler: Callable[[argparse.Namespace, Settings], int]) -> Callable[..., int]:
    """Expected failures print one line and exit 1, never a traceback."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return int(handler(args, settings))
        except (CommandError, RegistryError, VaultError, SourceError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except psycopg.OperationalError as exc:
            print(f"error: cannot reach the database: {exc}\nStart it with `creatorpulse stack "
                  "up` or set CREATORPULSE_DATABASE_URL.", file=sys.stderr)
            return 1

    return run


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_dsn.reveal(), autocommit=True, connect_timeout=10)


# --- influencers ----------------------------------------------------------------------------


def cmd_influencers_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        metadata = json.loads(args.metadata) if args.metadata else {}
    except ValueError as exc:
        msg = f"--metadata: not JSON ({exc})"
        raise CommandError(msg) from None
    if not isinstance(metadata, dict):
        msg = "--metadata: expected a JSON object"
        raise CommandError(msg)
    with _connect(settings) as conn:
        registry.ensure_tenant(conn, args.tenant)
        inf = registry.add_influencer(conn, args.tenant, args.name, args.tag or [], metadata)
    print(inf.id)
    return 0


def cmd_influencers_list(args: argparse.Namespace, settings: Settings) -> int:
    with _connect(settings) as conn:
        influencers = registry.list_influencers(conn, args.tenant, tag=args.tag, limit=args.limit)
        accounts = registry.list_accounts(conn, args.tenant)
    if not influencers:
        print(f"no influencers in tenant {args.tenant!r}")
        return 0
    for inf in influencers:
        tags = f"  [{', '.join(inf.tags)}]" if inf.tags else ""
        print(f"{inf.id}  {inf.name}{tags}")
        for acc in (a for a in accounts if a.influencer_id == inf.id):
            print(f"    {acc.id}  {acc.platform:<9} {acc.handle or acc.external_id:<24} "
                  f"{acc.status}  every {format_duration(acc.poll_interval)}")
    return 0


def cmd_influencers_remove(args: argparse.Namespace, settings: Settings) -> int:
    with _connect(settings) as conn:
        registry.remove_influencer(conn, args.tenant, args.influencer)
    print(f"removed influencer {args.influencer} and its accounts")
    return 0


# --- accounts -------------------------------------------------------------------------------


def read_tokens(path: str, now: datetime) -> Credentials:
    """Credentials from a token-endpoint-shaped JSON document (``-``: standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"--tokens-file: cannot read {path}: {exc.strerror}"
        raise CommandError(msg) from None
    try:
        data = json.loads(text)
    except ValueError:
        msg = "the tokens are not JSON"  # never echo the text: it holds secrets
        raise CommandError(msg) from None
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        msg = "the tokens need at least a string access_token"
        raise CommandError(msg)
    expires_at = None
    if data.get("expires_at"):
        try:
            expires_at = datetime.fromisoformat(str(data["expires_at"]))
        except ValueError:
            msg = "expires_at: expected an ISO 8601 time with a zone"
            raise CommandError(msg) from None
        if expires_at.utcoffset() is None:
            msg = "expires_at: expected an ISO 8601 time with a zone"
            raise CommandError(msg)
    elif data.get("expires_in"):
        expires_at = now + timedelta(seconds=float(data["expires_in"]))
    scope = data.get("scope") or []
    scopes = scope.replace(",", " ").split() if isinstance(scope, str) else list(scope)
    refresh = data.get("refresh_token")
    return Credentials(Secret(data["access_token"]), Secret(refresh) if refresh else None,
                       expires_at, tuple(scopes))


def cmd_accounts_link(args: argparse.Namespace, settings: Settings) -> int:
    creds = read_tokens(args.tokens_file, datetime.now(UTC)) if args.tokens_file else None
    vault = TokenVault.from_settings(settings)
    with _connect(settings) as conn:
        acc = registry.link_account(conn, vault, args.tenant, args.influencer, args.platform,
                                    args.external_id, handle=args.handle,
                                    poll_interval=args.interval, credentials=creds)
    print(acc.id)
    return 0


def cmd_accounts_tokens(args: argparse.Namespace, settings: Settings) -> int:
    creds = read_tokens(args.tokens_file, datetime.now(UTC))
    vault = TokenVault.from_settings(settings)
    with _connect(settings) as conn:
        if registry.get_account(conn, args.account, args.tenant) is None:
            msg = f"no platform account {args.account!r} in tenant {args.tenant!r}"
            raise CommandError(msg)
        registry.store_credentials(conn, vault, args.account, creds)
    print(f"stored new tokens for account {args.account}")
    return 0


def _status(action: str) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        with _connect(settings) as conn:
            if action == "pause":
                registry.pause_account(conn, args.tenant, args.account)
            elif action == "resume":
                registry.resume_account(conn, args.tenant, args.account)
            else:
                registry.unlink_account(conn, args.tenant, args.account)
        done = {"pause": "paused", "resume": "resumed", "unlink": "unlinked"}[action]
        print(f"{done} account {args.account}")
        return 0

    return run


def cmd_accounts_list(args: argparse.Namespace, settings: Settings) -> int:
    with _connect(settings) as conn:
        accounts = registry.list_accounts(conn, args.tenant, influencer_id=args.influencer)
        states = registry.poll_states(conn, [a.id for a in accounts])
    if not accounts:
        print(f"no accounts in tenant {args.tenant!r}")
    for acc in accounts:
        state = states.get(acc.id)
        last = (state.last_success_at.strftime("%Y-%m-%d %H:%M:%S UTC")
                if state and state.last_success_at else "never")
        error = f"  last error: {state.last_error}" if state and state.consecutive_failures else ""
        print(f"{acc.id}  {acc.platform:<9} {acc.handle or acc.external_id:<24} {acc.status:<6} "
              f"every {format_duration(acc.poll_interval)}  last polled: {last}{error}")
    return 0


def cmd_tokens_rotate(args: argparse.Namespace, settings: Settings) -> int:
    vault = TokenVault.from_settings(settings)
    with _connect(settings) as conn:
        count = rotate(conn, vault, tenant_id=args.tenant)
    print(f"re-sealed {count} credentials with key {vault.key_id}")
    return 0


# --- sources --------------------------------------------------------------------------------


def cmd_sources_run(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.sources.runner import run_worker, run_workers

    if args.workers > 1:
        argv = ["sources", "run", "--threads", str(args.threads)]
        if args.tenant:
            argv += ["--tenant", args.tenant]
        return int(run_workers(args.workers, argv))
    return int(run_worker(settings, threads=args.threads, tenant_id=args.tenant))


# --- parsers --------------------------------------------------------------------------------


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tenant(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", default=DEFAULT_TENANT,
                   help=f"tenant id (default {DEFAULT_TENANT!r}; created on first use by add)")


def register(commands: Any) -> None:
    """Add ``influencers``, ``accounts``, ``tokens`` and ``sources`` to the CLI."""
    p: argparse.ArgumentParser
    inf = commands.add_parser(
        "influencers", help="the influencer registry: add, list, remove",
        description="Influencers of a tenant. Changes reach running pollers within seconds.")
    sub = inf.add_subparsers(dest="influencers_command", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="add an influencer; prints its id")
    p.add_argument("name")
    p.add_argument("--tag", action="append", help="a tag (repeat for several)")
    p.add_argument("--metadata", metavar="JSON", help="a JSON object of free-form metadata")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_influencers_add))
    p = sub.add_parser("list", help="influencers and their accounts")
    p.add_argument("--tag", help="only influencers with this tag")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_influencers_list))
    p = sub.add_parser("remove", help="remove an influencer with its accounts and tokens")
    p.add_argument("influencer", help="influencer id")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_influencers_remove))

    acc = commands.add_parser(
        "accounts", help="platform accounts: link, pause, resume, unlink, list",
        description="Platform accounts of influencers. A linked, active account is polled; "
        "pausing or unlinking stops its polling within seconds, with no restart.")
    sub = acc.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "link", help="link a platform account to an influencer; prints the account id",
        description="Link an account. Its OAuth tokens are read as JSON from --tokens-file "
        "(or standard input with `--tokens-file -`), never from the command line, and are "
        "stored encrypted. JSON keys: access_token, refresh_token, expires_in or expires_at, "
        "scope.")
    p.add_argument("influencer", help="influencer id")
    p.add_argument("platform", choices=[x.value for x in Platform])
    p.add_argument("external_id", help="the account's id on the platform")
    p.add_argument("--handle", help="the account's handle, for display")
    p.add_argument("--interval", type=_duration, metavar="DURATION",
                   help="base poll interval, e.g. 30s or 5m (default 5m)")
    p.add_argument("--tokens-file", metavar="PATH", help="token JSON file, or - for stdin")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_accounts_link))
    for action, text in (("pause", "stop polling an account (keeps it and its tokens)"),
                         ("resume", "poll a paused account again"),
                         ("unlink", "remove an account and its tokens")):
        p = sub.add_parser(action, help=text)
        p.add_argument("account", help="account id")
        _tenant(p)
        p.set_defaults(handler=_guard(_status(action)))
    p = sub.add_parser(
        "tokens", help="replace an account's OAuth tokens (after a new authorization)",
        description="Store new tokens for a linked account, read as JSON from --tokens-file "
        "(or standard input with `--tokens-file -`); the pollers use them at the next request.")
    p.add_argument("account", help="account id")
    p.add_argument("--tokens-file", metavar="PATH", required=True,
                   help="token JSON file, or - for stdin")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_accounts_tokens))
    p = sub.add_parser("list", help="accounts with their poll state")
    p.add_argument("--influencer", help="only this influencer's accounts")
    _tenant(p)
    p.set_defaults(handler=_guard(cmd_accounts_list))

    tok = commands.add_parser("tokens", help="the token vault")
    sub = tok.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "rotate", help="re-seal every stored token with the first key of TOKEN_KEYS",
        description="After putting a new key first in CREATORPULSE_TOKEN_KEYS, re-seal the "
        "stored tokens with it; then the old key can be removed.")
    p.add_argument("--tenant", help="only this tenant's accounts (default: every tenant)")
    p.set_defaults(handler=_guard(cmd_tokens_rotate))

    src = commands.add_parser("sources", help="run the platform pollers")
    sub = src.add_subparsers(dest="sources_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "run", help="poll the registered accounts and publish to Kafka until SIGTERM",
        description="Poll every active account of the registry on its cadence and publish "
        "observations to Kafka. Several workers (here or on other machines) share the accounts "
        "through leases in Redis: each account is polled by exactly one live worker, and the "
        "accounts of a worker that dies move to the others within CREATORPULSE_LEASE_TTL. "
        "SIGTERM or Ctrl-C stops cleanly: running polls end, leases are released, Kafka is "
        "flushed.")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=int, default=8,
                   help="polls running at once in each worker (default 8)")
    p.add_argument("--tenant", help="poll only this tenant's accounts (default: all)")
    p.set_defaults(handler=_guard(cmd_sources_run))
