"""The lean load generator: raw sockets, one epoll loop, minimal framing.

Same command line, stdin commands and reports as ``_client`` (the
trio-websocket client, kept as a cross-check at small scale), so the runner
drives either. Why: a trio-websocket client spends about 120 µs of CPU per
received frame (tasks, wsproto, cancel scopes), which on two cores leaves
the server less than half the machine. Here one thread holds every
connection of the process in one ``selectors`` loop: per received frame,
one ``recv``, a header parsed by hand and one msgspec decode.

Frames from the server are taken whole and unfragmented (what both servers
send); anything else counts as an error. Client frames are masked, as the
protocol demands, with a seeded mask.
"""

from __future__ import annotations

import base64
import errno
import gc
import json
import os
import random
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit

import msgspec

from ._client import Phase
from ._limits import raise_nofile

RECV = 65536


class Frame(msgspec.Struct):
    """The fields of a server frame the generator reads."""

    type: str
    text: str = ""
    id: int = 0


_decode = msgspec.json.Decoder(Frame).decode
_encode = msgspec.json.encode


class Conn:
    """One client connection and the member it plays."""

    __slots__ = ("buf", "failures", "room", "seen", "sock", "state", "user")

    CONNECTING, HANDSHAKE, JOINING, JOINED, CLOSED = range(5)

    def __init__(self, room: str, user: str) -> None:
        self.room = room
        self.user = user
        self.seen: set[str] = set()
        self.sock: socket.socket | None = None
        self.buf = b""
        self.state = Conn.CLOSED
        self.failures = 0

    @property
    def open(self) -> bool:
        return self.state == Conn.JOINED


