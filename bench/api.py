"""API benchmark: GraphQL query throughput and latency, and live fan-out delivery latency.

In one run, against the running PostgreSQL, Redis and Kafka (the settings' addresses):

1. seeds a tenant of its own (influencers, accounts, minute buckets, window values) and a Kafka
   topic of its own for the aggregates;
2. starts the API under uvicorn, one worker, on a loopback port, in a child process (its rate
   limits raised so that the benchmark measures the server, not the budget), with a plain
   Starlette JSON endpoint beside it serving the same three answers from the same store and
   cache;
3. for three representative queries (a metrics series, a leaderboard, the influencers
   connection) measures requests/s and p50/p99 latency at concurrency 32, cached (the same
   question repeated) and uncached (every request a new question), then the cached p99 at a
   fixed 300 requests/s, and the plain endpoint's requests/s at concurrency 32;
4. opens 1,000 concurrent ``graphql-transport-ws`` subscribers and measures the delay from
   producing a fresh aggregate to each subscriber receiving it;
5. writes ``bench/results/api.json`` and prints the figures and ratios.

Run from the repository root (``--help`` lists the knobs)::

    .venv/bin/python bench/api.py
    .venv/bin/python bench/api.py --duration 3 --subscribers 200 --rounds 5   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from creatorpulse.aggregate import Aggregate  # noqa: E402
from creatorpulse.graphql.live import percentile  # noqa: E402
from creatorpulse.observation import Provenance  # noqa: E402
from creatorpulse.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api.json"
METRICS = ("likes", "views", "comments", "followers")
PLATFORMS = ("instagram", "youtube", "tiktok")
WINDOWS = ("1h", "24h")
SERIES_HOURS = 24
# The server's own limits, raised for the benchmark: it measures throughput, not the budget.
SERVER_ENV = {
    "CREATORPULSE_API_RATE_BUDGET": "1000000000",
    "CREATORPULSE_API_RATE_REFILL": "1000000000",
}


def say(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


# --- seeding ------------------------------------------------------------------------------


@dataclass
class Seed:
    tenant_id: str
    influencers: list[str]
    now: datetime
    series_influencers: list[str] = field(default_factory=list)


def seed(dsn: str, n_influencers: int, n_series: int) -> Seed:
    """A tenant of the benchmark's own, with enough data for every query to do real work."""
    import psycopg

    tag = uuid.uuid4().hex[:8]
    tenant = f"bench-{tag}"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ids = [f"bench-{tag}-{i:04d}" for i in range(n_influencers)]
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", [tenant, "benchmark"])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO influencers (id, tenant_id, name, tags) VALUES (%s, %s, %s, %s)",
                [(i, tenant, f"Creator {n:04d}", ["bench", f"group{n % 5}"])
                 for n, i in enumerate(ids)])
            cur.executemany(
                "INSERT INTO platform_accounts (tenant_id, influencer_id, platform, external_id,"
                " handle) VALUES (%s, %s, %s, %s, %s)",
                [(tenant, i, p, f"{i}-{p}", f"@{i}") for i in ids for p in PLATFORMS])
            with cur.copy("COPY rolling_windows (influencer_id, platform, metric, window_name,"
                          " window_end, window_start, gain, value_at_start, value_at_end,"
                          " provenance) FROM STDIN") as copy:
                for n, i in enumerate(ids):
                    for p in (*PLATFORMS, "all"):
                        for m in METRICS:
                            for w, size in (("1h", 1), ("24h", 24)):
                                gain = (n * 37 + len(p) * 11 + len(m)) % 1000 + size
                                copy.write_row((i, p, m, w, now, now - timedelta(hours=size),
                                                gain, 10_000, 10_000 + gain, "measured"))
            series = ids[:n_series]
            with cur.copy("COPY metric_buckets_1m (influencer_id, platform, metric,"
                          " bucket_start, gain, observations, provenance) FROM STDIN") as copy:
                for n, i in enumerate(series):
                    for p in (*PLATFORMS, "all"):
                        for m in ("likes", "views"):
                            for minute in range(SERIES_HOURS * 60):
                                start = now - timedelta(minutes=SERIES_HOURS * 60 - minute)
                                copy.write_row((i, p, m, start, (minute * 7 + n) % 50, 1,
                                                "measured"))
        conn.commit()
    # Settle the database before anything is timed: autovacuum's analysis of the fresh rows
    # and a checkpoint's writes would otherwise land in the middle of a measurement.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) metric_buckets_1m, rolling_windows, influencers, "
                     "platform_accounts")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    return Seed(tenant, ids, now, series)


