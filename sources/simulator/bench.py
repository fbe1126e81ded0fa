"""A rough throughput figure: ``python -m creatorpulse.sources.simulator.bench``.

Serves all five platforms for ``--accounts`` accounts in this process (one event loop, one core)
and drives them from ``--clients`` other processes, each a keep-alive connection sending a mix of
account and content requests for random accounts; prints requests per second and latencies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import time
from urllib.parse import urlencode, urlsplit

from creatorpulse.sources.simulator.clock import RealClock
from creatorpulse.sources.simulator.config import SimConfig
from creatorpulse.sources.simulator.server import Simulators, build


def _requests(urls: dict[str, str], accounts: dict[str, list[dict[str, str]]],
              rng: random.Random) -> tuple[str, str, str, bytes | None, dict[str, str]]:
    platform = rng.choice(sorted(urls))
    acc = rng.choice(accounts[platform])
    token, ident = acc["access_token"], acc["id"]
    auth = {"Authorization": f"Bearer {token}"}
    if platform in ("instagram", "facebook"):
        edge = rng.choice(["", "/media" if platform == "instagram" else "/posts"])
        stamp = "timestamp" if platform == "instagram" else "created_time"
        fields = "id,followers_count" if not edge else f"id,{stamp}"
        q = urlencode({"fields": fields, "limit": 25, "access_token": token})
        return platform, "GET", f"/v25.0/{ident}{edge}?{q}", None, {}
    if platform == "youtube":
        if rng.random() < 0.5:
            return platform, "GET", "/youtube/v3/channels?part=statistics&mine=true", None, auth
        q = urlencode({"part": "contentDetails", "playlistId": "UU" + ident[2:],
                       "maxResults": 50})
        return platform, "GET", f"/youtube/v3/playlistItems?{q}", None, auth
    if platform == "tiktok":
        if rng.random() < 0.5:
            return platform, "GET", "/v2/user/info/?fields=open_id,follower_count", None, auth
        body = json.dumps({"max_count": 20}).encode()
        return platform, "POST", "/v2/video/list/?fields=id,like_count,view_count", body, {
            **auth, "Content-Type": "application/json"}
    if rng.random() < 0.5:
        return platform, "GET", f"/2/users/{ident}?user.fields=public_metrics", None, auth
    return (platform, "GET", f"/2/users/{ident}/tweets?max_results=100&tweet.fields="
            "public_metrics", None, auth)


def _client(urls: dict[str, str], accounts: dict[str, list[dict[str, str]]], seconds: float,
            seed: int, out: multiprocessing.Queue) -> None:
    rng = random.Random(seed)  # noqa: S311 - a load mix, not a secret
    conns = {p: http.client.HTTPConnection(urlsplit(u).hostname, urlsplit(u).port, timeout=30)
             for p, u in urls.items()}
    latencies, errors, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        platform, method, path, body, headers = _requests(urls, accounts, rng)
        started = time.perf_counter()
        conns[platform].request(method, path, body=body, headers=headers)
        response = conns[platform].getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status >= 400
    out.put((latencies, errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    config = SimConfig(accounts=args.accounts, meta_buc_limit=10**9, meta_app_limit=10**9,
                       youtube_quota=10**9, tiktok_limit=10**9, x_limit=10**9)
    started = time.monotonic()
    sims = Simulators.start(build(config, RealClock()))
    setup = time.monotonic() - started
    accounts = {p: [app.account_row(i) for i in range(args.accounts)]
                for p, app in sims.apps.items()}
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(sims.urls, accounts, args.seconds,
                                                           n, out)) for n in range(args.clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    sims.stop()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    print(f"{args.accounts} accounts per platform, started in {setup:.1f}s; "
          f"{len(latencies)} requests in {args.seconds:.0f}s from {args.clients} clients: "
          f"{len(latencies) / args.seconds:.0f} requests/s, p50 "
          f"{latencies[len(latencies) // 2] * 1000:.1f} ms, p99 "
          f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, {errors} errors")


if __name__ == "__main__":
    main()
