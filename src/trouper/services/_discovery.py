"""Discovery: how nodes of a cluster that outgrew a list of seeds find each other.

``open_node(discovery="redis://host:port/db?cluster=NAME")`` keeps a
membership table in Redis (``_redis.py``), ``discovery="mdns://NAME"``
announces and browses on the LAN (``_mdns.py``). Either way a backend lists
the nodes it sees, and this module hands them to the remote layer's dial
logic: ``Remoting.discovered`` for a node listed (dialled once, as a node met
through gossip), ``Remoting.undiscovered`` for one no longer listed.

The URL is parsed here, before a node is built (a bad one is a
``ConfigurationError`` naming the problem); the backend runs in a supervised
system actor, ``/system/remote/discovery``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from typing import TYPE_CHECKING, Annotated, Protocol
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import attrs
import msgspec

from .._errors import ConfigurationError
from .._options import suggestion
from ..actors import Actor

if TYPE_CHECKING:
    from ..remote import Remoting

log = logging.getLogger("trouper.discovery")

#: Entries a backend takes from one listing; more are ignored (and logged).
MAX_ENTRIES = 1000
#: Addresses kept from one entry, and the longest address (as gossip keeps them).
MAX_ADDRESSES = 16
MAX_ADDRESS_LENGTH = 512

_CLUSTER = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")
_SCHEMES = ("redis", "mdns")


class Entry(msgspec.Struct, frozen=True):
    """One node as a discovery table lists it."""

    node: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    incarnation: int
    addresses: Annotated[list[str], msgspec.Meta(max_length=MAX_ADDRESSES)]


_entry_decoder = msgspec.json.Decoder(Entry)


def encode_entry(entry: Entry) -> bytes:
    return msgspec.json.encode(entry)


def decode_entry(raw: bytes) -> Entry | None:
    """An entry from the table, or None if it is not one (logged): another
    program's bytes must not stop this node from reading the others."""
    try:
        entry = _entry_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        log.warning("discovery: an entry that is not one was ignored: %s", exc)
        return None
    return Entry(entry.node, entry.incarnation, bounded(entry.addresses))


def bounded(addresses: list[str]) -> list[str]:
    return [a for a in addresses[:MAX_ADDRESSES] if len(a) <= MAX_ADDRESS_LENGTH]


# ------------------------------------------------------------------ URLs


@attrs.frozen
class RedisSpec:
    """``redis://[user:password@]host[:port][/db]?cluster=NAME[&ttl=SECONDS]``."""

    host: str
    port: int = 6379
    db: int = 0
    cluster: str = ""
    #: Seconds an entry lives without renewal; it is renewed every ttl/3.
    ttl: float = 10.0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def prefix(self) -> str:
        return f"trouper:{self.cluster}"


@attrs.frozen
class MdnsSpec:
    """``mdns://NAME[?interface=ADDRESS]``."""

    cluster: str
    #: An IPv4 address to announce and browse on; None: every interface.
    interface: str | None = None


DiscoverySpec = RedisSpec | MdnsSpec


