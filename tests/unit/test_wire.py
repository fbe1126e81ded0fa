"""The platform reads' HTTP/1.1 framing: requests out, answers in, from bytes alone."""

from __future__ import annotations

import io

import pytest

from creatorpulse.sources.wire import WireError, encode_request, read_reply


def reply(raw: bytes, method: str = "GET"):  # type: ignore[no-untyped-def]
    return read_reply(io.BytesIO(raw), method)


def test_a_request_has_its_host_headers_and_body_length() -> None:
    raw = encode_request("POST", "/v2/video/list/?fields=id", "open.example.com",
                         [("Content-Type", "application/json")], b'{"a":1}')
    assert raw == (b"POST /v2/video/list/?fields=id HTTP/1.1\r\nHost: open.example.com\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
    assert encode_request("GET", "/x", "h:8080", [], None).endswith(b"Host: h:8080\r\n\r\n")


def test_an_answer_with_a_length_leaves_the_next_one_in_the_stream() -> None:
    stream = io.BytesIO(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"X-App-Usage: {\"call_count\":5}\r\nContent-Length: 2\r\n\r\n{}"
                        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                        b"Content-Length: 0\r\n\r\n")
    first, second = read_reply(stream), read_reply(stream)
    assert (first.status, first.body, first.keep_alive) == (200, b"{}", True)
    assert first.headers["x-app-usage"] == '{"call_count":5}'
    assert (second.status, second.headers["retry-after"], second.body) == (429, "7", b"")


def test_chunked_answers_are_joined_and_trailers_skipped() -> None:
    got = reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert got.body == b'{"a":1}' and got.keep_alive


def test_repeated_headers_are_joined_and_close_ends_the_connection() -> None:
    got = reply(b"HTTP/1.1 200 OK\r\nVary: a\r\nVary: b\r\nConnection: close\r\n"
                b"Content-Length: 1\r\n\r\nx")
    assert got.headers["vary"] == "a, b" and not got.keep_alive


def test_an_answer_without_length_runs_to_the_close() -> None:
    got = reply(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    assert (got.body, got.keep_alive) == (b"all of it", False)


def test_no_body_for_head_204_and_304() -> None:
    assert reply(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD").body == b""
    assert reply(b"HTTP/1.1 204 No Content\r\n\r\n").body == b""


def test_a_closed_connection_before_the_answer_is_a_reset() -> None:
    with pytest.raises(ConnectionResetError):
        reply(b"")


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 abc\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
])
def test_what_is_not_a_well_formed_answer_is_a_wire_error(raw: bytes) -> None:
    with pytest.raises(WireError):
        reply(raw)
