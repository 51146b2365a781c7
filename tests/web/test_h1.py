"""The HTTP/1.1 parser and serializer of the gateway's fast path (sans-IO)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trouper.web._h1 import H1Error, H1Limits, H1Parser, Response, serialize

PIPELINED = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing: One\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
)


def summary(parser: H1Parser, chunks: list[bytes]) -> list[tuple[object, ...]]:
    out = []
    for chunk in chunks:
        for r in parser.feed(chunk):
            out.append(
                (r.method, r.path, r.query_string, r.body, r.keep_alive, r.header("x-thing"))
            )
    return out


def test_pipelined_requests_come_out_in_order() -> None:
    assert summary(H1Parser(), [PIPELINED]) == [
        ("GET", "/a", b"x=1", b"", True, "One"),
        ("POST", "/b", b"", b"hello", True, None),
        ("GET", "/c", b"", b"", False, None),
    ]


@given(st.lists(st.integers(min_value=1, max_value=len(PIPELINED) - 1), max_size=12))
def test_any_split_of_the_bytes_parses_the_same(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [PIPELINED[a:b] for a, b in zip([0, *points], [*points, len(PIPELINED)], strict=True)]
    assert summary(H1Parser(), chunks) == summary(H1Parser(), [PIPELINED])


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431, "head over"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "more than 100 headers"),
        (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413, "body over"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed"),
    ],
)
def test_bad_or_oversized_requests_name_the_problem(data: bytes, status: int, words: str) -> None:
    with pytest.raises(H1Error) as info:
        H1Parser(H1Limits()).feed(data)
    assert info.value.status == status and words in str(info.value)


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives() -> None:
    parser = H1Parser(H1Limits(max_body=10))
    parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    with pytest.raises(H1Error, match="body over 10"):
        parser.feed(b"8\r\nworld!!!\r\n0\r\n\r\n")


def test_an_upgrade_stops_the_parser_and_keeps_the_rest() -> None:
    parser = H1Parser()
    head = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    [request] = parser.feed(head + b"\x81\x05frame")
    assert request.upgrade and parser.upgraded is request
    assert parser.rest == b"\x81\x05frame"


def test_serialize_writes_length_and_close() -> None:
    data = serialize(Response("hi", 201, [("x-a", "b")]), keep_alive=False)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"x-a: b" in head and b"content-length: 2" in head and b"connection: close" in head
    assert body == b"hi"
    assert serialize(Response("hi"), keep_alive=True, head=True).endswith(b"\r\n\r\n")


def test_no_length_on_204_and_304_and_paths_are_decoded() -> None:
    for status in (204, 304):
        data = serialize(Response(b"", status, [("etag", '"1"')]), keep_alive=True)
        assert b"content-length" not in data and data.endswith(b'etag: "1"\r\n\r\n')
    (request,) = H1Parser().feed(b"GET /a%20b/%2e%2e?x=%20 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (request.path, request.query_string) == ("/a b/..", b"x=%20")
