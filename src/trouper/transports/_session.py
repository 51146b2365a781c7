"""``MessageSession``: whole messages both ways over one transport connection.

Sending goes through a bounded send buffer and one writer task per session:
``send`` queues the message whole (waiting while the buffer is full, which
is the backpressure a slow reader exerts) and the writer puts it on the
wire. So a caller cancelled in ``send`` leaves either all of its message
queued or none of it, never half a frame on a stream other tasks share, and
``broadcast`` can bound the time it gives each session without corrupting
any. Receiving is done by the caller's task, one receiver at a time.

Every error leaves through ``_edge``: the transport's exceptions become
trouper ``TransportError`` subclasses (``map_exceptions``) annotated with
the session id and the operation (``with_session``/``with_operation``).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from typing import Literal

import attrs
import trio

from trouper._errors import (
    ConfigurationError,
    ConnectionLost,
    FrameTooLarge,
    LocalProtocolError,
    TransportError,
    TrouperError,
)

from ._codecs import Codec, Framed
from ._mapping import map_exceptions
from ._msg_framing import too_large

__all__ = ["MessageSession", "SessionStatistics", "start_session"]

logger = logging.getLogger("trouper.transports")

_ids = itertools.count(1)


@attrs.frozen
class SessionStatistics:
    """A snapshot of one session's counters."""

    id: str
    remote_address: str
    messages_sent: int  # handed to the transport by the writer
    bytes_sent: int
    messages_received: int
    bytes_received: int
    queued_messages: int  # in the send buffer, not yet written
    queued_bytes: int
    send_buffer: int
    max_message_size: int
    closed: bool


class _Edge:
    """``map_exceptions`` plus the session's id and the operation.

    A class rather than a ``@contextmanager``: it is entered on every send
    and receive, and only the error path needs more than a slot lookup.
    """

    __slots__ = ("operation", "session")

    def __init__(self, session: MessageSession, operation: str) -> None:
        self.session = session
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> Literal[False]:
        if not isinstance(exc, Exception):
            return False  # no error, or Cancelled/KeyboardInterrupt: never converted
        error: TrouperError
        if isinstance(exc, TrouperError):
            error = exc
        else:
            try:
                with map_exceptions(self.session.remote_address):
                    raise exc
            except TrouperError as mapped:
                error = mapped
            except Exception:
                return False  # not a transport error: it leaves as itself
        if error.session is None:
            error.with_session(self.session.id)
        if error.operation is None:
            error.with_operation(self.operation)
        if error is exc:
            return False
        raise error


