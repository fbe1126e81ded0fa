"""Webhook signing (checked against HMACs computed here) and deliveries, with a fake transport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from creatorpulse.sources.simulator import signing
from creatorpulse.sources.simulator.clock import ManualClock
from creatorpulse.sources.simulator.config import Client, SimConfig
from creatorpulse.sources.simulator.server import build
from creatorpulse.sources.simulator.webhooks import WebhookSender

T0 = 1_790_000_000.0
SECRET = "s3cr3t-for-tests"
BODY = b'{"object":"instagram","entry":[{"id":"1","time":2}]}'


def test_meta_signatures_match_hmac() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signing.meta_signature_256(SECRET, BODY) == "sha256=" + expected
    legacy = hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert signing.meta_signature_sha1(SECRET, BODY) == "sha1=" + legacy


def test_websub_signature_is_hex_sha1() -> None:
    assert signing.websub_signature("hub-secret", b"<feed/>") == "sha1=" + hmac.new(
        b"hub-secret", b"<feed/>", hashlib.sha1).hexdigest()


def test_tiktok_signature_signs_timestamp_dot_body() -> None:
    header = signing.tiktok_signature(SECRET, 1633174587, BODY)
    parts = dict(item.split("=", 1) for item in header.split(","))
    assert parts["t"] == "1633174587"
    assert parts["s"] == hmac.new(SECRET.encode(), b"1633174587." + BODY,
                                  hashlib.sha256).hexdigest()


def test_x_signature_and_crc_are_base64_sha256() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    assert signing.x_signature(SECRET, BODY) == "sha256=" + base64.b64encode(digest).decode()
    crc = hmac.new(SECRET.encode(), b"token-123", hashlib.sha256).digest()
    assert signing.x_crc_response(SECRET, "token-123") == "sha256=" + base64.b64encode(
        crc).decode()


class FakeReceiver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes, dict[str, str]]] = []

    def __call__(self, method, url, body=None, headers=None, timeout=5.0):
        if method == "GET":  # a hub's verification of intent: echo the challenge
            query = parse_qs(urlsplit(url).query)
            return 200, query.get("hub.challenge", [""])[0].encode()
        self.calls.append((method, url, body or b"", dict(headers or {})))
        return 200, b""


@pytest.fixture
def world():
    receiver = FakeReceiver()
    clients = {p: Client(f"app-{p}", f"secret-{p}")
               for p in ("instagram", "facebook", "youtube", "tiktok", "x")}
    config = replace(SimConfig(accounts=10), clients=clients,
                     webhooks_url="http://receiver.test")
    built = build(config, ManualClock(T0), sender=WebhookSender(receiver))
    return built, receiver


def send(built, platform: str, **body):
    client = TestClient(built.apps[platform].starlette())
    account = client.get("/_sim/accounts").json()["accounts"][3]
    r = client.post("/_sim/webhooks", json={"account": account["id"], **body})
    assert r.status_code == 200
    return client, account, r.json()["deliveries"]


def test_instagram_delivery_is_signed_and_redelivered_unchanged(world) -> None:
    built, receiver = world
    client, account, (delivery,) = send(built, "instagram", event="comments")
    method, url, body, headers = receiver.calls[0]
    assert (method, url) == ("POST", "http://receiver.test/webhooks/instagram")
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(
        b"secret-instagram", body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["object"] == "instagram" and payload["entry"][0]["id"] == account["id"]
    change = payload["entry"][0]["changes"][0]
    assert change["field"] == "comments" and change["value"]["media"]["id"]
    assert isinstance(payload["entry"][0]["time"], int)
    r = client.post("/_sim/webhooks/redeliver", json={"delivery_id": delivery["delivery_id"],
                                                      "times": 20})
    assert len(r.json()["attempts"]) == 21
    assert len(receiver.calls) == 21
    assert {c[2] for c in receiver.calls} == {body}
    assert {c[3]["X-Delivery-Id"] for c in receiver.calls} == {delivery["delivery_id"]}


def test_facebook_feed_change(world) -> None:
    built, receiver = world
    send(built, "facebook", item="reaction")
    _, _, body, headers = receiver.calls[0]
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    assert json.loads(body)["object"] == "page"
    assert value["item"] == "reaction" and value["verb"] == "add"
    assert isinstance(value["created_time"], int)
    assert headers["X-Hub-Signature-256"] == signing.meta_signature_256("secret-facebook", body)


def test_tiktok_delivery_signs_with_the_client_secret(world) -> None:
    built, receiver = world
    send(built, "tiktok", event="authorization.removed", reason=1)
    _, _url, body, headers = receiver.calls[0]
    t, s = (item.split("=", 1)[1] for item in headers["TikTok-Signature"].split(","))
    assert s == hmac.new(b"secret-tiktok", t.encode() + b"." + body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["client_key"] == "app-tiktok" and payload["event"] == "authorization.removed"
    assert json.loads(payload["content"]) == {"reason": 1}
    assert isinstance(payload["create_time"], int)


def test_x_account_activity_delivery(world) -> None:
    built, receiver = world
    _, account, _ = send(built, "x", event="favorite_events")
    _, _, body, headers = receiver.calls[0]
    digest = hmac.new(b"secret-x", body, hashlib.sha256).digest()
    assert headers["x-twitter-webhooks-signature"] == "sha256=" + base64.b64encode(
        digest).decode()
    payload = json.loads(body)
    assert payload["for_user_id"] == account["id"]
    event = payload["favorite_events"][0]
    assert event["favorited_status"]["user"]["id_str"] == account["id"]
    assert event["created_at"].endswith(" +0000 2026")


def test_youtube_hub_pushes_only_to_verified_subscribers(world) -> None:
    built, receiver = world
    client, account, nothing = send(built, "youtube", event="video")
    assert nothing == [] and receiver.calls == []
    topic = f"https://www.youtube.com/xml/feeds/videos.xml?channel_id={account['id']}"
    r = client.post("/subscribe", data={
        "hub.mode": "subscribe", "hub.callback": "http://receiver.test/webhooks/youtube",
        "hub.topic": topic, "hub.secret": "hub-secret", "hub.verify": "sync"})
    assert r.status_code == 204
    client.post("/_sim/webhooks", json={"account": account["id"], "event": "video"})
    _, url, body, headers = receiver.calls[0]
    assert url == "http://receiver.test/webhooks/youtube"
    assert headers["Content-Type"] == "application/atom+xml"
    assert headers["X-Hub-Signature"] == "sha1=" + hmac.new(b"hub-secret", body,
                                                            hashlib.sha1).hexdigest()
    ns = {"a": "http://www.w3.org/2005/Atom", "yt": "http://www.youtube.com/xml/schemas/2015"}
    entry = ET.fromstring(body).find("a:entry", ns)
    assert entry is not None
    assert entry.findtext("yt:channelId", namespaces=ns) == account["id"]
    video = entry.findtext("yt:videoId", namespaces=ns)
    client.post("/_sim/webhooks", json={"account": account["id"], "event": "deleted",
                                        "content_id": video})
    tomb = ET.fromstring(receiver.calls[1][2])
    deleted = tomb.find("{http://purl.org/atompub/tombstones/1.0}deleted-entry")
    assert deleted is not None and deleted.get("ref") == f"yt:video:{video}"


def test_new_posts_send_their_webhooks(world) -> None:
    built, receiver = world
    app = built.apps["tiktok"]
    sent = app.emit_new_content(T0, T0 + 2 * 86400)
    assert sent == len(receiver.calls) > 0
    events = {json.loads(c[2])["event"] for c in receiver.calls}
    assert events == {"video.publish.completed"}


def test_two_events_in_the_same_second_are_two_deliveries(world) -> None:
    built, receiver = world
    client, account, (first,) = send(built, "tiktok")
    second = client.post("/_sim/webhooks", json={"account": account["id"]}).json()["deliveries"]
    assert second[0]["delivery_id"] != first["delivery_id"]
    assert len(receiver.calls) == 2
