"""Envelopes through FrameEncoder/FrameDecoder, with valid and hostile bytes."""

from __future__ import annotations

import random
import struct

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trouper._errors import (
    ConfigurationError,
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from trouper.protocols import (
    ENVELOPE_TYPES,
    HEADER_SIZE,
    Ask,
    Challenge,
    Credit,
    Envelope,
    ErrorDetail,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Gossip,
    GroupUpdate,
    Heartbeat,
    Hello,
    Member,
    RegistryUpdate,
    Reply,
    Spawn,
    SpawnResult,
    Stop,
    StreamCancel,
    StreamCredit,
    StreamEnd,
    StreamItem,
    StreamOpen,
    Tell,
    Terminated,
    Unwatch,
    Watch,
    Welcome,
    WireRef,
)

A = WireRef("node-a", "/user/greeter", 7)
B = WireRef("node-b", "/user/client", 2**64 - 1)
RAW = msgspec.Raw(msgspec.msgpack.encode({"name": "Ada", "n": [1, 2, 3]}))


def samples() -> list[Envelope]:
    return [
        Hello(1, "node-a", 3, b"n" * 16),
        Challenge(1, "node-b", 4, b"m" * 32),
        Welcome(b"p" * 32),
        Tell(A, "app:Greet", RAW),
        Tell(A, "app:Greet", RAW, sender=B),
        Ask(1, A, "app:Greet", RAW, sender=B, timeout=5.0),
        Reply(1, "builtins:str", msgspec.Raw(msgspec.msgpack.encode("Hi, Ada!"))),
        Failure(2, "ValueError", "boom", "Traceback...", "node-a", "/user/x", "remote", True),
        Watch(B, A),
        Unwatch(B, A),
        Terminated(A, "node-down"),
        StreamOpen(9, A, "app:Count", RAW, credit=16, sender=B),
        StreamItem(9, "builtins:int", msgspec.Raw(msgspec.msgpack.encode(3))),
        StreamCredit(9, 8),
        StreamEnd(9),
        StreamEnd(10, ErrorDetail("KeyError", "k", node="node-a", retryable=False)),
        StreamCancel(9, "consumer left"),
        Spawn(3, "app.actors:Greeter", RAW, name="greeter", mailbox_size=64),
        Spawn(4, "app.actors:Greeter", RAW),
        SpawnResult(3, A),
        Stop(5, A),
        Stop(6, A, kill=True),
        Credit(A, 512),
        Heartbeat(12, 1234.5),
        Gossip([Member("node-a", 1, ["tcp://10.0.0.1:7000", "quic://10.0.0.1:7001"], "up", 5)]),
        RegistryUpdate("node-a", {"greeter": A}, {"old": B}, snapshot=True),
        GroupUpdate("node-a", {"workers": [A, B]}, {"old": [B]}, snapshot=True),
        Goodbye("shutting down"),
        Goodbye("bad cookie", code="handshake-failed"),
    ]


def test_samples_cover_every_envelope_type() -> None:
    assert {type(env) for env in samples()} == ENVELOPE_TYPES


@pytest.mark.parametrize("env", samples(), ids=lambda env: type(env).__name__)
def test_each_envelope_round_trips_alone(env: Envelope) -> None:
    frame = FrameEncoder().encode([env])
    assert struct.unpack(">I", frame[:HEADER_SIZE])[0] == len(frame) - HEADER_SIZE
    assert FrameDecoder().feed(frame) == [env]


def test_batch_round_trip_and_payload_still_decodes() -> None:
    batch = samples() * 20
    decoder = FrameDecoder()
    out = decoder.feed(FrameEncoder().encode(batch))
    assert out == batch
    assert decoder.pending == 0
    tell = out[3]
    assert isinstance(tell, Tell)
    assert msgspec.msgpack.decode(tell.payload) == {"name": "Ada", "n": [1, 2, 3]}


def test_byte_by_byte() -> None:
    encoder = FrameEncoder()
    stream = b"".join(encoder.encode([env]) for env in samples())
    stream += encoder.encode(samples())
    decoder = FrameDecoder()
    out: list[Envelope] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
        assert decoder.pending <= i + 1
    assert out == samples() + samples()
    assert decoder.pending == 0


@pytest.mark.parametrize("seed", range(10))
def test_random_splits(seed: int) -> None:
    rng = random.Random(seed)
    encoder = FrameEncoder()
    expected: list[Envelope] = []
    stream = bytearray()
    for _ in range(30):
        batch = rng.sample(samples(), rng.randint(1, 6))
        expected += batch
        stream += encoder.encode(batch)
    decoder = FrameDecoder()
    out: list[Envelope] = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 7, 50, 300, 5000])
        chunk = stream[pos : pos + step]
        # Alternate bytes and bytearray: the zero-copy path is for bytes only.
        out += decoder.feed(bytes(chunk) if rng.random() < 0.5 else chunk)
        pos += step
    assert out == expected
    assert decoder.pending == 0