def unseed(dsn: str, tenant_id: str, influencers: Sequence[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM metric_buckets_1m WHERE influencer_id = ANY(%s)",
                     [list(influencers)])
        conn.execute("DELETE FROM rolling_windows WHERE influencer_id = ANY(%s)",
                     [list(influencers)])
        conn.execute("DELETE FROM tenants WHERE id = %s", [tenant_id])


# --- the server (child process) -------------------------------------------------------------


def plain_routes(settings: Settings) -> list[Any]:
    """The same three answers as plain Starlette JSON endpoints: same token check, same service
    functions, same pool and same Redis cache (their own keys), no GraphQL."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from creatorpulse.graphql import influencers as inf
    from creatorpulse.graphql import metrics as met
    from creatorpulse.graphql.auth import AuthError, authenticate
    from creatorpulse.graphql.cache import cache_key, influencer_dep, tenant_dep
    from creatorpulse.graphql.queries import (
        _leader_decode,
        _leader_encode,
        _series_decode,
        _series_encode,
    )

    def tenant_of(request: Request) -> str | None:
        try:
            principal = authenticate(request.headers.get("authorization"), settings)
        except AuthError:
            return None
        return principal.tenant_id if principal else None

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def series(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        if tenant is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        services = request.app.state.services
        influencer = request.query_params["influencer_id"]
        since = datetime.fromisoformat(request.query_params["from"])
        until = datetime.fromisoformat(request.query_params["to"])
        params = {"influencer": influencer, "from": since.isoformat(), "to": until.isoformat()}

        async def compute() -> list[Any]:
            async with services.pool.connection() as conn:
                return await met.series(conn, tenant, influencer, platforms=None,
                                        metrics=["likes", "views"], start=since, end=until,
                                        interval=met.Interval.HOUR)

        rows = await services.cache.get_or_compute(cache_key(tenant, "plain-series", params),
                                                   [influencer_dep(influencer)], compute,
                                                   _series_encode, _series_decode)
        return JSONResponse([
            {"platform": r.platform, "metric": r.metric, "total": r.total,
             "buckets": [{"start": b.start.isoformat(), "gain": b.gain} for b in r.buckets]}
            for r in rows if r.platform != met.ALL_PLATFORMS])

    async def leaderboard(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        if tenant is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        services = request.app.state.services
        metric = request.query_params["metric"]
        window = request.query_params.get("window", "24h")
        first = int(request.query_params.get("first", "10"))
        params = {"metric": metric, "window": window, "first": first}

        async def compute() -> list[Any]:
            async with services.pool.connection() as conn:
                return await met.leaderboard(conn, tenant, metric=metric, window=window,
                                             platform=None, first=first)

        rows = await services.cache.get_or_compute(
            cache_key(tenant, "plain-leaderboard", params), [tenant_dep(tenant)], compute,
            _leader_encode, _leader_decode)
        return JSONResponse([{"rank": r.rank, "influencerId": r.influencer_id, "gain": r.gain,
                              "valueAtEnd": r.value_at_end} for r in rows])

    async def influencers(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        if tenant is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        services = request.app.state.services
        first = int(request.query_params.get("first", "20"))
        f = inf.InfluencerFilter(tag=request.query_params.get("tag"))
        async with services.pool.connection() as conn:
            page = await inf.page(conn, tenant, f, inf.Order.NAME_ASC, first, None)
        return JSONResponse({"totalCount": page.total, "edges": [
            {"node": {"id": r.id, "name": r.name, "tags": list(r.tags)}} for r in page.rows]})

    return [Route("/plain/health", health), Route("/plain/metrics", series),
            Route("/plain/leaderboard", leaderboard), Route("/plain/influencers", influencers)]


def serve(fd: int, topic: str, profile: str | None = None) -> None:
    """The child process: the API app plus the plain JSON routes, on an inherited socket."""
    import logging

    import uvicorn

    from creatorpulse.graphql.app import create_app
    from creatorpulse.graphql.commands import UVICORN_OPTIONS
    from creatorpulse.graphql.live import create_hub

    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env(os.environ)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = create_app(settings, live=create_hub(settings, topic=topic))
    # Before the app's own routes, so /graphql and the plain routes share one process.
    app.router.routes[:0] = plain_routes(settings)
    # As `creatorpulse api serve` runs it: its uvicorn options, one worker.
    config = uvicorn.Config(app, fd=fd, log_level="warning", lifespan="on", backlog=2048,
                            **UVICORN_OPTIONS)
    if profile:
        import cProfile
        import signal

        profiler = cProfile.Profile()
        # uvicorn re-raises SIGTERM after its shutdown: the benchmark asks for the dump first.
        signal.signal(signal.SIGUSR2, lambda *_: profiler.dump_stats(profile))
        profiler.enable()
    uvicorn.Server(config).run()


class Server:
    """The API in a child process on a loopback socket bound here (no port guessing)."""

    def __init__(self, topic: str, env: dict[str, str] | None = None,
                 profile: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        env = {**os.environ, **SERVER_ENV, **(env or {})}
        self.profile = profile
        if profile:
            Path(profile).unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-fd",
             str(self.sock.fileno()), "--topic", topic,
             *(["--serve-profile", profile] if profile else [])],
            pass_fds=[self.sock.fileno()], env=env, cwd=str(ROOT))

    def wait_ready(self, timeout: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"the API server exited with {self.proc.returncode}"
                raise RuntimeError(msg)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/plain/health",
                                            timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        msg = "the API server did not become ready"
        raise RuntimeError(msg)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system), whatever the load."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Server:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.profile:
            self.proc.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not Path(self.profile).exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


# --- a minimal HTTP/1.1 keep-alive client (the load generator must not be the bottleneck) -----


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body


def post(path: str, token: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def get(path: str, token: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> dict[str, float]:
        out = {"rps": round(self.rps, 1), "p50_ms": round(percentile(self.latencies_ms, 50), 2),
               "p99_ms": round(percentile(self.latencies_ms, 99), 2),
               "errors": self.errors, "requests": self.requests}
        if self.server_cpu_s is not None and self.requests:
            # Independent of other load on the machine: what one request costs the server.
            out["server_cpu_ms_per_request"] = round(self.server_cpu_s / self.requests * 1000, 3)
        return out


def check(status: int, body: bytes) -> bool:
    return status == 200 and b'"errors"' not in body[:200]


async def closed_loop(port: int, make: Callable[[int], bytes], concurrency: int,
                      duration: float, server: Server | None = None) -> LoadResult:
    """``concurrency`` clients, each sending its next request when the last one answered."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    stop_at = time.perf_counter() + duration

    async def client() -> None:
        nonlocal errors, counter
        conn = Connection(port)
        while time.perf_counter() < stop_at:
            counter += 1
            raw = make(counter)
            t0 = time.perf_counter()
            status, body = await conn.request(raw)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not check(status, body):
                errors += 1
        if conn.writer is not None:
            conn.writer.close()

    started = time.perf_counter()
    cpu = server.cpu_seconds() if server else 0.0
    await asyncio.gather(*(client() for _ in range(concurrency)))
    used = server.cpu_seconds() - cpu if server else None
    return LoadResult(len(latencies), errors, time.perf_counter() - started, latencies, used)


async def open_loop(port: int, make: Callable[[int], bytes], rate: float,
                    duration: float, connections: int = 32) -> LoadResult:
    """Requests sent at a fixed ``rate``; latency measured from each request's due time."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * duration)
    started = time.perf_counter()

    async def one(n: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status, body = await conn.request(make(n))
        finally:
            pool.put_nowait(conn)
        latencies.append((time.perf_counter() - due) * 1000)
        if not check(status, body):
            errors += 1

    tasks = []
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        conn = pool.get_nowait()
        if conn.writer is not None:
            conn.writer.close()
    return LoadResult(len(latencies), errors, time.perf_counter() - started, latencies)


# --- the three queries ----------------------------------------------------------------------

SERIES_QUERY = """query Series($id: ID!, $from: DateTime!, $to: DateTime!) {
  metrics(influencerId: $id, from: $from, to: $to, metrics: ["likes", "views"],
          interval: HOUR) { platform metric total buckets { start gain } } }"""
LEADERBOARD_QUERY = """query Board($metric: String!, $first: Int!) {
  leaderboard(metric: $metric, window: "24h", first: $first) {
    rank influencerId gain valueAtEnd } }"""
INFLUENCERS_QUERY = """query People($first: Int!, $tag: String) {
  influencers(first: $first, filter: {tag: $tag}) {
    totalCount edges { node { id name tags } } } }"""


@dataclass(frozen=True)
class Scenario:
    name: str
    graphql: dict[str, Any]
    plain: str


def scenarios(s: Seed) -> list[Scenario]:
    """The same three questions as GraphQL operations and as plain JSON requests."""
    influencer = s.series_influencers[0]
    since = (s.now - timedelta(hours=SERIES_HOURS)).isoformat()
    until = s.now.isoformat()
    series = {"query": SERIES_QUERY,
              "variables": {"id": influencer, "from": since, "to": until}}
    board = {"query": LEADERBOARD_QUERY, "variables": {"metric": "likes", "first": 10}}
    people = {"query": INFLUENCERS_QUERY, "variables": {"first": 20, "tag": "bench"}}
    return [
        Scenario("metrics_series", series,
                 f"/plain/metrics?influencer_id={influencer}&from={quote(since)}"
                 f"&to={quote(until)}"),
        Scenario("leaderboard", board, "/plain/leaderboard?metric=likes&window=24h&first=10"),
        Scenario("influencers", people, "/plain/influencers?first=20&tag=bench"),
    ]


# --- live fan-out -----------------------------------------------------------------------------

SUBSCRIPTION = """subscription Live($ids: [ID!]) {
  metricUpdates(influencerIds: $ids, metrics: ["likes"]) {
    influencerId metric window gain windowEnd } }"""


async def fanout(server: Server, tokens: Callable[[int], str], s: Seed, topic: str,
                 bootstrap: str, subscribers: int, keys: int, rounds: int, interval: float,
                 stream: bool = False) -> dict[str, Any]:
    """``subscribers`` graphql-transport-ws clients (or ``/metrics/stream`` clients with
    ``stream``) over ``keys`` distinct subscriptions, each client a user of its own."""
    from confluent_kafka import Producer
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = f"ws://127.0.0.1:{server.port}/{'metrics/stream' if stream else 'graphql'}"
    kind = "/metrics/stream" if stream else "graphql-transport-ws"
    targets = s.influencers[:keys]
    sent: dict[int, float] = {}
    delays: list[float] = []
    got_warm: set[int] = set()
    ready = 0
    gate = asyncio.Semaphore(64)

    sockets: list[Any] = []

    async def subscriber(n: int) -> None:
        nonlocal ready
        async with gate:
            ws = await connect(url, subprotocols=None if stream else ["graphql-transport-ws"],
                               max_queue=None, open_timeout=60, ping_interval=None)
            sockets.append(ws)
            token = tokens(n)
            if stream:
                await ws.send(json.dumps({"token": token, "influencer_ids": [targets[n % keys]],
                                          "metrics": ["likes"]}))
            else:
                await ws.send(json.dumps({"type": "connection_init",
                                          "payload": {"token": token}}))
            ack = json.loads(await ws.recv())
            if ack.get("type") not in ("connection_ack", "subscribed"):
                msg = f"subscriber {n}: {ack}"
                raise RuntimeError(msg)
            if not stream:
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                    "query": SUBSCRIPTION, "variables": {"ids": [targets[n % keys]]}}}))
        ready += 1
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:  # ends when the run closes the socket
                now = time.perf_counter()
                message = json.loads(raw)
                if stream and message.get("type") == "aggregates":
                    gains = [d["gain"] for d in message["data"]]
                elif message.get("type") == "next" and message["payload"].get("data"):
                    gains = [message["payload"]["data"]["metricUpdates"]["gain"]]
                else:
                    msg = f"subscriber {n}: {message}"
                    raise RuntimeError(msg)
                for gain in gains:
                    if gain < 0:
                        got_warm.add(n)
                    elif gain in sent:
                        delays.append((now - sent[gain]) * 1000)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "1"})

    def produce(gain: int) -> None:
        for influencer in targets:
            a = Aggregate(influencer, "instagram", "likes", "1h", s.now,
                          s.now - timedelta(hours=1), gain, 1000, 1000 + gain,
                          Provenance.MEASURED)
            producer.produce(topic, a.to_json(), key=a.key)
        producer.flush(10)

    say(f"fan-out: connecting {subscribers} {kind} subscribers ({keys} distinct subscriptions)")
    t_connect = time.perf_counter()
    tasks = [asyncio.create_task(subscriber(n)) for n in range(subscribers)]
    while ready < subscribers:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.sleep(0.1)
    connect_s = time.perf_counter() - t_connect
    say(f"fan-out: {subscribers} connected in {connect_s:.1f} s; waiting until each receives")
    warm = -1
    deadline = time.perf_counter() + 60
    while len(got_warm) < subscribers:
        if time.perf_counter() > deadline:
            msg = f"only {len(got_warm)} of {subscribers} subscribers received the warm-up"
            raise RuntimeError(msg)
        produce(warm)
        warm -= 1
        await asyncio.sleep(0.5)
    say(f"fan-out: all subscribed; {rounds} rounds of {keys} aggregates, every {interval} s")
    cpu = server.cpu_seconds()
    for r in range(1, rounds + 1):
        sent[r] = time.perf_counter()
        produce(r)
        await asyncio.sleep(interval)
        if r % 10 == 0:
            say(f"fan-out: round {r}/{rounds}, {len(delays)} deliveries so far")
    expected = rounds * subscribers
    deadline = time.perf_counter() + 30
    while len(delays) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    used = server.cpu_seconds() - cpu
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "protocol": kind,
        "server_cpu_ms_per_delivery": round(used / max(1, len(delays)) * 1000, 3),
        "subscribers": subscribers, "distinct_subscriptions": keys, "rounds": rounds,
        "deliveries": len(delays), "expected_deliveries": expected,
        "p50_ms": round(percentile(delays, 50), 1), "p99_ms": round(percentile(delays, 99), 1),
        "max_ms": round(max(delays), 1) if delays else None,
        "connect_seconds": round(connect_s, 1),
    }


# --- the run ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/api.py", description=__doc__.split("\n\n")[0],
        epilog="Needs the running stack (creatorpulse stack up) and a migrated database.")
    parser.add_argument("--duration", type=float, default=10,
                        help="seconds per throughput measurement (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients (default 32)")
    parser.add_argument("--rate", type=float, default=300,
                        help="fixed request rate for the cached p99 (default 300/s)")
    parser.add_argument("--influencers", type=int, default=200,
                        help="seeded influencers (default 200)")
    parser.add_argument("--subscribers", type=int, default=1000,
                        help="concurrent websocket subscribers (default 1000)")
    parser.add_argument("--keys", type=int, default=10,
                        help="distinct subscriptions among them (default 10)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="fresh aggregate rounds in the fan-out (default 20)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between rounds (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--skip-queries", action="store_true", help="only the fan-out")
    parser.add_argument("--skip-fanout", action="store_true", help="only the queries")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README table of the results file (--out) and exit")
    parser.add_argument("--profile-server", metavar="FILE",
                        help="write a cProfile of the (cached) API server to FILE")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--serve-profile", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def measure_queries(args: argparse.Namespace, server: Server, token: str, s: Seed,
                          *, cached: bool) -> dict[str, Any]:
    """Each query through GraphQL and through the plain endpoint, on one server."""
    label = "cached" if cached else "uncached"
    out: dict[str, Any] = {}
    for sc in scenarios(s):
        def gql(n: int, sc: Scenario = sc) -> bytes:
            return post("/graphql", token, sc.graphql)

        def plain(n: int, sc: Scenario = sc) -> bytes:
            return get(sc.plain, token)

        port = server.port
        await closed_loop(port, gql, 4, 1.0)  # warm the cache and the code paths
        await closed_loop(port, plain, 4, 1.0)
        say(f"{sc.name}: {label}, concurrency {args.concurrency}")
        results = {"graphql": await closed_loop(port, gql, args.concurrency, args.duration,
                                                server)}
        say(f"{sc.name}: {label}, plain JSON endpoint, concurrency {args.concurrency}")
        results["plain"] = await closed_loop(port, plain, args.concurrency, args.duration,
                                             server)
        if cached and results["graphql"].rps >= args.rate:
            say(f"{sc.name}: {label}, at {args.rate:.0f} requests/s")
            results["graphql_paced"] = await open_loop(port, gql, args.rate, args.duration)
        elif cached:
            # Below the rate even flat out: a fixed-rate run would only measure its queue.
            say(f"{sc.name}: {label}, {args.rate:.0f} requests/s is above what the server "
                "sustains; no fixed-rate run")
        out[sc.name] = {name: r.summary() for name, r in results.items()}
        for name, r in results.items():
            summary = r.summary()
            cpu = summary.get("server_cpu_ms_per_request")
            say(f"  {name:14s} {summary['rps']:8.1f} req/s  p50 {summary['p50_ms']:7.2f} ms  "
                f"p99 {summary['p99_ms']:7.2f} ms  errors {summary['errors']}"
                + (f"  server CPU {cpu:.2f} ms/request" if cpu is not None else ""))
    return out


def headline(cached: dict[str, Any], uncached: dict[str, Any], fan: dict[str, Any] | None,
             rate: float, fan_stream: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures the README quotes: for each, the worst of the three queries."""
    h: dict[str, Any] = {}
    if cached:
        paced = [q["graphql_paced"] for q in cached.values() if "graphql_paced" in q]
        if len(paced) == len(cached):
            h["cached_p99_ms"] = max(p["p99_ms"] for p in paced)
            h["cached_p99_ms_at_rps"] = rate
        else:
            # The rate was not sustained: the p99 at the rate the server did sustain.
            worst = min(cached.values(), key=lambda q: q["graphql"]["rps"])["graphql"]
            h["cached_p99_ms"] = worst["p99_ms"]
            h["cached_p99_ms_at_rps"] = worst["rps"]
            h["cached_rate_sustained"] = False
        h["cached_rps"] = min(q["graphql"]["rps"] for q in cached.values())
        h["cached_p99_ms_at_max_rps"] = max(q["graphql"]["p99_ms"] for q in cached.values())
        h["cached_server_cpu_ms_per_request"] = max(
            q["graphql"]["server_cpu_ms_per_request"] for q in cached.values())
        h["plain_server_cpu_ms_per_request"] = max(
            q["plain"]["server_cpu_ms_per_request"] for q in cached.values())
        h["plain_rps"] = min(q["plain"]["rps"] for q in cached.values())
        h["graphql_to_plain_rps_ratio"] = round(
            min(q["graphql"]["rps"] / q["plain"]["rps"] for q in cached.values()), 2)
    if uncached:
        h["uncached_p99_ms"] = max(q["graphql"]["p99_ms"] for q in uncached.values())
        h["uncached_rps"] = min(q["graphql"]["rps"] for q in uncached.values())
        h["plain_uncached_rps"] = min(q["plain"]["rps"] for q in uncached.values())
    if fan:
        h["fanout_subscribers"] = fan["subscribers"]
        h["fanout_p99_ms"] = fan["p99_ms"]
        h["fanout_server_cpu_ms_per_delivery"] = fan["server_cpu_ms_per_delivery"]
    if fan_stream:
        h["stream_fanout_p99_ms"] = fan_stream["p99_ms"]
        h["stream_fanout_server_cpu_ms_per_delivery"] = fan_stream["server_cpu_ms_per_delivery"]
    return h


async def run(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    from creatorpulse.graphql.auth import Role, mint

    settings = Settings.from_env(os.environ)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load_before = [round(x, 2) for x in os.getloadavg()]
    say(f"load average {load_before} on {os.cpu_count()} cores (other work skews the figures)")
    dsn = settings.database_dsn.reveal()
    say(f"seeding {args.influencers} influencers")
    s = seed(dsn, args.influencers, min(20, args.influencers))
    topic = f"bench.aggregates.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=4,
                                                replication_factor=1)]).values():
        future.result(30)
    token = mint(settings, subject="bench", tenant_id=s.tenant_id, role=Role.VIEWER,
                 ttl=timedelta(hours=2))

    def user_token(n: int) -> str:
        return mint(settings, subject=f"bench-{n}", tenant_id=s.tenant_id, role=Role.VIEWER,
                    ttl=timedelta(hours=2))

    cached: dict[str, Any] = {}
    uncached: dict[str, Any] = {}
    fan = fan_stream = None
    try:
        if not args.skip_queries:
            # A cache that forgets within a millisecond: every request misses and stores.
            with Server(topic, {"CREATORPULSE_API_CACHE_TTL": "1ms"}) as server:
                say(f"API without cache (uvicorn, one worker) on 127.0.0.1:{server.port}")
                uncached = await measure_queries(args, server, token, s, cached=False)
        with Server(topic, profile=args.profile_server) as server:
            say(f"API (uvicorn, one worker) on 127.0.0.1:{server.port}")
            if not args.skip_queries:
                cached = await measure_queries(args, server, token, s, cached=True)
            if not args.skip_fanout:
                fan = await fanout(server, user_token, s, topic, settings.kafka_bootstrap,
                                   args.subscribers, min(args.keys, len(s.influencers)),
                                   args.rounds, args.interval)
                # The same feed over /metrics/stream, whose encoding is shared per batch.
                fan_stream = await fanout(server, user_token, s, topic,
                                          settings.kafka_bootstrap,
                                          args.subscribers, min(args.keys, len(s.influencers)),
                                          args.rounds, args.interval, stream=True)
    finally:
        admin.delete_topics([topic])
        unseed(dsn, s.tenant_id, s.influencers)
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    result = {
        **headline(cached, uncached, fan, args.rate, fan_stream),
        "measured_at": measured_at,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform(),
                    "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"concurrency": args.concurrency, "duration_s": args.duration,
                     "rate": args.rate, "influencers": args.influencers},
        "queries": {"cached": cached, "uncached_cache_ttl_1ms": uncached},
        "fanout": fan,
        "fanout_metrics_stream": fan_stream,
    }
    result = merge_previous(result, args.out, queries=not args.skip_queries,
                            fanout=not args.skip_fanout, measured_at=measured_at)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    for key, value in headline(cached, uncached, fan, args.rate, fan_stream).items():
        print(f"  {key:28s} {value}")
    return 0