def parse_discovery(url: object) -> DiscoverySpec:
    """What ``open_node(discovery=...)`` asks for; ``ConfigurationError``
    naming the problem if it is not a discovery URL this node can use."""
    if isinstance(url, RedisSpec | MdnsSpec):
        return url
    if not isinstance(url, str):
        raise ConfigurationError(f"discovery must be a URL string, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"discovery URL {_redacted(url)!r} is malformed: {exc}") from None
    url = _redacted(url)  # as errors show it
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"discovery URL {url!r}: unknown scheme {parts.scheme!r}"
            f"{suggestion(parts.scheme, _SCHEMES)}"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme == "redis":
        return _redis_spec(url, parts, port, query)
    _check_query(url, query, ("interface",))
    if port is not None or parts.path not in ("", "/"):
        raise ConfigurationError(f"discovery URL {url!r}: mdns://NAME takes no port or path")
    cluster = _cluster(url, unquote(parts.netloc))
    interface = query.get("interface")
    if interface is not None:
        try:
            ipaddress.IPv4Address(interface)
        except ValueError:
            raise ConfigurationError(
                f"discovery URL {url!r}: interface must be an IPv4 address, not {interface!r}"
            ) from None
    return MdnsSpec(cluster, interface)


def _redacted(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def _redis_spec(url: str, parts: SplitResult, port: int | None, query: dict[str, str]) -> RedisSpec:
    _check_query(url, query, ("cluster", "ttl"))
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"discovery URL {url!r} names no Redis host")
    db_text = parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise ConfigurationError(
            f"discovery URL {url!r}: the database must be a number, not {db_text!r}"
        )
    if "cluster" not in query:
        raise ConfigurationError(
            f"discovery URL {url!r} names no cluster: add ?cluster=NAME (nodes with the "
            "same name find each other)"
        )
    ttl = 10.0
    if "ttl" in query:
        try:
            ttl = float(query["ttl"])
        except ValueError:
            ttl = math.nan
        if not 0.1 <= ttl <= 3600:
            raise ConfigurationError(
                f"discovery URL {url!r}: ttl must be a number of seconds from 0.1 to 3600, "
                f"not {query['ttl']!r}"
            )
    username, password = parts.username, parts.password
    return RedisSpec(
        host=host,
        port=6379 if port is None else port,
        db=int(db_text),
        cluster=_cluster(url, query["cluster"]),
        ttl=ttl,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
    )


def _check_query(url: str, query: dict[str, str], valid: tuple[str, ...]) -> None:
    for name in query:
        if name not in valid:
            raise ConfigurationError(
                f"discovery URL {url!r}: unknown parameter {name!r}{suggestion(name, valid)}"
            )


def _cluster(url: str, name: str) -> str:
    if not _CLUSTER.fullmatch(name):
        raise ConfigurationError(
            f"discovery URL {url!r}: the cluster name must be 1 to 64 letters, digits, "
            f"'_', '.' or '-', not {name!r}"
        )
    return name


# ------------------------------------------------------------------ the actor


class Backend(Protocol):
    async def run(self) -> None:
        """Announce this node and report what it sees, until cancelled;
        an outage is logged and retried, never raised."""

    async def close(self) -> None:
        """Withdraw this node's entry (best effort, bounded in time)."""


class Listing:
    """What a backend saw last: node id -> entry. It reports each listing to
    the remote layer: every node listed is offered to its dial logic (which
    dials each once), and every node no longer listed is withdrawn."""

    def __init__(self, remoting: Remoting) -> None:
        self.remoting = remoting
        self.entries: dict[str, Entry] = {}

    def seen(self, entry: Entry) -> None:
        if entry.node == self.remoting.node.id:
            return
        if entry.node not in self.entries and len(self.entries) >= MAX_ENTRIES:
            log.warning("discovery: more than %d nodes listed; %s ignored", MAX_ENTRIES, entry.node)
            return
        self.entries[entry.node] = entry
        self.remoting.discovered(entry.node, entry.incarnation, entry.addresses, listed=True)

    def gone(self, node_id: str) -> None:
        entry = self.entries.pop(node_id, None)
        if entry is not None:
            log.info("discovery: node %s is no longer listed", node_id)
            self.remoting.undiscovered(node_id, entry.incarnation)

    def replace(self, entries: list[Entry]) -> None:
        """A whole listing (Redis): what it lacks is gone."""
        listed = {e.node for e in entries}
        for node_id in [n for n in self.entries if n not in listed]:
            self.gone(node_id)
        for entry in entries:
            self.seen(entry)


def own_entry(remoting: Remoting) -> Entry:
    return Entry(remoting.node.id, remoting.incarnation, bounded(list(remoting.addresses)))


class DiscoveryActor(Actor):
    """Runs one backend; ``on_stop`` withdraws this node's entry."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def on_start(self) -> None:
        self.ctx.start_soon(self.backend.run)

    async def on_stop(self) -> None:
        await self.backend.close()


async def start_discovery(remoting: Remoting, spec: DiscoverySpec) -> None:
    """Start discovery for a node whose remote layer has started."""
    backend: Backend
    if isinstance(spec, RedisSpec):
        from ._redis import RedisBackend

        backend = RedisBackend(remoting, spec)
    else:
        from ._mdns import MdnsBackend

        backend = MdnsBackend(remoting, spec)
    await remoting.node.kernel.spawn_system(
        "remote", DiscoveryActor, backend, segment="discovery", restart="permanent"
    )