def test_payloads_survive_later_feeds_into_the_buffer() -> None:
    # Raw payloads must not point into the decoder's reusable buffer.
    encoder = FrameEncoder()
    frame = encoder.encode([Tell(A, "x", RAW)])
    decoder = FrameDecoder()
    first = decoder.feed(bytearray(frame[:-1])) + decoder.feed(bytearray(frame[-1:]))
    for _ in range(5):
        decoder.feed(
            bytearray(
                encoder.encode([Tell(B, "y", msgspec.Raw(msgspec.msgpack.encode(b"z" * 100)))])
            )
        )
    assert first == [Tell(A, "x", RAW)]


def test_encode_into_appends_frames() -> None:
    encoder = FrameEncoder()
    out = bytearray(b"prefix")
    n1 = encoder.encode_into([Heartbeat(1, 1.0)], out)
    n2 = encoder.encode_into(samples(), out)
    assert len(out) == 6 + n1 + n2
    assert FrameDecoder().feed(bytes(out[6:])) == [Heartbeat(1, 1.0), *samples()]


def test_encoder_enforces_max_frame_size_and_leaves_buffer_intact() -> None:
    encoder = FrameEncoder(max_frame_size=64)
    out = bytearray(b"keep")
    with pytest.raises(FrameTooLarge):
        encoder.encode_into([Tell(A, "x", msgspec.Raw(msgspec.msgpack.encode("z" * 100)))], out)
    assert out == b"keep"
    assert FrameDecoder(64).feed(encoder.encode([Heartbeat(1, 1.0)])) == [Heartbeat(1, 1.0)]


def test_encoder_rejects_non_envelopes_and_empty_batches() -> None:
    encoder = FrameEncoder()
    with pytest.raises(ValueError):
        encoder.encode([])
    with pytest.raises(TypeError):
        encoder.encode([A])  # type: ignore[list-item]


@pytest.mark.parametrize("size", [0, -1, 2**32])
def test_bad_max_frame_size(size: int) -> None:
    with pytest.raises(ConfigurationError):
        FrameDecoder(size)
    with pytest.raises(ConfigurationError):
        FrameEncoder(size)


def test_oversize_frame_rejected_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.feed(b"\x00\x00")
    with pytest.raises(RemoteProtocolError, match="1025-byte frame"):
        decoder.feed(b"\x04\x01")  # 1025 announced, no body sent
    assert decoder.poisoned


def test_oversize_frame_after_a_good_one_in_the_same_chunk() -> None:
    good = FrameEncoder().encode([Heartbeat(1, 1.0)])
    decoder = FrameDecoder(max_frame_size=100)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(good + struct.pack(">I", 101))


def test_decoder_errors_are_the_peers_and_encoder_errors_ours() -> None:
    """h11's split: what the peer sent is a RemoteProtocolError; what we were
    about to send is FrameTooLarge or a LocalProtocolError, never the peer's."""
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(b"\x00\x00\x00\x01\xc1")
    assert not issubclass(FrameTooLarge, RemoteProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)


def _tell(size: int) -> Tell:
    return Tell(A, "app:Blob", msgspec.Raw(msgspec.msgpack.encode(b"x" * size)))


def test_pack_splits_batches_at_the_frame_limit() -> None:
    """Two messages that each fit but not together go as two frames, each
    under the limit, in order; nothing is lost."""
    limit = 8 * 1024
    batch = [_tell(6 * 1024), Heartbeat(1, 1.0), _tell(6 * 1024), _tell(10)]
    out = bytearray()
    assert FrameEncoder(limit).pack(batch, out) == []
    sizes = []
    offset = 0
    while offset < len(out):
        (size,) = struct.unpack_from(">I", out, offset)
        sizes.append(size)
        offset += HEADER_SIZE + size
    assert len(sizes) == 2 and max(sizes) <= limit
    assert FrameDecoder(limit).feed(bytes(out)) == batch


