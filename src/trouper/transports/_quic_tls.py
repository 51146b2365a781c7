"""TLS for quic://: a ``TLSConfig`` turned into aioquic's configuration, and
the client-certificate check aioquic does not do by itself.

QUIC always runs TLS 1.3, so there is no plain-text variant and a server
always needs a certificate. aioquic (1.x) can *ask* a client for a
certificate only through a test-only flag on its TLS context, and never
verifies the certificate it gets (it checks the signature, not the chain).
Mutual TLS therefore takes two steps here: a ``QuicConnection`` subclass
that sets the flag once the TLS context exists, and ``check_client`` which
the session calls on ``HandshakeCompleted`` to verify the chain against the
configured CA before any application data is read. A client learns of a
refusal because it waits for the server's HANDSHAKE_DONE before returning
from ``connect``, and a refused client gets a CONNECTION_CLOSE instead.
"""

from __future__ import annotations

import ssl
from typing import Any

from aioquic import tls as aioquic_tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, QuicFrameType

from trouper._errors import ConfigurationError

from ._credentials import Material
from ._quic_recovery import ReorderTolerantConnection
from ._tls import ALPN_PROTOCOL, TLSConfig

__all__ = [
    "MutualTLSConnection",
    "check_client",
    "client_configuration",
    "server_configuration",
]

# Flow-control windows: aioquic's 1 MiB defaults cap a bulk stream at about
# 1 MiB per round trip (20 MiB/s at 50 ms); node links want more.
MAX_STREAM_DATA = 4 * 1024 * 1024
MAX_DATA = 16 * 1024 * 1024
_CRYPTO_ERROR = int(QuicErrorCode.CRYPTO_ERROR)


def _base(material: Material, *, is_client: bool, idle_timeout: float) -> QuicConfiguration:
    tls = material.config
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN_PROTOCOL],
        idle_timeout=idle_timeout,
        max_data=MAX_DATA,
        max_stream_data=MAX_STREAM_DATA,
        congestion_control_algorithm="cubic",
    )
    identity = material.identity  # read as tls:// reads it (see _pem)
    if identity is not None:
        config.certificate = identity.certificate
        config.certificate_chain = list(identity.chain)
        config.private_key = identity.private_key
    if tls.cafile is not None:
        try:
            config.load_verify_locations(cafile=str(tls.cafile))
            with open(tls.cafile, "rb"):  # aioquic reads it lazily: fail now instead
                pass
        except OSError as exc:
            raise ConfigurationError(f"cannot load TLS CA file {tls.cafile}: {exc}") from exc
    return config


def client_configuration(
    material: Material, host: str, *, idle_timeout: float
) -> QuicConfiguration:
    """The configuration for dialling ``host`` (verified like ``tls://``)."""
    tls = material.config
    config = _base(material, is_client=True, idle_timeout=idle_timeout)
    # Development mode: no CA can vouch for an ephemeral certificate; the
    # cookie handshake, bound to the channel, authenticates the peer.
    config.verify_mode = ssl.CERT_NONE if tls.development else ssl.CERT_REQUIRED
    # aioquic checks the name only when one is set; without check_hostname the
    # chain is still verified against the CA.
    config.server_name = host if tls.check_hostname else None
    return config


def server_configuration(material: Material, *, idle_timeout: float) -> QuicConfiguration:
    """The configuration for accepting connections; needs a certificate."""
    if material.identity is None:
        raise ConfigurationError(
            "quic:// needs a TLSConfig with a certificate to listen (QUIC is always TLS 1.3;"
            " TLSConfig.dev() makes one for development)"
        )
    return _base(material, is_client=False, idle_timeout=idle_timeout)


def wants_client_cert(tls: TLSConfig | None) -> bool:
    return tls is not None and tls.cafile is not None


class MutualTLSConnection(ReorderTolerantConnection):
    """A server connection that asks the client for a certificate."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        # The flag aioquic keeps "for test purposes"; without it no
        # CertificateRequest is sent. Checked by the mutual-TLS tests.
        self.tls._request_client_certificate = True


def check_client(quic: QuicConnection, tls: TLSConfig) -> str | None:
    """Verify the client's certificate chain; close and say why if it fails.

    Returns None when the client is acceptable, else the reason (the
    connection is then already closed with a TLS alert as the error code).
    """
    context: Any = quic.tls
    certificate = getattr(context, "_peer_certificate", None)
    chain = getattr(context, "_peer_certificate_chain", [])
    if certificate is None:
        if not tls.require_client_cert:
            return None
        return _refuse(quic, aioquic_tls.AlertDescription.certificate_required, "no certificate")
    try:
        aioquic_tls.verify_certificate(certificate=certificate, chain=chain, cafile=str(tls.cafile))
    except aioquic_tls.Alert as exc:
        return _refuse(quic, exc.description, str(exc) or type(exc).__name__)
    return None


def _refuse(quic: QuicConnection, alert: int, why: str) -> str:
    reason = f"client certificate refused: {why}"
    quic.close(
        error_code=_CRYPTO_ERROR + int(alert), frame_type=QuicFrameType.CRYPTO, reason_phrase=reason
    )
    return reason
