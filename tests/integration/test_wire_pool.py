"""WirePool against a real socket server on loopback: connections kept alive and reused, an
idle connection the server closed replaced transparently, a silent server timed out."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from creatorpulse.sources.wire import WirePool, WireTimeout

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """Accepts connections; ``answer(n, request)`` says what to send back (None: say nothing)."""

    def __init__(self, answer: Callable[[int, bytes], bytes | None], *,
                 close_after: int | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._answer, self._close_after = answer, close_after
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        served = 0
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                self.requests.append(head)
                answer = self._answer(len(self.requests), head)
                if answer is None:
                    continue
                conn.sendall(answer)
                served += 1
                if self._close_after is not None and served >= self._close_after:
                    return  # close the kept-alive connection, as idle servers do

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pool() -> Iterator[WirePool]:
    p = WirePool()
    yield p
    p.close()


def test_connections_are_kept_alive_and_reused(pool: WirePool) -> None:
    server = Server(lambda n, _: OK)
    try:
        for _ in range(3):
            got = pool.request("GET", "http", "127.0.0.1", server.port, "/x?a=1",
                               [("Accept", "application/json")], timeout=5)
            assert (got.status, got.body) == (200, b"{}")
        assert server.connections == 1
        assert server.requests[0].startswith(b"GET /x?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    finally:
        server.close()


def test_an_idle_connection_the_server_closed_is_replaced(pool: WirePool) -> None:
    server = Server(lambda n, _: OK, close_after=1)
    try:
        for _ in range(3):
            assert pool.request("GET", "http", "127.0.0.1", server.port, "/", [],
                                timeout=5).status == 200
        assert server.connections == 3
    finally:
        server.close()


def test_a_silent_server_is_a_timeout(pool: WirePool) -> None:
    server = Server(lambda n, _: None)
    try:
        with pytest.raises(WireTimeout):
            pool.request("GET", "http", "127.0.0.1", server.port, "/", [], timeout=0.3)
    finally:
        server.close()