def test_pack_sets_aside_a_message_that_can_never_fit() -> None:
    limit = 4096
    too_big = _tell(5000)
    batch = [Heartbeat(1, 1.0), too_big, Heartbeat(2, 2.0)]
    out = bytearray(b"keep")
    rejected = FrameEncoder(limit).pack(batch, out)
    assert [env for env, _ in rejected] == [too_big]
    assert isinstance(rejected[0][1], FrameTooLarge)
    assert "app:Blob" in str(rejected[0][1]) and "max_frame_size" in str(rejected[0][1])
    assert out[:4] == b"keep"
    assert FrameDecoder(limit).feed(bytes(out[4:])) == [Heartbeat(1, 1.0), Heartbeat(2, 2.0)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40),
    limit=st.integers(min_value=512, max_value=8192),
)
def test_pack_never_exceeds_the_limit_and_keeps_order(sizes: list[int], limit: int) -> None:
    batch = [_tell(n) for n in sizes]
    out = bytearray()
    rejected = FrameEncoder(limit).pack(batch, out)
    offset = 0
    while offset < len(out):
        (size,) = struct.unpack_from(">I", out, offset)
        assert 0 < size <= limit
        offset += HEADER_SIZE + size
    kept = [env for env in batch if all(env is not r for r, _ in rejected)]
    assert FrameDecoder(limit).feed(bytes(out)) == kept
    for env, error in rejected:
        assert isinstance(error, FrameTooLarge)
        assert len(FrameEncoder(2**31).encode([env])) - HEADER_SIZE > limit - 5


def test_zero_length_frame() -> None:
    with pytest.raises(ProtocolError, match="zero-length"):
        FrameDecoder().feed(b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    "body",
    [
        b"\x90",  # an empty batch
        b"\xc0",  # nil, not a list
        b"\x91\xc0",  # a list holding nil
        b"\x91\x91\x63",  # a Goodbye (tag 99) without its reason
        b"\x91\x91\x7f",  # tag 127: no such envelope
        b"\x91\x93\x01\x01",  # truncated Hello
        b"\x91\x95\x01\x01\xa1n\x02\xc4\x01x",  # Hello with a 1-byte nonce
        b"\x91\x93\x16\x09\x00",  # StreamCredit granting 0
        b"\x91\x93\x16\x09\xff",  # StreamCredit granting -1
        b"\xc1",  # never used msgpack byte
        b"\x91" * 100_000 + b"\xc0",  # absurd nesting
    ],
)
def test_garbage_bodies_raise_protocol_error(body: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(struct.pack(">I", len(body)) + body)


def test_deeply_nested_payload_is_a_protocol_error() -> None:
    body = b"\x91\x94\x0a\x93\xa1n\xa2/a\x01\xa1x" + b"\x91" * 1_000_000 + b"\xc0"
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame_size=2**24).feed(struct.pack(">I", len(body)) + body)


def test_poisoned_after_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x00")
    good = FrameEncoder().encode([Heartbeat(1, 1.0)])
    for _ in range(2):
        with pytest.raises(ProtocolError, match="earlier error"):
            decoder.feed(good)


def test_pending_counts_partial_frames() -> None:
    frame = FrameEncoder().encode(samples())
    decoder = FrameDecoder()
    assert decoder.feed(frame + frame[:10]) == samples()
    assert decoder.pending == 10
    assert decoder.feed(frame[10:]) == samples()
    assert decoder.pending == 0


# -- hostile input, generated --------------------------------------------------

FRAMES = [FrameEncoder().encode([env]) for env in samples()] + [FrameEncoder().encode(samples())]


def _feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> None:
    """Feed every chunk; only envelopes or ProtocolError may come out, and once
    an error happened every later feed must fail too."""
    failed = False
    for chunk in chunks:
        try:
            out = decoder.feed(chunk)
        except ProtocolError:
            failed = True
            continue
        assert not failed, "a poisoned decoder accepted more input"
        assert all(type(env) in ENVELOPE_TYPES for env in out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_only_raise_protocol_errors(chunks: list[bytes]) -> None:
    _feed_all(FrameDecoder(max_frame_size=4096), chunks)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=400))
def test_random_bodies_with_valid_headers(body: bytes) -> None:
    _feed_all(FrameDecoder(), [struct.pack(">I", len(body)) + body])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=st.sampled_from(FRAMES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "set", "cut", "insert", "drop"]),
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=4,
    ),
    splits=st.lists(st.integers(1, 64), max_size=10),
)
def test_mutated_frames_only_raise_protocol_errors(
    frame: bytes, edits: list[tuple[str, int, int]], splits: list[int]
) -> None:
    data = bytearray(frame)
    for op, pos, value in edits:
        if not data:
            break
        i = pos % len(data)
        if op == "flip":
            data[i] ^= 1 << (value % 8)
        elif op == "set":
            data[i] = value
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data.insert(i, value)
        else:
            del data[i]
    chunks = []
    rest = bytes(data)
    for size in splits:
        chunks.append(rest[:size])
        rest = rest[size:]
    chunks.append(rest)
    _feed_all(FrameDecoder(max_frame_size=len(frame) + 64), chunks)
