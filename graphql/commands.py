"""``creatorpulse api``: serve the GraphQL API, mint development tokens, print the schema."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from urllib.parse import urlsplit

from creatorpulse.settings import Settings, parse_duration


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from creatorpulse.graphql.app import create_app
    from creatorpulse.graphql.auth import AuthConfigError
    from creatorpulse.tokens import VaultError

    url = urlsplit(settings.api_url)
    host = args.host or url.hostname or "127.0.0.1"
    port = args.port or url.port or (443 if url.scheme == "https" else 80)
    try:
        app = create_app(settings, live=_live_hub(settings))
    except (AuthConfigError, VaultError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ide = "" if settings.environment == "production" else " (GraphiQL in a browser)"
    print(f"GraphQL API on http://{host}:{port}/graphql{ide}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                **UVICORN_OPTIONS)
    return 0


UVICORN_OPTIONS: dict[str, object] = {
    # No access log: a request line holds the query string, and GraphiQL links carry headers
    # (a token) there. The app counts requests on /metrics instead.
    "access_log": False,
    # No permessage-deflate: live updates are small JSON messages, and compressing each one
    # for each subscriber's own stream costs more server CPU than the bytes it saves.
    "ws_per_message_deflate": False,
}


def _live_hub(settings: Settings) -> object | None:
    """The live hub of graphql/live.py (aggregates consumer), when that module exists."""
    import importlib

    try:
        live = importlib.import_module("creatorpulse.graphql.live")
    except ModuleNotFoundError as exc:
        if exc.name != "creatorpulse.graphql.live":
            raise
        return None
    factory = getattr(live, "create_hub", None)
    return factory(settings) if factory is not None else None


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.graphql.auth import AuthConfigError, Role, mint

    try:
        role = Role.parse(args.role)
        ttl = parse_duration(args.ttl) if args.ttl else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ttl is not None and ttl <= timedelta(0):
        print("error: --ttl must be positive", file=sys.stderr)
        return 1
    try:
        token = mint(settings, subject=args.subject, tenant_id=args.tenant, role=role, ttl=ttl)
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


EXAMPLE_QUERY = """query Dashboard($id: ID!) {
  influencer(id: $id) {
    name
    accounts { platform handle status lastSuccessAt nextPollAt lastError }
    engagementRate(window: "24h", formula: BY_FOLLOWERS) { rate numerator denominator }
  }
  leaderboard(metric: "likes", window: "1h", first: 5) { rank gain influencer { name } }
}"""


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """A token, a GraphiQL link that carries it, and example operations for the demo."""
    import json
    from urllib.parse import urlencode

    import psycopg

    from creatorpulse.graphql.auth import AuthConfigError, Role, mint
    from creatorpulse.graphql.schema import build_schema

    tenant, influencer = args.tenant, None
    try:
        with psycopg.connect(settings.database_dsn.reveal(), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT tenant_id, min(id) FROM influencers "
                "WHERE %s::text IS NULL OR tenant_id = %s "
                "GROUP BY tenant_id ORDER BY count(*) DESC, tenant_id LIMIT 1",
                (tenant, tenant)).fetchone()
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    if row is not None:
        tenant, influencer = row
    if tenant is None:
        print("error: no influencers yet; add one (mutation addInfluencer) or start the sources",
              file=sys.stderr)
        return 1
    try:
        token = mint(settings, subject="demo", tenant_id=tenant, role=Role.ADMIN,
                     ttl=timedelta(hours=12))
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    url = f"{settings.api_url}/graphql"
    variables = json.dumps({"id": influencer})
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    link = f"{url}?" + urlencode({"query": EXAMPLE_QUERY, "variables": variables,
                                  "headers": headers})
    print(f"GraphQL API: {url}  (tenant {tenant}, admin token valid 12 h)\n")
    print(f"Token:\n  {token}\n")
    print(f"GraphiQL with the token and an example query (development only):\n  {link}\n")
    body = json.dumps({"query": EXAMPLE_QUERY, "variables": {"id": influencer}})
    print("The same query with curl:")
    print(f"  curl -s {url} -H 'Authorization: Bearer {token}' "
          f"-H 'Content-Type: application/json' -d '{body}'\n")
    schema = build_schema(settings, production=False)
    subscription = schema._schema.subscription_type
    if subscription is not None:
        print("Subscriptions (graphql-transport-ws on the same URL; the token goes in "
              "connection_init as {\"authorization\": \"Bearer <token>\"}, GraphiQL sends its "
              "headers there):")
        for name, field in subscription.fields.items():
            arguments = ", ".join(f"{a}: {t.type}" for a, t in field.args.items())
            print(f"  subscription {{ {name}({arguments}) {{ ... }} }}")
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from creatorpulse.graphql.schema import build_schema, sdl

    sys.stdout.write(sdl(build_schema(settings, production=False)))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = commands.add_parser(
        "api",
        help="the GraphQL API: serve it, mint development tokens, print the schema",
        description="The GraphQL API (Strawberry on Starlette): queries, mutations and "
        "subscriptions at /graphql, the REST routes, /healthz, /readyz and /metrics.",
    )
    actions = api.add_subparsers(dest="api_command", required=True, metavar="ACTION")
    p = actions.add_parser("serve", help="serve the API on CREATORPULSE_API_URL's port")
    p.add_argument("--host", help="interface to listen on (default: the API URL's host)")
    p.add_argument("--port", type=int, help="port (default: the API URL's port)")
    p.set_defaults(handler=cmd_serve)
    p = actions.add_parser(
        "token",
        help="print a signed bearer token (development and tests)",
        description="Mint a JWT for the API, signed with CREATORPULSE_JWT_SECRET (or the "
        "development key). Use it as 'Authorization: Bearer <token>', or as "
        "{\"authorization\": \"Bearer <token>\"} in a WebSocket connection_init payload.",
    )
    p.add_argument("--tenant", default="demo", help="tenant id (default: demo)")
    p.add_argument("--role", default="viewer", help="viewer, editor or admin (default: viewer)")
    p.add_argument("--subject", default="developer", help="the token's sub (default: developer)")
    p.add_argument("--ttl", help="lifetime such as 30m or 8h (default: CREATORPULSE_JWT_TTL)")
    p.set_defaults(handler=cmd_token)
    p = actions.add_parser(
        "demo", help="print an admin token, a GraphiQL link carrying it, and example operations")
    p.add_argument("--tenant", help="tenant id (default: the one with the most influencers)")
    p.set_defaults(handler=cmd_demo)
    p = actions.add_parser("schema", help="print the schema (SDL), as in graphql/schema.graphql")
    p.set_defaults(handler=cmd_schema)
