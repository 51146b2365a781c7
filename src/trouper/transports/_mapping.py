"""The one edge where trio, socket and ssl errors become trouper errors.

Above the transports, code only ever sees ``TransportError`` subclasses, so a
caller decides what to do from ``error_code`` / ``is_retryable`` instead of
knowing which library raised what. The original exception stays reachable as
``__cause__`` for logs and debugging.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from trouper._errors import (
    ConnectionLost,
    FrameTooLarge,
    HandshakeFailed,
    TransportError,
    TrouperError,
)

from ._address import Address

try:  # ws:// and wss:// need the ``ws`` extra (trio-websocket)
    import trio_websocket as _tws
except ImportError:  # pragma: no cover - depends on the installation
    _tws = None  # type: ignore[assignment]

__all__ = ["map_exceptions", "map_quic_close"]

# SSL errors that mean "the connection went away", not "the peer is not who
# we trust": a ragged EOF or a reset in the middle of a TLS session is a lost
# connection (retryable), not a failed handshake (not retryable).
_SSL_TRANSPORT_ERRORS = (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError)


def _find(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """Search ``exc``, its cause/context chain and exception groups for ``kind``.

    trio reports a failed connect as ``OSError`` *from* an ExceptionGroup of
    the per-address errors, and SSLStream reports TLS failures as
    ``BrokenResourceError`` *from* the ``ssl.SSLError``: the interesting
    error is always one or two links down.
    """
    seen: set[int] = set()
    todo = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        if isinstance(cur, BaseExceptionGroup):
            todo.extend(cur.exceptions)
        todo.append(cur.__cause__)  # not __context__: that may be unrelated
    return None


def _ssl_reason(err: ssl.SSLError) -> str:
    # ``reason``/``verify_message`` are only set on errors raised by OpenSSL
    # itself, so read them defensively.
    verify: str | None = getattr(err, "verify_message", None)
    if isinstance(err, ssl.SSLCertVerificationError) and verify:
        return f"certificate verify failed: {verify}"
    reason: str | None = getattr(err, "reason", None)
    if reason:
        return reason.lower().replace("_", " ")
    return err.strerror or str(err) or type(err).__name__


def _translate(exc: Exception, peer: str, handshake: bool) -> TransportError | None:
    tls = _find(exc, ssl.SSLError)
    if isinstance(tls, ssl.SSLError) and not isinstance(tls, _SSL_TRANSPORT_ERRORS):
        phase = "handshake" if handshake else "session"
        return HandshakeFailed(f"TLS {phase} with {peer}: {_ssl_reason(tls)}")
    if _find(exc, ConnectionRefusedError) is not None:
        return ConnectionLost(f"connection to {peer} refused (is the node listening there?)")
    if _tws is not None and (ws_error := _websocket_error(exc, peer)) is not None:
        return ws_error
    if isinstance(exc, trio.ClosedResourceError):
        return ConnectionLost(f"connection to {peer} is closed")
    if isinstance(exc, trio.BrokenResourceError):
        what = "during the TLS handshake" if handshake else "while in use"
        return ConnectionLost(f"connection to {peer} broke {what}")
    if isinstance(exc, OSError):  # includes socket.gaierror and ConnectionResetError
        detail = exc.strerror or str(exc) or type(exc).__name__
        return ConnectionLost(f"connection to {peer} failed: {detail}")
    return None


def _websocket_error(exc: Exception, peer: str) -> TransportError | None:
    """trio-websocket's errors (also inside an exception group)."""
    rejected = _find(exc, _tws.ConnectionRejected)
    if isinstance(rejected, _tws.ConnectionRejected):
        return HandshakeFailed(
            f"WebSocket handshake with {peer}: the server refused the upgrade"
            f" (HTTP {rejected.status_code}; is the path right?)"
        )
    if isinstance(_find(exc, _tws.DisconnectionTimeout), _tws.DisconnectionTimeout):
        return ConnectionLost(f"WebSocket to {peer}: no answer to the closing handshake")
    if isinstance(_find(exc, _tws.ConnectionTimeout), _tws.ConnectionTimeout):
        return HandshakeFailed(f"WebSocket handshake with {peer}: no answer in time")
    if isinstance(_find(exc, _tws.HandshakeError), _tws.HandshakeError):
        return HandshakeFailed(f"WebSocket handshake with {peer} failed")
    closed = _find(exc, _tws.ConnectionClosed)
    if isinstance(closed, _tws.ConnectionClosed):
        reason = closed.reason
        if reason is None:
            return ConnectionLost(f"WebSocket to {peer} is closed")
        detail = f"code {reason.code} ({reason.name})"
        if reason.reason:
            detail += f": {reason.reason}"
        if reason.code == 1009:  # MESSAGE_TOO_BIG, sent by either end
            return FrameTooLarge(f"WebSocket to {peer} closed, a message was too big: {detail}")
        return ConnectionLost(f"WebSocket to {peer} closed: {detail}")
    return None


