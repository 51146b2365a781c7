"""The certificate a TLS channel was made with, to bind the cookie handshake to.

``TLSConfig.dev()`` verifies no certificate, so the cookie handshake alone
authenticates peers; it must then be bound to the channel it runs on, or a
man in the middle could relay it between two TLS sessions of his own. RFC
9266's ``tls-exporter`` would be the binding of choice, but neither of our
TLS stacks exposes keying material: Python 3.11's ``ssl`` offers only
``get_channel_binding("tls-unique")`` (undefined for TLS 1.3, which quic://
always is and tls:// usually is), and aioquic 1.x has no exporter at all.
So the binding is RFC 5929's ``tls-server-end-point``: a hash of the
server's certificate as this end saw it on the channel. The client hashes
what it received, the server what it sent; a man in the middle cannot
present the server's certificate without its private key, so the two ends
of a relayed connection hash different certificates and their cookie
proofs do not match.
"""

from __future__ import annotations

import hashlib
import ssl
import weakref
from typing import Any

import trio

__all__ = [
    "channel_binding",
    "register_server_certificate",
    "server_certificate",
    "set_server_certificate",
]

_LABEL = b"tls-server-end-point:"
# What a listener's context presents (ssl cannot tell a server its own
# certificate), and what wrapping streams (WebSocket) inherit from the TLS
# stream under them. Weak: they go with their contexts and streams.
_OWN: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()
_STREAMS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def register_server_certificate(context: ssl.SSLContext, der: bytes) -> None:
    _OWN[context] = der


def set_server_certificate(stream: trio.abc.Stream, der: bytes) -> None:
    """Record that ``stream`` runs over a channel with this server certificate."""
    _STREAMS[stream] = der


def server_certificate(stream: trio.abc.Stream) -> bytes | None:
    """The server's certificate (DER) on ``stream``'s TLS channel, as this
    end saw it; None for a stream with no TLS under it (tcp://, ws://)."""
    der = _STREAMS.get(stream)
    if der is not None:
        return der
    if isinstance(stream, trio.SSLStream):
        if stream.server_side:
            return _OWN.get(stream.context)
        peer: bytes | None = stream.getpeercert(binary_form=True)
        return peer
    getter = getattr(stream, "server_certificate", None)  # quic://: QuicStream
    if callable(getter):
        value = getter()
        return value if isinstance(value, bytes) else None
    return None


def channel_binding(stream: trio.abc.Stream) -> bytes | None:
    """``tls-server-end-point`` binding data for ``stream`` (see the module doc)."""
    der = server_certificate(stream)
    if der is None:
        return None
    return _LABEL + hashlib.sha256(der).digest()
