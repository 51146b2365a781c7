"""Transport addresses: ``scheme://host:port[/path]`` URLs, parsed once.

Every address in trouper is a URL so that one string in a config file, a
seed list or a gossip message says both *where* a node is and *how* to reach
it; the scheme picks the transport from the registry.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from trouper._errors import ConfigurationError

__all__ = ["SCHEMES", "Address", "parse_address"]

# Every scheme the design knows, registered or not: an unknown scheme is a
# typo, a known-but-unregistered one is a missing extra (reported later, by
# ``get_transport``, which knows what is installed).
SCHEMES = frozenset({"tcp", "tls", "quic", "ws", "wss"})
_PATH_SCHEMES = frozenset({"ws", "wss"})
# WebSocket URLs may omit the port like browsers do; the raw transports may
# not, because there is no well-known trouper port to fall back to.
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?$")


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed transport address. ``host`` is stored without IPv6 brackets."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        """The canonical URL; ``parse_address(a.url) == a`` always holds."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def with_port(self, port: int) -> Address:
        """The same address on another port (e.g. once port 0 is bound)."""
        return dataclasses.replace(self, port=port)

    def __str__(self) -> str:
        return self.url


def _bad(url: object, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"invalid transport address {url!r}: {why} "
        "(expected e.g. tcp://host:port, tls://[::1]:port or ws://host:port/path)"
    )


def _check_host(url: str, host: str) -> str:
    if not host:
        raise _bad(url, "missing host")
    if ":" in host:  # only an IPv6 literal can contain a colon here
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(url, f"{host!r} is not a valid IPv6 address") from None
        return host
    if not _HOSTNAME.match(host):
        raise _bad(url, f"{host!r} is not a valid host name or IP address")
    return host


def parse_address(url: str) -> Address:
    """Parse a transport URL into an :class:`Address`.

    Accepts ``tcp://``, ``tls://`` and ``quic://`` with ``host:port``, and
    ``ws://`` / ``wss://`` with an optional path (default ``/``). IPv6 hosts
    are written in brackets. Port 0 is accepted: it means "any free port"
    when listening. Anything else raises ``ConfigurationError`` saying why.
    """
    if not isinstance(url, str):
        raise _bad(url, f"expected a str, got {type(url).__name__}")
    if any(c.isspace() for c in url):
        raise _bad(url, "whitespace is not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when not a number or out of range
    except ValueError as exc:
        raise _bad(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise _bad(url, "missing scheme")
    if scheme not in SCHEMES:
        raise _bad(url, f"unknown scheme {scheme!r}; known: {', '.join(sorted(SCHEMES))}")
    if parts.username is not None or parts.password is not None:
        raise _bad(url, "user info is not allowed")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _bad(url, "a query or fragment is not allowed")
    host = _check_host(url, parts.hostname or "")
    if port is None:
        if scheme not in _DEFAULT_PORTS:
            raise _bad(url, "missing port")
        port = _DEFAULT_PORTS[scheme]
    path = parts.path
    if scheme in _PATH_SCHEMES:
        path = path or "/"
    elif path not in ("", "/"):
        raise _bad(url, f"a path is only allowed for ws:// and wss://, not {scheme}://")
    else:
        path = ""
    return Address(scheme, host, port, path)