QUERY_KEYS = ("cached_", "plain_", "uncached_", "graphql_to_plain")
FANOUT_KEYS = ("fanout", "stream_fanout")


def merge_previous(result: dict[str, Any], path: Path, *, queries: bool, fanout: bool,
                   measured_at: str) -> dict[str, Any]:
    """``result`` with the parts this run skipped taken from the results file at ``path``, so
    a partial run (``--skip-queries`` or ``--skip-fanout``) never wipes the other part's
    figures; ``parts_measured_at`` says when each part was measured."""
    try:
        previous = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        previous = {}
    when = dict(previous.get("parts_measured_at") or {})
    merged = dict(result)
    for part, measured, prefixes, sections in (
            ("queries", queries, QUERY_KEYS, ("queries",)),
            ("fanout", fanout, FANOUT_KEYS, ("fanout", "fanout_metrics_stream"))):
        if measured:
            when[part] = measured_at
            continue
        for key, value in previous.items():
            if key.startswith(prefixes):
                merged[key] = value
        for section in sections:
            if section in previous:
                merged[section] = previous[section]
        when.setdefault(part, previous.get("measured_at"))
    merged["parts_measured_at"] = when
    return merged


def markdown(result: dict[str, Any]) -> str:
    """The README's table of a results file."""
    lines = ["| query | GraphQL cached | GraphQL uncached | plain JSON (cached) "
             "| server CPU per request: GraphQL / plain |", "|---|---|---|---|---|"]
    cached = result["queries"]["cached"]
    uncached = result["queries"]["uncached_cache_ttl_1ms"]

    def cell(q: dict[str, Any]) -> str:
        return f"{q['rps']:.0f} req/s, p50 {q['p50_ms']:.0f} ms, p99 {q['p99_ms']:.0f} ms"

    for name, q in cached.items():
        lines.append(
            f"| `{name}` | {cell(q['graphql'])} | {cell(uncached[name]['graphql'])} "
            f"| {cell(q['plain'])} | {q['graphql']['server_cpu_ms_per_request']:.1f} ms / "
            f"{q['plain']['server_cpu_ms_per_request']:.1f} ms |")
    fan = result["fanout"]
    load = result["machine"]["load_average_before"][0]
    lines += [
        "",
        f"Fan-out: {fan['subscribers']} subscribers over {fan['distinct_subscriptions']} "
        f"distinct subscriptions, {fan['rounds']} rounds: p50 {fan['p50_ms']:.0f} ms, "
        f"p99 {fan['p99_ms']:.0f} ms from producing the aggregate to the client reading it; "
        f"{fan['server_cpu_ms_per_delivery']:.2f} ms of server CPU per delivery.",
    ]
    stream = result.get("fanout_metrics_stream")
    if stream:
        lines.append(
            f"The same over `/metrics/stream` (one encoding per batch for all its clients): "
            f"p50 {stream['p50_ms']:.0f} ms, p99 {stream['p99_ms']:.0f} ms, "
            f"{stream['server_cpu_ms_per_delivery']:.2f} ms of server CPU per delivery.")
    lines.append(f"Measured {result['measured_at']} with a load average of {load:.1f} on "
                 f"{result['machine']['cpus']} cores.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    if args.serve_fd is not None:
        serve(args.serve_fd, args.topic, args.serve_profile)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