def mask_frame(payload: bytes, mask: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (the mask XOR as one big integer)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    body = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little") if n else b""
    return head + mask + body


def split_frames(buf: bytes, max_size: int | None = None) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole (unmasked, server) frames at the start of ``buf`` as
    ``(first byte, payload)``, and the bytes after them; ``ValueError`` for a
    frame over ``max_size``, as soon as its header says so."""
    frames: list[tuple[int, bytes]] = []
    at, end = 0, len(buf)
    while end - at >= 2:
        first, n = buf[at], buf[at + 1] & 0x7F
        head = 2
        if n == 126:
            head, n = 4, int.from_bytes(buf[at + 2 : at + 4], "big")
        elif n == 127:
            head, n = 10, int.from_bytes(buf[at + 2 : at + 10], "big")
        if max_size is not None and n > max_size:
            raise ValueError(f"server frame of {n} bytes exceeds {max_size}")
        if end - at < head + n:
            break
        frames.append((first, buf[at + head : at + head + n]))
        at += head + n
    return frames, buf[at:]


class Lean:
    def __init__(self, argv: list[str]) -> None:
        url = urlsplit(argv[0])
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.path = url.path or "/"
        self.proc, self.procs, connections, rooms = (int(a) for a in argv[1:5])
        self.concurrency = int(argv[5])
        indices = range(self.proc, connections, self.procs)
        self.conns = [
            Conn(f"room-{(i // self.procs) % rooms}", f"u{self.proc}-{n}")
            for n, i in enumerate(indices)
        ]
        self.random = random.Random(self.proc)
        self.sel = selectors.EpollSelector()
        self.phase = Phase(-1)
        self.failed = 0
        self.errors = 0
        self.stdin = b""
        self.schedule: list[tuple[float, Conn, str]] = []
        self.next_send = 0

    # -- connections ---------------------------------------------------------

    def _mask(self) -> bytes:
        return self.random.randbytes(4)

    def _open(self, conn: Conn) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._fail(conn)
            return
        conn.sock, conn.buf, conn.state = sock, b"", Conn.CONNECTING
        self.sel.register(sock, selectors.EVENT_WRITE, conn)

    def _fail(self, conn: Conn) -> None:
        if conn.sock is not None:
            self.sel.unregister(conn.sock)
            conn.sock.close()
            conn.sock = None
        was_open = conn.state == Conn.JOINED
        conn.state = Conn.CLOSED
        conn.failures += 1
        if not was_open and conn.failures < 5:
            self.retry.append(conn)
        elif not was_open:
            self.failed += 1
            print(f"lean client {self.proc}: {conn.user} failed", file=sys.stderr)

    def _handshake(self, conn: Conn) -> None:
        assert conn.sock is not None
        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._fail(conn)
            return
        key = base64.b64encode(self.random.randbytes(16)).decode()
        host = f"{self.address[0]}:{self.address[1]}"
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        conn.sock.send(request.encode())
        conn.state = Conn.HANDSHAKE
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _send(self, conn: Conn, payload: bytes) -> bool:
        assert conn.sock is not None
        try:
            conn.sock.send(mask_frame(payload, self._mask()))
        except OSError:
            self.errors += 1
            return False
        return True

    # -- reading -------------------------------------------------------------

    def _readable(self, conn: Conn) -> None:
        assert conn.sock is not None
        try:
            data = conn.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._fail(conn)
            return
        buf = conn.buf + data if conn.buf else data
        if conn.state == Conn.HANDSHAKE:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                conn.buf = buf
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(conn)
                return
            conn.state = Conn.JOINING
            join = {"type": "join", "room": conn.room, "user": conn.user}
            self._send(conn, _encode(join))
            buf = rest
        conn.buf = self._frames(conn, buf)

    def _frames(self, conn: Conn, buf: bytes) -> bytes:
        frames, rest = split_frames(buf)
        for first, payload in frames:
            opcode = first & 0x0F
            if opcode == 0x1 and first & 0x80:
                self._text(conn, payload)
            elif opcode == 0x9:
                self._send_control(conn, 0xA, payload)
            elif opcode == 0x8:
                self._send_control(conn, 0x8, payload[:2])
                self._fail(conn)
                return b""
            elif opcode != 0xA:
                self.errors += 1  # fragmented or binary: not what the chat sends
        return rest

    def _send_control(self, conn: Conn, opcode: int, payload: bytes) -> None:
        if conn.sock is not None:
            try:
                conn.sock.send(mask_frame(payload, self._mask(), opcode))
            except OSError:
                self.errors += 1

    def _text(self, conn: Conn, payload: bytes) -> None:
        frame = _decode(payload)
        kind = frame.type
        if kind == "message":
            message = {"text": frame.text, "id": frame.id}
            self.phase.on_message(conn, message, time.time())  # type: ignore[arg-type]
        elif kind == "joined" and conn.state == Conn.JOINING:
            conn.state = Conn.JOINED
            self.connecting -= 1

    # -- the loop --------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        for key, events in self.sel.select(timeout):
            conn = key.data
            if conn is None:
                self._stdin()
            elif events & selectors.EVENT_WRITE:
                self._handshake(conn)
            else:
                self._readable(conn)

    def _stdin(self) -> None:
        data = os.read(0, 65536)
        if not data:
            self.commands.append({})
        self.stdin += data
        while b"\n" in self.stdin:
            line, _, self.stdin = self.stdin.partition(b"\n")
            self.commands.append(json.loads(line or b"{}"))

    def connect_all(self) -> None:
        started = time.monotonic()
        self.retry: list[Conn] = []
        pending = list(reversed(self.conns))
        self.connecting = 0
        while pending or self.retry or self.connecting:
            while self.connecting < self.concurrency and (pending or self.retry):
                conn = self.retry.pop() if self.retry else pending.pop()
                self.connecting += 1
                before = conn.failures
                self._open(conn)
                if conn.failures != before:
                    self.connecting -= 1
            failures = sum(c.failures for c in self.conns)
            self._poll(0.5)
            # A failed attempt frees its slot (it is queued again, or given up).
            self.connecting -= sum(c.failures for c in self.conns) - failures
            if time.monotonic() - started > 600:
                break
        held = sum(c.open for c in self.conns)
        secs = round(time.monotonic() - started, 2)
        line = {"event": "connected", "held": held, "failed": self.failed, "secs": secs}
        print(json.dumps(line), flush=True)

    def start_phase(self, number: int, rate: float, duration: float) -> None:
        phase = self.phase = Phase(number)
        for conn in self.conns:
            conn.seen.clear()
        senders: dict[str, Conn] = {}
        for conn in self.conns:
            if conn.open and conn.room not in senders:
                senders[conn.room] = conn
        rooms = sorted(senders)
        if rooms:
            shift = self.proc % len(rooms)
            rooms = rooms[shift:] + rooms[:shift]
        count = int(rate * duration / self.procs) if rooms else 0
        interval = self.procs / rate
        mono0, wall0 = time.monotonic() + 0.1, time.time() + 0.1
        self.schedule = [
            (
                mono0 + k * interval,
                senders[rooms[k % len(rooms)]],
                f"{self.proc}:{number}:{k} {wall0 + k * interval!r}",
            )
            for k in range(count)
        ]
        self.next_send = 0
        phase.sent.clear()

    def _due(self, now: float) -> float:
        """Send what is due; the time until the next send (or 1 s)."""
        schedule = self.schedule
        while self.next_send < len(schedule):
            at, conn, text = schedule[self.next_send]
            if at > now:
                return at - now
            self.next_send += 1
            say = {"type": "say", "room": conn.room, "text": text}
            if conn.open and self._send(conn, _encode(say)):
                self.phase.sent[conn.room] += 1
            else:
                self.phase.send_errors += 1
            if self.next_send == len(schedule):
                print(json.dumps({"event": "sent"}), flush=True)
        return 1.0

    def main(self) -> None:
        os.set_blocking(0, False)
        self.commands: list[dict] = []
        self.sel.register(0, selectors.EVENT_READ, None)
        self.connect_all()
        gc.freeze()
        while True:
            self._poll(self._due(time.monotonic()) if self.schedule else 1.0)
            while self.commands:
                command = self.commands.pop(0)
                if command.get("cmd") == "phase":
                    self.start_phase(command["phase"], command["rate"], command["duration"])
                    if not self.schedule:
                        print(json.dumps({"event": "sent"}), flush=True)
                elif command.get("cmd") == "report":
                    phase, self.phase = self.phase, Phase(-1)
                    self.schedule = []
                    report = phase.report(self.conns)  # type: ignore[arg-type]
                    report["send_errors"] += self.errors
                    self.errors = 0
                    print(json.dumps(report), flush=True)
                else:
                    sys.stdout.flush()
                    os._exit(0)


def main() -> None:
    raise_nofile()
    Lean(sys.argv[1:]).main()


if __name__ == "__main__":
    main()
