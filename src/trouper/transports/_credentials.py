"""``TLSCredentials``: the certificates a node uses now, swapped on reload.

A ``TLSConfig`` names files; what the transports need is what was read from
them: the SSL contexts for tls:// and wss://, the parsed identity for
quic://. ``Material`` holds one reading, built off the Trio loop (file I/O,
key generation) and never changed. ``TLSCredentials`` holds the current one
and swaps it whole on ``reload``: listeners ask for it per accepted
connection and dials per dial, so new connections get the new certificates
while live ones, whose TLS sessions are already keyed, carry on untouched.
A reading that fails (a missing file, a key that does not match) raises and
leaves the current material in place.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from dataclasses import dataclass

import trio

from trouper._errors import ConfigurationError

from ._binding import register_server_certificate
from ._pem import Identity
from ._tls import TLSConfig

__all__ = ["Material", "TLSCredentials", "TLSSource", "build_material", "credentials_for"]


@dataclass(frozen=True, slots=True, eq=False)
class Material:
    """One reading of a ``TLSConfig``: everything a connection needs."""

    config: TLSConfig
    identity: Identity | None
    client: ssl.SSLContext
    server: ssl.SSLContext | None  # None: no certificate, so no listening

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of this node's certificate (hex), or None without one."""
        if self.identity is None:
            return None
        return hashlib.sha256(self.identity.der).hexdigest()


def build_material(config: TLSConfig) -> Material:
    """Read ``config``'s files (or make a dev certificate) and build the
    contexts. Blocking: run it in a thread from async code."""
    identity = config.identity()
    client = config.client_context(identity)
    server = None if identity is None else config.server_context(identity)
    return Material(config, identity, client, server)


def _adopt(material: Material) -> Material:
    # On the loop, not in the worker thread that built it: the binding
    # registry is read by the loop's connections.
    if material.server is not None and material.identity is not None:
        register_server_certificate(material.server, material.identity.der)
    return material


class TLSCredentials:
    """The current ``Material`` of one ``TLSConfig``; see the module doc.

    Read lazily on first use when not ``load``-ed first (on the loop, as the
    transports always did for a bare ``TLSConfig``); ``load`` and ``reload``
    read in a worker thread.
    """

    def __init__(self, config: TLSConfig) -> None:
        if not isinstance(config, TLSConfig):
            raise ConfigurationError(f"tls must be a trouper.TLSConfig, not {config!r}")
        self._config = config
        self._material: Material | None = None
        #: How many times the material was swapped by ``reload``.
        self.reloads = 0

    def __repr__(self) -> str:
        return f"<TLSCredentials {self._config!r} reloads={self.reloads}>"

    @property
    def config(self) -> TLSConfig:
        return self._config

    @property
    def material(self) -> Material:
        if self._material is None:
            self._material = _adopt(build_material(self._config))
        return self._material

    def server_context(self) -> ssl.SSLContext:
        """The context for the next accepted connection."""
        server = self.material.server
        if server is None:
            raise ConfigurationError("a TLS server needs a certificate: set TLSConfig.certfile")
        return server

    async def load(self) -> Material:
        if self._material is None:
            material = await trio.to_thread.run_sync(build_material, self._config)
            if self._material is None:  # nobody read it lazily meanwhile
                self._material = _adopt(material)
        return self._material

    async def reload(self, config: TLSConfig | None = None) -> Material:
        """Read the files again (or ``config``'s) and use them for new
        connections. On any error the current material stays."""
        config = self._config if config is None else config
        if not isinstance(config, TLSConfig):
            raise ConfigurationError(f"tls must be a trouper.TLSConfig, not {config!r}")
        material = await trio.to_thread.run_sync(build_material, config)
        if material.server is None and self._material is not None and self._material.server:
            # Listeners keep asking for a server context: never take it away.
            raise ConfigurationError(
                "the new TLSConfig has no certificate, and this node serves TLS with its"
                " current one (set certfile, or use TLSConfig.dev())"
            )
        # Swapped on the loop, in one assignment: a dial or an accept sees
        # either the old material or the new one, never a mix.
        self._config, self._material = config, _adopt(material)
        self.reloads += 1
        return material


#: What transports accept as ``tls=``: a config (read once and kept), or the
#: credentials a node holds (and may reload).
TLSSource = TLSConfig | TLSCredentials


@functools.lru_cache(maxsize=32)
def _shared(config: TLSConfig) -> TLSCredentials:
    return TLSCredentials(config)


def credentials_for(tls: TLSSource | None) -> TLSCredentials:
    """The credentials to use for ``tls``: itself, or those kept per config
    (read once: the files are not read again per connection)."""
    if isinstance(tls, TLSCredentials):
        return tls
    return _shared(TLSConfig() if tls is None else tls)
