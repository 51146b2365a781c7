"""Sans-IO pieces of the load generator: WebSocket frames and Yjs messages.

Both servers send whole, unfragmented binary frames; client frames are
masked as the protocol demands (``mask_frame`` is the chat generator's).
A Yjs message is a varuint type (0 sync, 1 awareness), and for sync a
varuint sub-type (0 SyncStep1, 1 SyncStep2, 2 Update) and a var-length
payload: ``parse_sync`` reads the two, ``sync_message`` writes them.

Every update an editor sends inserts one token ``<EDITOR:SEQ>``. Yjs keeps
an inserted string verbatim (UTF-8, length-prefixed) in an update, and a
merged update keeps each token whole (tokens are only ever inserted at
token boundaries, so no later insert splits one): ``TOKEN`` finds which
edits a received update carries whether or not the server forwarded the
sender's bytes unchanged.
"""

from __future__ import annotations

import re

from pycrdt import write_var_uint

from benchmarks.chat._lean import mask_frame, split_frames

__all__ = ["TOKEN", "FrameReader", "mask_frame", "parse_sync", "sync_message", "token"]

#: One edit's token; group 1 the editor, group 2 its sequence number.
TOKEN = re.compile(rb"<(\d+):(\d+)>")

OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x2, 0x8, 0x9, 0xA
SYNC, AWARENESS = 0, 1
STEP1, STEP2, UPDATE = 0, 1, 2
#: A server frame larger than this is a protocol error of the server (the
#: generator's documents stay far smaller).
MAX_FRAME = 64 << 20


def token(editor: int, seq: int) -> str:
    return f"<{editor}:{seq}>"


def sync_message(sub: int, payload: bytes) -> bytes:
    """A Yjs sync message: type 0, ``sub``, then the var-length ``payload``."""
    return bytes((SYNC, sub)) + write_var_uint(len(payload)) + payload


def _read_varuint(data: bytes, at: int) -> tuple[int, int]:
    num = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varuint")
        byte = data[at]
        at += 1
        num |= (byte & 0x7F) << shift
        if byte < 0x80:
            return num, at
        shift += 7
        if shift > 63:
            raise ValueError("varuint too long")


def parse_sync(message: bytes) -> tuple[int, bytes] | None:
    """``(sub-type, payload)`` of a Yjs sync message; None for any other type."""
    if not message or message[0] != SYNC:
        return None
    sub, at = _read_varuint(message, 1)
    size, at = _read_varuint(message, at)
    if at + size > len(message):
        raise ValueError("truncated sync payload")
    return sub, message[at : at + size]


class FrameReader:
    """Splits a server's byte stream into ``(opcode, payload)`` frames."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        frames, self.buf = split_frames(self.buf + data if self.buf else data, MAX_FRAME)
        if any(not first & 0x80 for first, _ in frames):
            raise ValueError("fragmented server frame")
        return [(first & 0x0F, payload) for first, payload in frames]
