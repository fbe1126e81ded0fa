"""A real third-party client, ``gql``, runs a query over HTTP and a subscription over
graphql-transport-ws against the running app (uvicorn on loopback, real Kafka/PostgreSQL/Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

from creatorpulse.settings import Settings
from tests.integration.live_server import Live, aggregate, running_api
from tests.waiting import until, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live(settings: Settings, admin: AdminClient, unique: str) -> Iterator[Live]:
    with running_api(settings, admin, unique) as api:
        yield api


def http_client(live: Live, token: str) -> Client:
    transport = RequestsHTTPTransport(url=f"{live.http_url}/graphql", timeout=10,
                                      headers={"Authorization": f"Bearer {token}"})
    return Client(transport=transport, fetch_schema_from_transport=False)


def test_gql_http_query(live: Live) -> None:
    t = live.tenants
    query = gql("""query People($first: Int!) {
        influencers(first: $first) { totalCount edges { node { id name } } } }""")
    with http_client(live, live.token(t.a)) as session:
        result = session.execute(GraphQLRequest(query, variable_values={"first": 10}))
    people = result["influencers"]
    assert people["totalCount"] == 2
    assert sorted(e["node"]["id"] for e in people["edges"]) == sorted([t.a1, t.a2])

    with http_client(live, live.token(t.b)) as session:
        result = session.execute(GraphQLRequest(query, variable_values={"first": 10}))
    assert [e["node"]["id"] for e in result["influencers"]["edges"]] == [t.b1]


def test_gql_http_query_sees_no_other_tenants_influencer(live: Live) -> None:
    query = gql("query One($id: ID!) { influencer(id: $id) { id name } }")
    with http_client(live, live.token(live.tenants.a)) as session:
        try:
            result = session.execute(
                GraphQLRequest(query, variable_values={"id": live.tenants.b1}))
        except TransportQueryError as exc:  # NOT_FOUND as an error, or a null answer
            assert "not" in str(exc).lower()
        else:
            assert result["influencer"] is None


async def test_gql_websocket_subscription(live: Live) -> None:
    t = live.tenants
    transport = WebsocketsTransport(
        url=f"{live.ws_url}/graphql", init_payload={"token": live.token(t.a)},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    subscription = gql("""subscription Updates($ids: [ID!]) {
        metricUpdates(influencerIds: $ids, metrics: ["likes"]) {
          influencerId metric window gain valueAtStart valueAtEnd provenance } }""")
    received = []
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:

        async def listen() -> None:
            request = GraphQLRequest(subscription, variable_values={"ids": [t.a1]})
            async for result in session.subscribe(request):
                received.append(result["metricUpdates"])
                if len(received) == 2:
                    return

        task = asyncio.ensure_future(listen())
        # A client that stopped ends the wait at once; its result raises what stopped it.
        await until(lambda: live.subscribers() == 1 or task.done(), 20, "the subscription")
        if task.done():
            task.result()
        live.produce(aggregate(t.a1, gain=3), aggregate(t.a2, gain=4),
                     aggregate(t.a1, metric="views"), aggregate(t.a1, gain=-2))
        await asyncio.wait_for(task, 20)
    assert received == [
        {"influencerId": t.a1, "metric": "likes", "window": "1h", "gain": 3,
         "valueAtStart": 100, "valueAtEnd": 103, "provenance": "MEASURED"},
        {"influencerId": t.a1, "metric": "likes", "window": "1h", "gain": -2,
         "valueAtStart": 100, "valueAtEnd": 98, "provenance": "MEASURED"},
    ]
    wait_for(lambda: live.subscribers() == 0, 10, "the subscription to end", 0.02)