def _payload(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise ConfigurationError(
        f"a message is bytes, bytearray or memoryview, not {type(data).__name__}"
    )


class MessageSession:
    """One connection carrying whole messages (bytes) both ways.

    ``send(data)`` queues a message (at most ``max_message_size`` bytes,
    else ``FrameTooLarge`` and nothing is sent); ``receive()`` returns the
    next one, or None once the peer has sent its end (``send_eof``) or
    closed; ``async for message in session`` reads until then. ``aclose()``
    flushes the queue (for at most ``close_timeout`` seconds) and closes.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        remote_address: str,
        max_message_size: int,
        send_buffer: int,
        close_timeout: float,
        prefix: str = "c",
    ) -> None:
        self.id = f"{prefix}{next(_ids)}"
        self.remote_address = remote_address
        self._codec = codec
        self._limit = max_message_size
        self._send_buffer = send_buffer
        self._close_timeout = close_timeout
        self._queue: deque[bytes | None] = deque()  # None: the end mark
        self._queued = 0
        self._writing = False  # the writer has a batch on the wire
        self._space = trio.lowlevel.ParkingLot()  # senders waiting for buffer room
        self._work = trio.lowlevel.ParkingLot()  # the writer waiting for messages
        self._receivers = trio.lowlevel.ParkingLot()  # tasks waiting to receive
        self._receiving = False
        self._writer_scope = trio.CancelScope()
        self._writer_done = trio.Event()
        self._error: TransportError | None = None  # what broke the writer
        self._closed = False
        self._eof_sent = False
        self._eof_received = False
        self._sent = self._bytes_sent = self._received = self._bytes_received = 0

    def __repr__(self) -> str:
        return (
            f"<MessageSession {self.id} {self.remote_address}{' closed' if self._closed else ''}>"
        )

    @property
    def closed(self) -> bool:
        """Closed by ``aclose``, or broken (a failed write, an oversize message)."""
        return self._closed or self._error is not None

    @property
    def ended(self) -> bool:
        """Either end has ended its messages (``send_eof``, or the peer's end)."""
        return self._eof_sent or self._eof_received

    @property
    def stream(self) -> trio.abc.Stream:
        """The transport stream underneath (to ask for its certificate, say)."""
        return self._codec.stream

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            id=self.id,
            remote_address=self.remote_address,
            messages_sent=self._sent,
            bytes_sent=self._bytes_sent,
            messages_received=self._received,
            bytes_received=self._bytes_received,
            queued_messages=len(self._queue),
            queued_bytes=self._queued,
            send_buffer=self._send_buffer,
            max_message_size=self._limit,
            closed=self.closed,
        )

    def _edge(self, operation: str) -> _Edge:
        """The one place errors leave a session: mapped, then annotated."""
        return _Edge(self, operation)

    # ------------------------------------------------------------ sending

    def _check_sendable(self) -> None:
        if self._error is not None:
            raise ConnectionLost(f"session is broken: {self._error.args[0]}") from self._error
        if self._closed:
            raise ConnectionLost(f"session with {self.remote_address} is closed")
        if self._eof_sent:
            raise LocalProtocolError("send after send_eof: this side already ended its messages")

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue one message; waits while the send buffer is full.

        Returns once the message is queued whole (``aclose`` flushes the
        queue). Cancelled while waiting, nothing of it is sent.
        """
        with self._edge("send"):
            payload = _payload(data)
            if len(payload) > self._limit:
                raise too_large(len(payload), self._limit, sending=True)
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_sendable()
            if not self._queue and not self._writing:
                rest = self._codec.try_write(payload)
                if rest is not None:  # written from this task, maybe but a tail
                    self._sent += 1
                    self._bytes_sent += len(payload)
                    if rest:
                        self._queue.append(Framed(rest))
                        self._queued += len(rest)
                        self._work.unpark_all()
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return
            await trio.lowlevel.checkpoint()
            while True:
                self._check_sendable()
                # One message always fits in an empty buffer, however large.
                if not self._queue or self._queued + len(payload) <= self._send_buffer:
                    break
                await self._space.park()
            self._queue.append(payload)
            self._queued += len(payload)
            self._work.unpark_all()

    async def send_eof(self) -> None:
        """Half-close: tell the peer no more messages will come from this side
        (its ``receive`` returns None after the queued ones). Receiving goes on."""
        with self._edge("send_eof"):
            await trio.lowlevel.checkpoint()
            self._check_sendable()
            self._eof_sent = True
            self._queue.append(None)
            self._work.unpark_all()

    async def flush(self) -> None:
        """Wait until everything queued was handed to the transport."""
        with self._edge("flush"):
            while self._queue or self._writing:
                if self._error is not None:
                    self._check_sendable()
                if self._writer_done.is_set():
                    break
                await self._space.park()
            await trio.lowlevel.checkpoint()

    async def run_writer(self) -> None:
        """The writer task: runs until ``aclose`` (or the stream breaks)."""
        try:
            with self._writer_scope:
                await self._write_loop()
        except TransportError as exc:
            self._error = exc
            logger.debug("session %s: writing failed: %s", self.id, exc)
        except Exception as exc:  # a bug below us: this session only, never the nursery
            logger.exception("session %s: the writer failed", self.id)
            self._error = ConnectionLost(f"writing to {self.remote_address} failed: {exc!r}")
        finally:
            self._writing = False
            self._queue.clear()
            self._queued = 0
            self._writer_done.set()
            self._space.unpark_all()

    async def _write_loop(self) -> None:
        while True:
            while not self._queue:
                if self._closed:
                    return
                await self._work.park()
            batch: list[bytes] = []
            end = False
            while self._queue:
                item = self._queue.popleft()
                if item is None:
                    end = True
                    break
                batch.append(item)
            size = sum(len(message) for message in batch)
            whole = [m for m in batch if not isinstance(m, Framed)]  # tails were counted
            self._writing = True
            with self._edge("send"):
                await self._codec.write(batch, end)
            self._writing = False
            self._queued -= size
            self._sent += len(whole)
            self._bytes_sent += sum(len(message) for message in whole)
            self._space.unpark_all()

    # ---------------------------------------------------------- receiving

    async def receive(self) -> bytes | None:
        """The next message; None once the peer ended (``send_eof``, a clean close).

        A message over ``max_message_size`` raises ``FrameTooLarge`` and
        closes the session (the stream cannot be trusted past it).
        """
        # One receiver at a time, the others wait their turn. Not a trio.Lock:
        # its acquire yields even when free, one more scheduling pass per message.
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._receiving:
            await self._receivers.park()
        self._receiving = True
        try:
            with self._edge("receive"):
                if self._eof_received:
                    await trio.lowlevel.checkpoint()
                    return None
                try:
                    message = await self._codec.read()
                except FrameTooLarge:
                    await self._abort()
                    raise
                if message is None:
                    self._eof_received = True
                    return None
                self._received += 1
                self._bytes_received += len(message)
                return message
        finally:
            self._receiving = False
            self._receivers.unpark()

    def __aiter__(self) -> MessageSession:
        return self

    async def __anext__(self) -> bytes:
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    # ------------------------------------------------------------ closing

    async def _abort(self) -> None:
        self._closed = True
        self._writer_scope.cancel()
        self._work.unpark_all()
        await trio.aclose_forcefully(self._codec.stream)

    async def aclose(self) -> None:
        """Flush what is queued (at most ``close_timeout`` seconds; at once
        when cancelled), stop the writer and close the connection."""
        if self._closed and self._writer_done.is_set():
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._work.unpark_all()
        self._space.unpark_all()
        try:
            with trio.move_on_after(self._close_timeout):
                await self._writer_done.wait()
        finally:
            self._writer_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._writer_done.wait()
                with trio.move_on_after(self._close_timeout):
                    try:
                        await self._codec.stream.aclose()
                    except Exception as exc:  # closing a broken stream may complain
                        logger.debug("closing session %s: %r", self.id, exc)

    async def __aenter__(self) -> MessageSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def start_session(session: MessageSession, nursery: trio.Nursery | None) -> MessageSession:
    """Start ``session``'s writer in ``nursery``, or in a system task without one
    (like the transports' own background tasks; it ends with the session)."""
    if nursery is None:
        trio.lowlevel.spawn_system_task(session.run_writer, name=f"trouper session {session.id}")
    else:
        nursery.start_soon(session.run_writer, name=f"trouper session {session.id}")
    return session
