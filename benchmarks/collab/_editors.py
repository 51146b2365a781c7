"""The fan-out load generator: every editor of one document in one process.

``python -m benchmarks.collab._editors --url URL --editors 50 --rate 2 ...``
opens one WebSocket per editor (``{user}`` in URL becomes ``e<N>``), speaks
the Yjs protocol (SyncStep1 on connect, answers the server's SyncStep1,
applies SyncStep2 and every Update it receives to its own pycrdt ``Doc``),
then each editor appends one token ``<EDITOR:SEQ>`` to the document's
"content" text ``rate`` times a second, as a real Yjs Update message.

One process holds every editor, so one monotonic clock times both ends: a
delivery's latency is its receipt time minus the moment its sender wrote the
update to the socket. Receipts are recognised by the tokens in the update
bytes (see ``_yws``), so a server that re-encodes updates is measured as
well as one that forwards them unchanged; ``identical`` counts deliveries
whose bytes were exactly what the sender sent.

Phases: ``--warmup`` seconds of editing that are not measured, then
``--duration`` seconds that are, then a drain (``--grace`` seconds at least,
at most ``DRAIN_LIMIT``) until every measured token reached every other
editor. The server's CPU (``--server-pid``, read from /proc) is sampled over
the measured phase and its drain. Prints one JSON line and exits.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import random
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit

import pycrdt

from benchmarks.chat._limits import cpu_seconds

from ._yws import (
    AWARENESS,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    STEP1,
    STEP2,
    TOKEN,
    UPDATE,
    FrameReader,
    mask_frame,
    parse_sync,
    sync_message,
    token,
)

RECV = 1 << 16
#: The longest wait, after the last send, for the measured tokens to arrive.
DRAIN_LIMIT = 30.0
#: The longest wait for one editor's handshake and first sync.
CONNECT_LIMIT = 30.0


class Editor:
    """One editor: a socket, a pycrdt Doc, and what it has seen."""

    def __init__(self, number: int, rng: random.Random) -> None:
        self.number = number
        self.rng = rng
        self.doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.local: list[bytes] = []
        self.capturing = False
        self.doc.observe(self._captured)
        self.sock: socket.socket | None = None
        self.frames = FrameReader()
        self.seen: set[bytes] = set()
        self.synced = False
        self.closed = False

    def _captured(self, event: pycrdt.TransactionEvent) -> None:
        if self.capturing:
            self.local.append(event.update)

    def edit(self, seq: int) -> bytes:
        """Append this editor's next token; the update that carries it."""
        self.capturing = True
        try:
            self.text.insert(len(self.text), token(self.number, seq))
        finally:
            self.capturing = False
        update = self.local[-1]
        self.local.clear()
        return update

    def send(self, message: bytes, opcode: int = OP_BINARY) -> bool:
        if self.sock is None or self.closed:
            return False
        try:
            self.sock.sendall(mask_frame(message, self.rng.randbytes(4), opcode))
        except OSError:
            self.closed = True
            return False
        return True


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        rng = random.Random(args.seed)
        self.editors = [Editor(n, random.Random(rng.random())) for n in range(args.editors)]
        self.sel = selectors.DefaultSelector()
        self.sent_at: dict[bytes, float] = {}  # token -> send time (measured phase only)
        self.sent_bytes: set[bytes] = set()
        self.latencies: list[float] = []
        self.duplicated = self.echoes = self.identical = self.deliveries = 0
        self.errors: list[str] = []

    # -- connecting ------------------------------------------------------------

    def _handshake(self, editor: Editor) -> None:
        url = urlsplit(self.args.url.replace("{user}", f"e{editor.number}"))
        host, port = url.hostname or "127.0.0.1", url.port or 80
        sock = socket.create_connection((host, port), timeout=CONNECT_LIMIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = url.path + (f"?{url.query}" if url.query else "")
        key = base64.b64encode(editor.rng.randbytes(16)).decode()
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(RECV)
            if not chunk:
                raise ConnectionError(f"editor {editor.number}: closed during the handshake")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"editor {editor.number}: {status.splitlines()[0]!r}")
        editor.sock = sock
        self.sel.register(sock, selectors.EVENT_READ, editor)
        editor.send(sync_message(STEP1, editor.doc.get_state()))
        if rest:
            self._frames(editor, rest)

    def connect_all(self) -> None:
        for editor in self.editors:
            self._handshake(editor)
        deadline = time.monotonic() + CONNECT_LIMIT
        while not all(e.synced or e.closed for e in self.editors):
            if time.monotonic() > deadline:
                raise TimeoutError("editors not synced within the connect limit")
            self._poll(0.2)

    # -- receiving -------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            editor: Editor = key.data
            try:
                data = editor.sock.recv(RECV) if editor.sock else b""
            except OSError:
                data = b""
            if not data:
                self._close(editor, "server closed the connection")
                continue
            self._frames(editor, data)

    def _close(self, editor: Editor, why: str) -> None:
        if editor.sock is not None and not editor.closed:
            self.sel.unregister(editor.sock)
            editor.sock.close()
            self.errors.append(f"editor {editor.number}: {why}")
        editor.closed = True

    def _frames(self, editor: Editor, data: bytes) -> None:
        try:
            frames = editor.frames.feed(data)
        except ValueError as exc:
            self._close(editor, str(exc))
            return
        now = time.monotonic()
        for opcode, payload in frames:
            if opcode == OP_BINARY:
                self._message(editor, payload, now)
            elif opcode == OP_PING:
                editor.send(payload, OP_PONG)
            elif opcode == OP_CLOSE:
                self._close(editor, f"close frame {payload[:2].hex()} {payload[2:]!r}")
                return

    def _message(self, editor: Editor, message: bytes, now: float) -> None:
        if message and message[0] == AWARENESS:
            return
        try:
            parsed = parse_sync(message)
        except ValueError as exc:
            self._close(editor, f"bad sync message: {exc}")
            return
        if parsed is None:
            return
        sub, payload = parsed
        if sub == UPDATE:
            if self._delivered(editor, payload, now):
                editor.doc.apply_update(payload)
        elif sub == STEP1:
            editor.send(sync_message(STEP2, editor.doc.get_update(payload)))
        elif sub == STEP2:
            editor.doc.apply_update(payload)
            editor.synced = True

    def _delivered(self, editor: Editor, update: bytes, now: float) -> bool:
        """Count one Update message; whether it carries anything from others."""
        mine = str(editor.number).encode()
        foreign = False
        for match in TOKEN.finditer(update):
            if match.group(1) == mine:
                self.echoes += 1
                continue
            foreign = True
            key = match.group(0)
            if key in editor.seen:
                self.duplicated += 1
                continue
            editor.seen.add(key)
            sent = self.sent_at.get(key)
            if sent is not None:
                self.latencies.append(now - sent)
                self.deliveries += 1
                self.identical += update in self.sent_bytes
        return foreign

    # -- sending ---------------------------------------------------------------

    def edit_for(self, seconds: float, first_seq: int, measured: bool) -> int:
        """Every editor edits ``rate`` times a second for ``seconds``, evenly spread."""
        editors, rate = self.args.editors, self.args.rate
        count = int(seconds * rate * editors)
        interval = 1.0 / (rate * editors)
        start = time.monotonic()
        for j in range(count):
            due = start + j * interval
            while (wait := due - time.monotonic()) > 0:
                self._poll(wait)
            editor = self.editors[j % editors]
            if editor.closed:
                continue
            seq = first_seq + j // editors
            update = editor.edit(seq)
            if measured:
                self.sent_at[token(editor.number, seq).encode()] = time.monotonic()
                self.sent_bytes.add(update)
            editor.send(sync_message(UPDATE, update))
        self._poll(0)
        return first_seq + (count + editors - 1) // editors

    def drain(self, expected: int) -> float:
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            if self.deliveries >= expected and waited >= self.args.grace:
                return waited
            if waited >= max(self.args.grace, DRAIN_LIMIT):
                return waited
            self._poll(0.05)

    def run(self) -> dict[str, object]:
        args = self.args
        self.connect_all()
        gc.freeze()  # the editors and their documents live for the whole run
        seq = self.edit_for(args.warmup, 0, measured=False)
        pid = args.server_pid
        cpu0, own0, wall0 = cpu_seconds(pid) if pid else 0.0, _own_cpu(), time.monotonic()
        self.edit_for(args.duration, seq, measured=True)
        held = sum(not e.closed for e in self.editors)
        expected = len(self.sent_at) * (held - 1)
        drained = self.drain(expected)
        cpu1, own1, wall1 = cpu_seconds(pid) if pid else 0.0, _own_cpu(), time.monotonic()
        texts = {str(e.text) for e in self.editors if not e.closed}
        deliveries = max(1, self.deliveries)
        return {
            "editors": args.editors,
            "held": held,
            "rate_per_editor": args.rate,
            "duration": args.duration,
            "sent": len(self.sent_at),
            "expected": expected,
            "deliveries": self.deliveries,
            "lost": max(0, expected - self.deliveries),
            "duplicated": self.duplicated,
            "echoes": self.echoes,
            "identical_bytes": round(self.identical / deliveries, 4),
            **_percentiles(self.latencies),
            "drain_secs": round(drained, 2),
            "server_cpu": round(cpu1 - cpu0, 2),
            "server_cores": round((cpu1 - cpu0) / (wall1 - wall0), 2),
            "server_us_per_delivery": round((cpu1 - cpu0) / deliveries * 1e6, 1),
            "generator_us_per_delivery": round((own1 - own0) / deliveries * 1e6, 1),
            "converged": len(texts) == 1,
            "text_chars": max((len(t) for t in texts), default=0),
            "errors": self.errors[:5],
        }


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collab._editors")
    parser.add_argument("--url", required=True, help="ws:// URL; {user} is the editor's name")
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="updates/s per editor")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    if args.editors < 2:
        parser.error("--editors must be at least 2 (one sends, the others receive)")
    return args


def main() -> None:
    run = Run(parse_args(sys.argv[1:]))
    print(json.dumps(run.run()), flush=True)
    os._exit(0)  # the sockets and documents go with the process


if __name__ == "__main__":
    main()
