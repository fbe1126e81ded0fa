"""The simulators as real servers on loopback: ephemeral ports, handshakes, signed deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from dataclasses import replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from creatorpulse.sources.simulator.clock import ManualClock
from creatorpulse.sources.simulator.config import Client, SimConfig
from creatorpulse.sources.simulator.server import SimulatorError, Simulators, build
from creatorpulse.sources.simulator.world import PLATFORMS
from tests.waiting import wait_for

T0 = 1_790_000_000.0
SECRETS = {p: f"it-secret-{p}" for p in PLATFORMS}
VERIFY = "verify-me"


class Receiver:
    """A webhook receiver that answers handshakes the way a correct one must and keeps POSTs."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Message, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if "crc_token" in query:
                    digest = hmac.new(SECRETS["x"].encode(), query["crc_token"].encode(),
                                      hashlib.sha256).digest()
                    body = json.dumps({"response_token": "sha256=" + base64.b64encode(
                        digest).decode()}).encode()
                elif query.get("hub.verify_token", VERIFY) == VERIFY and "hub.challenge" in query:
                    body = query["hub.challenge"].encode()
                else:
                    self.send_response(403)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, self.headers, body))  # case-insensitive
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sims(receiver):
    config = replace(SimConfig(accounts=200), webhooks_url=receiver.url,
                     clients={p: Client(f"it-app-{p}", s) for p, s in SECRETS.items()})
    running = Simulators.start(build(config, ManualClock(T0)), ports=0)
    yield running
    running.stop()


def first_account(url: str) -> dict:
    return requests.get(f"{url}/_sim/accounts", params={"limit": 1}, timeout=5).json()[
        "accounts"][0]


def test_each_platform_serves_on_its_own_ephemeral_port(sims) -> None:
    assert set(sims.urls) == set(PLATFORMS)
    assert len(set(sims.urls.values())) == 5
    x = first_account(sims.urls["x"])
    r = requests.get(f"{sims.urls['x']}/2/users/{x['id']}/tweets", timeout=5,
                     headers={"Authorization": f"Bearer {x['access_token']}"})
    assert r.status_code == 200 and r.json()["meta"]["result_count"] == 10
    tt = first_account(sims.urls["tiktok"])
    r = requests.post(f"{sims.urls['tiktok']}/v2/video/list/", params={"fields": "id,view_count"},
                      json={"max_count": 20}, timeout=5,
                      headers={"Authorization": f"Bearer {tt['access_token']}"})
    assert r.json()["error"]["code"] == "ok" and len(r.json()["data"]["videos"]) > 0
    assert requests.get(f"{sims.urls['youtube']}/_sim/stats", timeout=5).json()["platform"] == \
        "youtube"


def test_meta_subscription_verifies_the_callback_then_delivers_signed(sims, receiver) -> None:
    url = sims.urls["instagram"]
    app_token = f"it-app-instagram|{SECRETS['instagram']}"
    r = requests.post(f"{url}/v25.0/it-app-instagram/subscriptions", timeout=10, data={
        "object": "instagram", "callback_url": f"{receiver.url}/meta", "fields": "comments",
        "verify_token": VERIFY, "access_token": app_token})
    assert r.json() == {"success": True}
    refused = requests.post(f"{url}/v25.0/it-app-instagram/subscriptions", timeout=10, data={
        "object": "instagram", "callback_url": f"{receiver.url}/meta", "fields": "comments",
        "verify_token": "wrong", "access_token": app_token})
    assert refused.json()["error"]["code"] == 2200
    account = first_account(url)
    before = len(receiver.posts)
    requests.post(f"{url}/_sim/webhooks", json={"account": account["id"], "event": "comments"},
                  timeout=10)
    path, headers, body = wait_for(
        lambda: receiver.posts[before:] and receiver.posts[before], 10, "the webhook", 0.05)
    assert path == "/meta"
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(
        SECRETS["instagram"].encode(), body, hashlib.sha256).hexdigest()


