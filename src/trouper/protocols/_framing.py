"""Length-prefixed frames, each carrying a batch of envelopes.

Frame format::

    +----------------------+------------------------------------------+
    | length: u32, big end | body: msgpack array of 1..n Envelopes    |
    +----------------------+------------------------------------------+

``length`` counts the body only and is never zero. The body is ONE msgpack
array, so a busy link batches many envelopes per frame and the receiver
decodes a whole batch with a single msgspec call. An empty array, a zero
length, an oversize length or anything that is not a list of envelopes is a
``RemoteProtocolError``.

Decoded payloads (``msgspec.Raw``) are views into the frame's bytes, not
copies, so a payload kept alive keeps its frame (or the whole chunk passed to
``feed``) alive: decode payloads promptly rather than storing envelopes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Annotated

import msgspec

from trouper._errors import (
    ConfigurationError,
    FrameTooLarge,
    LocalProtocolError,
    RemoteProtocolError,
    TrouperError,
)

from ._envelopes import ENVELOPE_TYPES, Envelope

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "HEADER_SIZE", "FrameDecoder", "FrameEncoder"]

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
HEADER_SIZE = 4
_HEADER = struct.Struct(">I")
_MAX_REPRESENTABLE = 2**32 - 1

_Batch = Annotated[list[Envelope], msgspec.Meta(min_length=1)]


def _check_max_frame_size(max_frame_size: int) -> int:
    if not 1 <= max_frame_size <= _MAX_REPRESENTABLE:
        raise ConfigurationError(
            f"max_frame_size must be between 1 and {_MAX_REPRESENTABLE}, got {max_frame_size}"
        )
    return max_frame_size


class FrameEncoder:
    """Turns batches of envelopes into frames, reusing one msgspec Encoder.

    ``pack`` is the writer's entry point: it splits any batch into as many
    frames as the limit requires and sets aside, with the reason, each single
    envelope that could never fit, so one oversize message fails alone and
    nothing else in the batch is lost.
    """

    __slots__ = ("_encoder", "_scratch", "frames", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self.frames = 0  # frames packed (the metrics read it)
        self._encoder = msgspec.msgpack.Encoder()
        self._scratch = bytearray()

    def encode(self, envelopes: Sequence[Envelope]) -> bytes:
        """One frame holding ``envelopes`` (at least one), header included."""
        self.encode_into(envelopes, self._scratch, reset=True)
        return bytes(self._scratch)

    def encode_into(
        self, envelopes: Sequence[Envelope], buffer: bytearray, *, reset: bool = False
    ) -> int:
        """Append one frame to ``buffer`` (a transport's write buffer, so several
        frames go out in one write without extra copies); return its size.

        ``FrameTooLarge`` if they do not fit one frame; on error ``buffer`` is
        left as it was (or emptied when ``reset``).
        """
        if not envelopes:
            raise ValueError("a frame must hold at least one envelope")
        for env in envelopes:
            if type(env) not in ENVELOPE_TYPES:
                raise TypeError(f"not an envelope: {type(env).__qualname__}")
        start = 0 if reset else len(buffer)
        body_start = start + HEADER_SIZE
        if reset:
            del buffer[:]
        # Encode straight after a placeholder header, then patch the header in:
        # the body is never copied.
        self._encoder.encode_into(
            envelopes if isinstance(envelopes, list | tuple) else list(envelopes),
            buffer,
            body_start,
        )
        size = len(buffer) - body_start
        if size > self.max_frame_size:
            del buffer[start:]
            raise FrameTooLarge(
                f"{len(envelopes)} envelope(s) encode to {size} bytes, "
                f"above the maximum frame size of {self.max_frame_size}"
            )
        _HEADER.pack_into(buffer, start, size)
        return HEADER_SIZE + size

    def pack(
        self, envelopes: Iterable[Envelope], buffer: bytearray
    ) -> list[tuple[Envelope, TrouperError]]:
        """Append ``envelopes`` to ``buffer`` as frames of at most
        ``max_frame_size`` each, in order; return the envelopes left out, each
        with why (``FrameTooLarge``, or ``LocalProtocolError`` if our own
        encoder refused it).

        Each frame body is an array32 header followed by the envelopes encoded
        one by one, which is the same msgpack array the decoder reads, and lets
        the size be checked per envelope instead of after the fact.
        """
        rejected: list[tuple[Envelope, TrouperError]] = []
        limit = self.max_frame_size
        encode_into = self._encoder.encode_into
        start = len(buffer)
        buffer += _EMPTY_PREFIX
        count = 0
        for env in envelopes:
            pos = len(buffer)
            try:
                encode_into(env, buffer, pos)
            except Exception as exc:  # a bug of ours: never the peer's fault
                del buffer[pos:]
                rejected.append((env, LocalProtocolError(f"cannot encode {env!r:.200}: {exc}")))
                continue
            size = len(buffer) - pos
            if size + _ARRAY32 > limit:
                del buffer[pos:]
                rejected.append((env, FrameTooLarge(_too_large(env, size, limit))))
                continue
            if pos + size - start - HEADER_SIZE > limit:
                # It does not fit this frame: close the frame before it and
                # open the next one with it.
                moved = bytes(buffer[pos:])
                del buffer[pos:]
                _close_frame(buffer, start, count)
                self.frames += 1
                start = len(buffer)
                buffer += _EMPTY_PREFIX
                buffer += moved
                count = 0
            count += 1
        if count:
            _close_frame(buffer, start, count)
            self.frames += 1
        else:
            del buffer[start:]
        return rejected


# A frame header, then an array32 header (0xdd + u32 count), patched in later.
_ARRAY32 = 5
_EMPTY_PREFIX = bytes(HEADER_SIZE) + b"\xdd" + bytes(4)
_COUNT = struct.Struct(">BI")


def _close_frame(buffer: bytearray, start: int, count: int) -> None:
    _HEADER.pack_into(buffer, start, len(buffer) - start - HEADER_SIZE)
    _COUNT.pack_into(buffer, start + HEADER_SIZE, 0xDD, count)


def _too_large(env: Envelope, size: int, limit: int) -> str:
    what = getattr(env, "type_name", None) or type(env).__name__
    return (
        f"a {what} message of {size} bytes cannot be sent: the frame limit is {limit} "
        "bytes (max_frame_size); send large data in pieces, e.g. as a stream"
    )


class FrameDecoder:
    """Turns bytes from a peer into envelopes, whatever the bytes are.

    ``feed`` raises only ``RemoteProtocolError`` for bad input (an oversize
    frame included: it is refused when announced, before a byte of it is
    buffered), and after the first error every later ``feed`` raises again:
    a stream that broke framing once cannot be trusted to resynchronise. (The
    envelopes of good frames earlier in the failing chunk are dropped with it;
    the connection is closing anyway.)
    """

    __slots__ = ("_buffer", "_decoder", "_error", "frames", "max_frame_size")

    #: ``max_frame_size`` may be changed between feeds: a node starts a
    #: connection with a small cap (64 KiB) and raises it only once the peer
    #: has authenticated, so a stranger cannot make it buffer a big frame.

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = _check_max_frame_size(max_frame_size)
        self._decoder = msgspec.msgpack.Decoder(_Batch)
        self._buffer = bytearray()
        self._error: RemoteProtocolError | None = None
        self.frames = 0  # frames decoded (the metrics read it)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    @property
    def poisoned(self) -> bool:
        return self._error is not None

    def feed(
        self, data: bytes | bytearray | memoryview, *, max_frames: int | None = None
    ) -> list[Envelope]:
        """Buffer ``data``; return the envelopes of every frame it completes.

        With ``max_frames``, decode at most that many frames and keep the rest
        buffered (``feed(b"")`` continues): the handshake reads one frame at a
        time, so that the frames right behind the one that authenticates the
        peer are read under the raised ``max_frame_size``.
        """
        if self._error is not None:
            raise RemoteProtocolError(f"decoder unusable after an earlier error: {self._error}")
        try:
            return self._feed(data, max_frames)
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _feed(self, data: bytes | bytearray | memoryview, max_frames: int | None) -> list[Envelope]:
        out: list[Envelope] = []
        if not self._buffer and type(data) is bytes and max_frames is None:
            # Fast path: nothing buffered, so complete frames are decoded right
            # out of ``data``. That is safe only for immutable ``bytes``, as the
            # payloads' Raw values keep pointing into the decoded buffer.
            view = memoryview(data)
            consumed = self._drain(view, out)
            if consumed < len(data):
                self._buffer += view[consumed:]
            return out
        buffer = self._buffer
        buffer += data
        offset = 0
        # The view must be released before the bytearray is resized below.
        frames = 0
        with memoryview(buffer) as view:
            total = len(view)
            while max_frames is None or frames < max_frames:
                length = self._frame_length(view, offset)
                if length is None:
                    break
                end = offset + HEADER_SIZE + length
                if total < end:
                    break
                # One copy per frame into immutable bytes, so the Raw payloads
                # never see the bytearray move or change under them.
                self._decode(bytes(view[offset + HEADER_SIZE : end]), out)
                offset = end
                frames += 1
        if offset:
            # Once per feed, not per frame: trimming the front is amortised
            # O(1) in CPython, and the partial tail is all that remains.
            del buffer[:offset]
        return out

    def _drain(self, view: memoryview, out: list[Envelope]) -> int:
        offset = 0
        total = len(view)
        while True:
            length = self._frame_length(view, offset)
            if length is None:
                return offset
            end = offset + HEADER_SIZE + length
            if total < end:
                return offset
            self._decode(view[offset + HEADER_SIZE : end], out)
            offset = end

    def _frame_length(self, buffer: memoryview, offset: int) -> int | None:
        """The body length announced at ``offset``, checked before any of the
        body is buffered; ``None`` while the header is incomplete."""
        if len(buffer) - offset < HEADER_SIZE:
            return None
        (length,) = _HEADER.unpack_from(buffer, offset)
        if length == 0:
            raise RemoteProtocolError("zero-length frame")
        if length > self.max_frame_size:
            raise RemoteProtocolError(
                f"peer announced a {length}-byte frame, "
                f"above the maximum frame size of {self.max_frame_size}"
            )
        return int(length)

    def _decode(self, body: bytes | memoryview, out: list[Envelope]) -> None:
        self.frames += 1  # counted for the metrics (trouper_peer_frames_total)
        try:
            out.extend(self._decoder.decode(body))
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(f"malformed envelope: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise RemoteProtocolError(f"undecodable frame: {exc}") from exc
        except TrouperError:
            raise
        except Exception as exc:
            # Bytes from the network must surface as RemoteProtocolError only; msgspec
            # can also raise e.g. RecursionError on absurdly nested input.
            raise RemoteProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc
