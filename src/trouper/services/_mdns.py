"""Discovery on a LAN: zeroconf (mDNS/DNS-SD) announcement and browsing.

Each node registers a ``_trouper._tcp.local.`` service whose TXT record
carries its cluster name, node id, incarnation and addresses, and browses
for the others. Zeroconf runs asyncio in threads of its own: this module
uses only its synchronous API, through ``trio.to_thread``, and its browser's
callbacks (on a zeroconf thread) are relayed to Trio with the run's token
into a bounded channel. A node that stops announcing (its goodbye, or its
record's TTL running out) is removed and no longer dialled.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from .._errors import DiscoveryUnavailable
from ..supervisors import Backoff
from ._discovery import MAX_ENTRIES, Entry, Listing, bounded, own_entry

if TYPE_CHECKING:
    from ..remote import Remoting
    from ._discovery import MdnsSpec

log = logging.getLogger("trouper.discovery")

SERVICE_TYPE = "_trouper._tcp.local."
#: Browser events waiting for the Trio side; more are dropped (counted) and
#: the periodic re-browse finds those services again.
MAX_EVENTS = 256
#: How long to wait for a service's details (milliseconds, zeroconf's unit).
INFO_TIMEOUT_MS = 3000
RETRY = Backoff(initial=0.5, maximum=10.0, jitter=0.2)
#: A TXT string (key=value) is at most 255 bytes; the whole record is kept
#: within one ordinary packet.
_TXT_VALUE = 250
_TXT_BUDGET = 1200


def instance_name(cluster: str, node_id: str) -> str:
    """A DNS-SD instance label of at most 63 bytes, unique per cluster and node."""
    digest = hashlib.sha256(f"{cluster}\0{node_id}".encode()).hexdigest()[:12]
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in node_id)[:48]
    return f"{safe}-{digest}.{SERVICE_TYPE}"


def properties(cluster: str, entry: Entry) -> dict[str, str]:
    """The TXT record announcing ``entry``: addresses that do not fit a TXT
    string, or the record's budget, are left out (the first ones matter most:
    a peer dials the first)."""
    props = {"cluster": cluster, "node": entry.node, "inc": str(entry.incarnation)}
    room = _TXT_BUDGET - sum(len(k) + len(v.encode()) + 2 for k, v in props.items())
    for address in entry.addresses:
        size = len(address.encode()) + 5
        if size - 5 > _TXT_VALUE or size > room:
            continue
        props[f"a{len(props) - 3}"] = address
        room -= size
    return props


def entry_of(cluster: str, props: dict[bytes, bytes | None]) -> Entry | None:
    """The entry a TXT record announces, or None if it is not one of this
    cluster's (another cluster, another program, or malformed)."""
    text = {
        k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
        for k, v in props.items()
    }
    if text.get("cluster") != cluster or not text.get("node"):
        return None
    try:
        incarnation = int(text.get("inc", ""))
    except ValueError:
        return None
    node = text["node"][:256]
    addresses = [text[f"a{i}"] for i in range(16) if f"a{i}" in text]
    return Entry(node, incarnation, bounded(addresses))


class MdnsBackend:
    def __init__(self, remoting: Remoting, spec: MdnsSpec) -> None:
        self.remoting = remoting
        self.spec = spec
        self.listing = Listing(remoting)
        #: Service name -> node id, to know who a removal concerns.
        self.names: dict[str, str] = {}
        #: Browser events dropped at a full channel.
        self.dropped = 0

    async def run(self) -> None:
        rng = self.remoting.node.kernel.rng
        attempt = 0
        while True:
            try:
                await self._run_once()
            except DiscoveryUnavailable as exc:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "node %s: discovery: %s; retrying", self.remoting.node.id, exc)
            await trio.sleep(RETRY.delay(attempt, rng))
            attempt += 1

    async def _run_once(self) -> None:
        send, receive = trio.open_memory_channel[tuple[str, str]](MAX_EVENTS)
        token = trio.lowlevel.current_trio_token()

        def relay(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
            # On a zeroconf thread: hand the event to Trio, which only puts it
            # in the channel (or drops it there, counted, when it is full).
            try:
                trio.from_thread.run_sync(_offer, send, (name, state_change.name), trio_token=token)
            except trio.RunFinishedError:
                pass

        def _offer(
            channel: trio.MemorySendChannel[tuple[str, str]], event: tuple[str, str]
        ) -> None:
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.dropped += 1

        zc, browser = await trio.to_thread.run_sync(self._open, relay)
        try:
            async with receive:
                async for name, state in receive:
                    await self._event(zc, name, state)
        finally:
            with trio.CancelScope(shield=True):
                send.close()
                await trio.to_thread.run_sync(_close, zc, browser)

    def _open(self, relay: Any) -> tuple[Any, Any]:
        """In a worker thread: start zeroconf, announce this node, browse."""
        from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

        entry = own_entry(self.remoting)
        interfaces: Any = [self.spec.interface] if self.spec.interface else None
        try:
            if interfaces is None:
                zc = Zeroconf(ip_version=IPVersion.V4Only)
            else:
                zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as exc:
            raise DiscoveryUnavailable(f"mDNS: cannot open its sockets: {exc}") from exc
        try:
            info = ServiceInfo(
                SERVICE_TYPE,
                instance_name(self.spec.cluster, entry.node),
                addresses=[socket.inet_aton(a) for a in _ipv4(entry.addresses, self.spec)],
                port=_port(entry.addresses),
                properties=properties(self.spec.cluster, entry),
            )
            zc.register_service(info)
            browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[relay])
        except BaseException as exc:
            zc.close()
            if isinstance(exc, Exception):
                raise DiscoveryUnavailable(f"mDNS: cannot announce this node: {exc}") from exc
            raise
        return zc, browser

    async def _event(self, zc: Any, name: str, state: str) -> None:
        if state == "Removed":
            node_id = self.names.pop(name, None)
            if node_id is not None:
                self.listing.gone(node_id)
            return
        info = await trio.to_thread.run_sync(
            zc.get_service_info, SERVICE_TYPE, name, INFO_TIMEOUT_MS
        )
        if info is None:
            return
        entry = entry_of(self.spec.cluster, info.properties)
        if entry is None:
            return
        if name not in self.names and len(self.names) >= MAX_ENTRIES:
            return  # bounded as the listing is
        self.names[name] = entry.node
        self.listing.seen(entry)

    async def close(self) -> None:
        """Unregistering is part of closing zeroconf (``_run_once``'s
        ``finally``), which says goodbye on the LAN."""


def _close(zc: Any, browser: Any) -> None:
    browser.cancel()
    zc.unregister_all_services()
    zc.close()


def _ipv4(addresses: list[str], spec: MdnsSpec) -> list[str]:
    """The IPv4 address for the service's A record (DNS-SD wants one; peers
    dial the URLs of the TXT record): the first listen address's host if it
    is an IPv4 literal, else the interface, else none."""
    for address in addresses:
        try:
            host = urlsplit(address).hostname or ""
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            continue
        if not ip.is_unspecified:
            return [str(ip)]
    return [spec.interface] if spec.interface else []


def _port(addresses: list[str]) -> int:
    """The port of the first address (DNS-SD wants one; the TXT record has them all)."""
    for address in addresses:
        tail = address.rsplit(":", 1)[-1].split("/", 1)[0]
        if tail.isdigit() and 0 < int(tail) < 65536:
            return int(tail)
    return 9