@contextmanager
def map_exceptions(peer: Address | str | None = None, *, handshake: bool = False) -> Iterator[None]:
    """Translate transport-level exceptions raised in the block into trouper's.

    * ``ssl.SSLError`` / ``ssl.CertificateError`` (also when wrapped in
      ``trio.BrokenResourceError``) → ``HandshakeFailed`` ("TLS handshake with
      tls://…: certificate verify failed: …");
    * a refused connection → ``ConnectionLost`` saying so;
    * ``OSError``, ``trio.BrokenResourceError``, ``trio.ClosedResourceError``
      → ``ConnectionLost``;
    * trio-websocket (when installed): a refused upgrade (``ConnectionRejected``)
      or another ``HandshakeError`` → ``HandshakeFailed``;
      ``DisconnectionTimeout`` and ``ConnectionClosed`` → ``ConnectionLost``
      (``FrameTooLarge`` for close code 1009, message too big).

    ``peer`` names the other end in messages; ``handshake`` says the block is
    a handshake (it only changes the wording). trouper errors pass through
    untouched, and anything that is not an ``Exception`` (``trio.Cancelled``,
    ``KeyboardInterrupt``) is never converted.
    """
    name = peer.url if isinstance(peer, Address) else (peer or "peer")
    try:
        yield
    except TrouperError:
        raise
    except Exception as exc:
        mapped = _translate(exc, name, handshake)
        if mapped is None:
            raise
        raise mapped from exc


# QUIC reports errors as close codes, not exceptions: a CONNECTION_CLOSE from
# the peer or one aioquic decided on (idle timeout, a TLS alert). RFC 9000
# puts TLS alerts at 0x100 + alert, and a handshake that ends any other way
# before it completes is an unreachable or unwilling peer, not a trust issue.
_QUIC_CRYPTO_ERROR = 0x100
_QUIC_NO_ERROR = 0


def map_quic_close(
    code: int, reason: str, peer: str, *, handshake: bool, by_us: bool
) -> TransportError | None:
    """The trouper error for a QUIC connection that ended with ``code``.

    None means a clean close by the peer, which readers see as EOF.
    """
    detail = f": {reason}" if reason else ""
    if _QUIC_CRYPTO_ERROR <= code < _QUIC_CRYPTO_ERROR + 0x100:
        phase = "handshake" if handshake else "session"
        return HandshakeFailed(f"TLS {phase} with {peer} failed (alert {code - 0x100}){detail}")
    if handshake:
        return ConnectionLost(f"QUIC handshake with {peer} did not complete{detail}")
    if code == _QUIC_NO_ERROR and not by_us and reason != "Idle timeout":
        return None
    if by_us:
        return ConnectionLost(f"QUIC connection to {peer} is closed{detail}")
    return ConnectionLost(f"QUIC connection to {peer} ended (code {code:#x}){detail}")
