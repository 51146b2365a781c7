"""TLS settings shared by every TLS-speaking transport (tls://, wss://, quic://).

One frozen value describes both sides of a node, because a cluster node is
both a server (peers dial it) and a client (it dials peers) and mutual TLS
wants the same certificate in both roles.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from trouper._errors import ConfigurationError

from ._pem import Identity, StrPath, ephemeral_identity, load_identity

__all__ = ["ALPN_PROTOCOL", "TLSConfig"]

# Negotiated on every connection: a TLS server that is not a trouper node (or
# a trouper node speaking another wire version) fails the handshake cleanly
# instead of receiving frames it cannot parse.
ALPN_PROTOCOL = "trouper/1"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Certificates and policy for TLS connections.

    ``certfile``/``keyfile``: this node's certificate chain and key (required
    to serve; optional to connect, but required to pass mutual TLS), PEM.
    The certificate comes first in ``certfile``, then any intermediates; the
    key may be in ``certfile`` too (leave ``keyfile`` None or give the same
    path) and must not be encrypted. Every transport reads them alike.
    ``cafile``: the CA that peers' certificates must chain to. A server with a
    CA asks clients for a certificate, and with ``require_client_cert`` (the
    default) refuses clients without one: mutual TLS by default. A client
    without a CA trusts the system store.
    ``check_hostname``: the server certificate must name the host dialled;
    turn it off for clusters whose certificates carry node names, not hosts.
    ``development``: set by ``TLSConfig.dev()`` (see there); never with files.
    """

    certfile: StrPath | None = None
    keyfile: StrPath | None = None
    cafile: StrPath | None = None
    require_client_cert: bool = True
    check_hostname: bool = True
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    development: bool = False

    def __post_init__(self) -> None:
        if self.development and (self.certfile or self.keyfile or self.cafile):
            raise ConfigurationError(
                "TLSConfig.dev() makes its own certificate: it takes no certfile, keyfile"
                " or cafile (use TLSConfig(certfile=..., cafile=...) for real certificates)"
            )

    @classmethod
    def dev(cls) -> TLSConfig:
        """Development mode: TLS with no certificate files, for a laptop.

        Each node makes an ephemeral self-signed certificate when it starts
        (and a new one on ``node.reload_tls()``). Peers' certificates are not
        verified by any CA: nodes authenticate each other by the cookie
        handshake alone, which is bound to the TLS channel (the hash of the
        server's certificate as each end sees it is mixed into the proofs),
        so a man in the middle who terminates TLS fails the handshake. The
        traffic is encrypted; but anyone holding the cookie is trusted, and
        there is no revocation or identity beyond the cookie. For
        development only: give production clusters certificates from a CA.
        Every node of the cluster must use ``dev()``.
        """
        return cls(require_client_cert=False, check_hostname=False, development=True)

    @classmethod
    def from_dir(
        cls,
        path: StrPath,
        name: str = "node",
        *,
        require_client_cert: bool = True,
        check_hostname: bool = True,
    ) -> TLSConfig:
        """The config for ``name`` in a directory written by ``trouper certs``.

        That layout is ``ca.pem`` plus ``NAME.pem`` / ``NAME-key.pem``;
        ``check_hostname`` stays on: ``trouper certs`` puts the hosts in the
        certificates.
        """
        directory = Path(path)
        files = (directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}-key.pem")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigurationError(
                f"TLS files missing: {', '.join(missing)} (create them with `trouper certs {path}`)"
            )
        ca, cert, key = files
        return cls(
            certfile=cert,
            keyfile=key,
            cafile=ca,
            require_client_cert=require_client_cert,
            check_hostname=check_hostname,
        )

    def identity(self) -> Identity | None:
        """Read (or, in development mode, make) this node's certificate and key.

        File I/O, or key generation: callers keep the result (see
        ``TLSCredentials``) rather than call this per connection.
        """
        if self.development:
            return ephemeral_identity()
        return load_identity(self.certfile, self.keyfile)

    def server_context(self, identity: Identity | None = None) -> ssl.SSLContext:
        """An ``SSLContext`` for accepting connections (``identity``: one
        already read by ``identity()``; read now when not given)."""
        if self.certfile is None and not self.development:
            raise ConfigurationError("a TLS server needs a certificate: set TLSConfig.certfile")
        ctx = self._base(ssl.PROTOCOL_TLS_SERVER, identity)
        if self.cafile is not None:
            self._load_ca(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        # No session resumption between nodes, so no tickets: in TLS 1.3 the
        # server writes them *after* the handshake, and a client that hangs up
        # right away would turn that write into a spurious broken-pipe error.
        ctx.num_tickets = 0
        return ctx

    def client_context(self, identity: Identity | None = None) -> ssl.SSLContext:
        """An ``SSLContext`` for dialling a peer."""
        ctx = self._base(ssl.PROTOCOL_TLS_CLIENT, identity)  # CERT_REQUIRED + check_hostname
        ctx.check_hostname = self.check_hostname
        if self.development:
            # No CA can vouch for an ephemeral certificate: the cookie
            # handshake, bound to this channel, authenticates the peer.
            ctx.verify_mode = ssl.CERT_NONE
        elif self.cafile is not None:
            self._load_ca(ctx)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return ctx

    def _base(self, protocol: int, identity: Identity | None) -> ssl.SSLContext:
        if self.minimum_version < ssl.TLSVersion.TLSv1_2:
            raise ConfigurationError("TLS versions below 1.2 are not supported")
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = self.minimum_version
        # Renegotiation is an old attack surface and nothing here needs it.
        ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
        ctx.set_alpn_protocols([ALPN_PROTOCOL])
        # Read and checked by the loader quic:// uses too (see _pem), so all
        # transports accept the same files and word their problems the same.
        if identity is None:
            identity = self.identity()
        if identity is not None:
            identity.load_into(ctx)
        return ctx

    def _load_ca(self, ctx: ssl.SSLContext) -> None:
        try:
            ctx.load_verify_locations(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load TLS CA file {self.cafile}: {exc}") from exc
