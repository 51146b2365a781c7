"""The remote layer's TLS: the credentials its transports use, and reloading them.

Listeners and links hand ``Remoting.tls`` (a ``TLSCredentials``) to the
transports, which ask it for the current certificates per accepted
connection and per dial. ``reload_tls`` swaps them (read in a worker
thread), so rotating a certificate reaches new connections while the live
links, whose TLS sessions are already keyed, are not touched.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ..transports import TLSConfig, TLSCredentials

if TYPE_CHECKING:
    from ..runtime import Node

log = logging.getLogger("trouper.remote")

__all__ = ["RemoteTLS", "credentials"]


def credentials(config: Any) -> TLSCredentials | None:
    return None if config is None else TLSCredentials(config)


class RemoteTLS:
    """Mixed into ``Remoting``."""

    node: Node
    tls: TLSCredentials | None

    @property
    def binds(self) -> bool:
        """Whether handshakes bind to the TLS channel (``TLSConfig.dev()``)."""
        return self.tls is not None and self.tls.config.development

    async def reload_tls(self, tls: Any = None) -> str | None:
        """Read the certificate files again (or use ``tls``) for new
        connections; returns the new certificate's SHA-256 fingerprint."""
        if tls is not None and not isinstance(tls, TLSConfig):
            raise ConfigurationError(f"tls must be a trouper.TLSConfig, not {tls!r}")
        if self.tls is None:
            if tls is None:
                raise ConfigurationError(
                    f"node {self.node.id} has no TLS configuration to reload"
                    " (pass one: node.reload_tls(trouper.TLSConfig(...)))"
                )
            fresh = TLSCredentials(tls)
            material = await fresh.load()
            self.tls = fresh
        else:
            material = await self.tls.reload(tls)
        log.info(
            "node %s: TLS certificates reloaded (certificate sha256 %s); new connections use them",
            self.node.id,
            material.fingerprint,
        )
        return material.fingerprint
