"""Helpers for the network cases: length-prefixed frames and peer processes.

A frame is a 4-byte big-endian length followed by that many bytes of body (here one
``msgspec.msgpack``-encoded Struct). A peer is a second interpreter running
``python -m benchmarks.cases._net_peer KIND [ARGS]``: it binds 127.0.0.1 port 0, prints the
port on its first stdout line and exits when its stdin closes, so a peer never outlives the
side that started it, even when that side is killed.
"""

from __future__ import annotations

import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from benchmarks._runner import REPO_ROOT, child_env

HEADER = struct.Struct(">I")
RECEIVE_SIZE = 64 * 1024
PEER_START_TIMEOUT = 30.0  # seconds for a peer to print its port
PEER_STOP_TIMEOUT = 5.0  # seconds for a peer to exit after its stdin closes


def frame(body: bytes) -> bytes:
    """One frame: the length header, then the body."""
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Reads whole frames off a trio stream, as many as each receive delivered."""

    __slots__ = ("_buffer", "_stream")

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def receive(self) -> list[bytes]:
        """At least one frame body, or ``[]`` at a clean end of stream."""
        while True:
            bodies = self._split()
            if bodies:
                return bodies
            chunk = await self._stream.receive_some(RECEIVE_SIZE)
            if not chunk:
                if self._buffer:
                    raise ConnectionError(f"stream ended inside a frame ({len(self._buffer)} B)")
                return []
            self._buffer += chunk

    def _split(self) -> list[bytes]:
        buffer, bodies, pos = self._buffer, [], 0
        end = len(buffer)
        while end - pos >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, pos)
            start = pos + HEADER.size
            if end - start < size:
                break
            bodies.append(bytes(buffer[start : start + size]))
            pos = start + size
        if pos:
            del buffer[:pos]
        return bodies


@contextmanager
def peer(*args: str, module: str = "benchmarks.cases._net_peer") -> Iterator[int]:
    """Start a peer process, yield the port it listens on, and always stop it."""
    command = [sys.executable, "-m", module, *args]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=child_env(),
    )
    try:
        yield _read_port(proc)
    finally:
        stop(proc)


def _read_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + PEER_START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"peer {proc.args!r} printed no port")
    line = proc.stdout.readline()
    if not line.strip():
        raise RuntimeError(f"peer {proc.args!r} exited ({proc.wait()}) before printing a port")
    return int(line)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the peer's stdin (its signal to exit), then kill it if it lingers."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=PEER_STOP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