def test_websub_hub_verifies_intent_and_signs_with_the_hub_secret(sims, receiver) -> None:
    url = sims.urls["youtube"]
    channel = first_account(url)["id"]
    topic = f"https://www.youtube.com/xml/feeds/videos.xml?channel_id={channel}"
    r = requests.post(f"{url}/subscribe", timeout=10, data={
        "hub.mode": "subscribe", "hub.callback": f"{receiver.url}/websub", "hub.topic": topic,
        "hub.secret": "hub-secret", "hub.lease_seconds": "3600"})
    assert r.status_code == 202
    wait_for(lambda: requests.get(f"{url}/_sim/websub", timeout=5).json()["subscriptions"], 10,
             "the WebSub subscription", 0.05)
    before = len(receiver.posts)
    requests.post(f"{url}/_sim/webhooks", json={"account": channel, "event": "video"},
                  timeout=10)
    path, headers, body = wait_for(
        lambda: receiver.posts[before:] and receiver.posts[before], 10, "the webhook", 0.05)
    assert path == "/websub" and b"<yt:channelId>" + channel.encode() in body
    assert headers["X-Hub-Signature"] == "sha1=" + hmac.new(b"hub-secret", body,
                                                            hashlib.sha1).hexdigest()
    bad = requests.post(f"{url}/subscribe", timeout=10, data={
        "hub.mode": "subscribe", "hub.callback": f"{receiver.url}/websub",
        "hub.topic": "https://example.com/other"})
    assert bad.status_code == 400


def test_x_webhook_registration_runs_the_crc(sims, receiver) -> None:
    url = sims.urls["x"]
    basic = base64.b64encode(f"it-app-x:{SECRETS['x']}".encode()).decode()
    bearer = requests.post(f"{url}/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"}, timeout=5).json()[
        "access_token"]
    r = requests.post(f"{url}/2/webhooks", json={"url": f"{receiver.url}/x"}, timeout=10,
                      headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 200 and r.json()["data"]["valid"] is True
    account = first_account(url)
    before = len(receiver.posts)
    requests.post(f"{url}/_sim/webhooks", json={"account": account["id"]}, timeout=10)
    path, headers, body = wait_for(
        lambda: receiver.posts[before:] and receiver.posts[before], 10, "the webhook", 0.05)
    assert path == "/x"
    digest = hmac.new(SECRETS["x"].encode(), body, hashlib.sha256).digest()
    assert headers["x-twitter-webhooks-signature"] == "sha256=" + base64.b64encode(
        digest).decode()


def test_a_delivery_replayed_20_times_arrives_21_times_unchanged(sims, receiver) -> None:
    url = sims.urls["tiktok"]
    account = first_account(url)
    before = len(receiver.posts)
    sent = requests.post(f"{url}/_sim/webhooks", json={"account": account["id"]},
                         timeout=10).json()["deliveries"][0]
    replay = requests.post(f"{url}/_sim/webhooks/redeliver", timeout=30,
                           json={"delivery_id": sent["delivery_id"], "times": 20}).json()
    assert replay["attempts"] == [200] * 21
    got = receiver.posts[before:]
    assert len(got) == 21 and {p[2] for p in got} == {got[0][2]}
    assert {p[1]["X-Delivery-Id"] for p in got} == {sent["delivery_id"]}
    assert all(p[0] == "/webhooks/tiktok" for p in got)


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        built = build(SimConfig(accounts=5), ManualClock(T0), ("x",))
        with pytest.raises(SimulatorError, match="could not start"):
            Simulators.start(built, {"x": f"http://127.0.0.1:{port}"})


def test_stopping_frees_the_port() -> None:
    running = Simulators.start(build(SimConfig(accounts=5), ManualClock(T0), ("tiktok",)))
    port = int(running.urls["tiktok"].rsplit(":", 1)[1])
    running.stop()
    assert not running.alive()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
