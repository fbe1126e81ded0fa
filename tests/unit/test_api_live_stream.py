"""``/metrics/stream`` in-process: request parsing, authentication, close codes, shared encoding."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from creatorpulse.graphql.auth import Role, mint
from creatorpulse.graphql.live import LiveHub, MetricKey, TenantDirectory
from creatorpulse.graphql.stream import (
    StreamRequestError,
    _Encoded,
    aggregate_json,
    metrics_stream_route,
    parse_request,
)
from creatorpulse.settings import Settings
from tests.unit.test_api_live import Boards, FakeTenants, agg
from tests.waiting import until

SETTINGS = Settings.from_env({}, dotenv=None)


def token(tenant: str = "tenant-a", **kwargs: Any) -> str:
    return mint(SETTINGS, subject="alice", tenant_id=tenant, role=Role.VIEWER, **kwargs)


def test_parse_request_builds_the_tenants_key() -> None:
    key = parse_request({"token": "x", "influencer_ids": ["b", "a"], "metrics": ["likes"],
                         "window": "1h"}, "t1")
    assert key == MetricKey.of("t1", influencer_ids=["a", "b"], metrics=["likes"], window="1h")
    assert parse_request({}, "t1") == MetricKey("t1")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ([], "JSON object"),
        ({"tenant_id": "other"}, "unknown fields"),
        ({"metrics": "likes"}, "metrics"),
        ({"platforms": [""]}, "platforms"),
        ({"influencer_ids": ["x"] * 101}, "influencer_ids"),
        ({"window": 3}, "window"),
    ],
)
def test_parse_request_rejects_bad_messages(message: Any, error: str) -> None:
    with pytest.raises(StreamRequestError, match=error):
        parse_request(message, "t1")


def test_each_payload_is_encoded_once() -> None:
    encode = _Encoded(size=2)
    batch = (agg(gain=4),)
    text = encode(batch)
    assert encode(batch) is text
    assert encode.encodings == 1
    assert json.loads(text) == {"type": "aggregates", "data": [aggregate_json(batch[0])]}
    assert json.loads(text)["data"][0]["window_end"] == "2026-11-23T12:00:00+00:00"


class App:
    """The route on a bare Starlette app, its hub fed directly through the test client's loop."""

    def __init__(self) -> None:
        self.hub = LiveHub(tenants=TenantDirectory(FakeTenants()), leaderboard=Boards())
        route = metrics_stream_route(SETTINGS, lambda ws: self.hub,
                                     init_timeout=timedelta(seconds=0.3))
        self.client = TestClient(Starlette(routes=[route]))

    def publish(self, *aggregates: Any) -> None:
        self.client.portal.call(self.hub.publish, list(aggregates))

    def wait_subscribers(self, n: int) -> None:
        self.client.portal.call(until, lambda: self.hub.subscriber_count() == n, 2,
                                f"{n} subscribers", 0.005)


@pytest.fixture
def app() -> Any:
    a = App()
    with a.client:
        yield a


def test_stream_sends_the_tenants_fresh_aggregates(app: App) -> None:
    with app.client.websocket_connect("/metrics/stream") as ws:
        ws.send_text(json.dumps({"token": token(), "metrics": ["likes"]}))
        assert ws.receive_json() == {"type": "subscribed"}
        app.publish(agg("inf-b1"), agg("inf-a1", metric="views"), agg("inf-a2", gain=9))
        got = ws.receive_json()
    assert got["type"] == "aggregates"
    assert [(d["influencer_id"], d["gain"]) for d in got["data"]] == [("inf-a2", 9)]


def test_stream_accepts_the_handshakes_bearer_header(app: App) -> None:
    headers = {"Authorization": f"Bearer {token('tenant-b')}"}
    with app.client.websocket_connect("/metrics/stream", headers=headers) as ws:
        ws.send_text("{}")
        assert ws.receive_json() == {"type": "subscribed"}
        app.publish(agg("inf-a1"), agg("inf-b1", gain=2))
        assert [d["influencer_id"] for d in ws.receive_json()["data"]] == ["inf-b1"]


def test_clients_with_the_same_filters_share_one_encoding(app: App) -> None:
    with app.client.websocket_connect("/metrics/stream") as one, \
            app.client.websocket_connect("/metrics/stream") as two:
        for ws in (one, two):
            ws.send_text(json.dumps({"token": token(), "window": "1h"}))
            assert ws.receive_json() == {"type": "subscribed"}
        app.wait_subscribers(2)
        app.publish(agg(gain=1))
        assert one.receive_text() == two.receive_text()
    assert app.hub.stats.metric_payloads == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", 4400),
        (json.dumps({"metrics": ["likes"]}), 4403),
        (json.dumps({"token": "forged"}), 4403),
        (json.dumps({"token": token(), "metrics": "likes"}), 4400),
        (json.dumps({"token": token(), "influencer_ids": ["inf-b1"]}), 4404),
    ],
)
def test_stream_close_codes(app: App, message: str, code: int) -> None:
    with app.client.websocket_connect("/metrics/stream") as ws:
        ws.send_text(message)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == code


def test_stream_without_a_first_message_times_out(app: App) -> None:
    with app.client.websocket_connect("/metrics/stream") as ws, \
            pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4408
