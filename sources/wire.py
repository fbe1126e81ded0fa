"""A small HTTP/1.1 keep-alive client for the platform reads: a pool of connections per host.

A poll is a few small GETs (and TikTok's POSTs) whose answers are JSON; urllib3 and http.client
spent most of a poll's CPU on them (http.client parses headers through the ``email`` package).
This client does only what those reads need: a request line and headers out, a status line,
headers and a body (``Content-Length``, chunked, or up to the close) back, connections kept
alive and reused, TLS with certificate checks through the standard ``ssl`` module.

A connection that was reused and fails before any byte of the answer arrived (the server closed
it while idle) is replaced and the request sent once more; any other failure is a
:class:`WireError` (or :class:`WireTimeout`) that names no URL, for Meta's carry the token.
Thread-safe: each request holds a connection of its own.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 65536
MAX_HEADERS = 200


class WireError(OSError):
    """The request could not be made or its answer could not be read."""


class WireTimeout(WireError):
    """No answer within the timeout."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    keep_alive: bool


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise WireError("a line of the answer is too long")
    return line


def read_reply(reader: BinaryIO, method: str = "GET") -> Reply:
    """Read one answer from ``reader``; :class:`WireError` when it is not HTTP/1.x."""
    status_line = _line(reader)
    if not status_line:
        raise ConnectionResetError("the connection closed before the answer")
    version, _, rest = status_line.partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise WireError("the answer is not HTTP/1.x")
    try:
        status = int(rest[:3])
    except ValueError:
        raise WireError("the answer has no status code") from None
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise WireError("a header of the answer has no ':'")
        key, text = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    else:
        raise WireError("the answer has too many headers")
    keep_alive = (headers.get("connection", "").lower() != "close"
                  and version == b"HTTP/1.1")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Reply(status, headers, b"", keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Reply(status, headers, _chunked(reader), keep_alive)
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise WireError("the answer's Content-Length is not a number") from None
        body = reader.read(size)
        if len(body) != size:
            raise WireError("the connection closed in the middle of the answer")
        return Reply(status, headers, body, keep_alive)
    return Reply(status, headers, reader.read(), False)  # delimited by the close


def _chunked(reader: BinaryIO) -> bytes:
    parts = []
    while True:
        size_line = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise WireError("a chunk of the answer has no size") from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) != size:
            raise WireError("the connection closed in the middle of a chunk")
        parts.append(chunk)
        reader.read(2)  # the CRLF after the chunk


def encode_request(method: str, target: str, host: str,
                   headers: Iterable[tuple[str, str]], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class _Connection:
    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.timeout = timeout

    def set_timeout(self, timeout: float | None) -> None:
        if timeout != self.timeout:  # a system call each time otherwise
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class WirePool:
    """Keep-alive connections to each (scheme, host, port), at most ``maxsize`` idle each."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, maxsize: int = 32) -> None:
        self._tls = tls or ssl.create_default_context()
        self._maxsize = maxsize
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def request(self, method: str, scheme: str, host: str, port: int | None, target: str,
                headers: Iterable[tuple[str, str]], body: bytes | None = None,
                timeout: float | None = None) -> Reply:
        port = port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
        data = encode_request(method, target, host if default else f"{host}:{port}",
                              list(headers), body)
        for attempt in (0, 1):
            conn, reused = self._take(key, timeout)
            try:
                conn.sock.sendall(data)
                reply = read_reply(conn.reader, method)
            except TimeoutError:
                conn.close()
                raise WireTimeout("no answer in time") from None
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                conn.close()
                if reused and attempt == 0:
                    continue  # the server closed the idle connection: once more, a new one
                raise WireError("the connection was closed") from None
            except OSError as exc:
                conn.close()
                if isinstance(exc, WireError):
                    raise
                raise WireError(type(exc).__name__) from None
            if reply.keep_alive:
                self._give(key, conn)
            else:
                conn.close()
            return reply
        raise WireError("the connection was closed")  # not reached

    def _take(self, key: tuple[str, str, int], timeout: float | None) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            conn = idle.pop() if idle else None
        if conn is not None:
            conn.set_timeout(timeout)
            return conn, True
        scheme, host, port = key
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            raise WireTimeout("no connection in time") from None
        except OSError as exc:
            msg = f"cannot connect ({type(exc).__name__})"
            raise WireError(msg) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                msg = f"TLS failed ({type(exc).__name__})"
                raise WireError(msg) from None
        return _Connection(sock, timeout), False

    def _give(self, key: tuple[str, str, int], conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._maxsize:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    def __del__(self) -> None:  # a pool dropped unclosed still closes its sockets
        self.close()
