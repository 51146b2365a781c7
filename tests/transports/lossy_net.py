"""A simulated datagram network for the QUIC transport: seeded loss,
duplication, delay and reordering, on Trio's clock (so MockClock drives it).

It plugs in where the transport opens its UDP sockets
(``QuicTransport(network=net.open_endpoint)``); everything above the socket,
aioquic and trouper included, is the real code.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any

import trio

Addr = tuple[str, int]


@dataclass
class NetStats:
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delivered: int = 0


class FakeEndpoint:
    """Implements trouper.transports._quic_endpoint.Endpoint on the network."""

    def __init__(self, net: LossyNetwork, address: Addr, peer: Addr | None) -> None:
        self.net = net
        self.address = address
        self.peer = peer
        self.connected = peer is not None
        self.inbox: deque[tuple[bytes, Addr]] = deque()
        self.readable = trio.Event()
        self.closed = False

    @property
    def local_address(self) -> Addr:
        return self.address

    def send(self, datagrams: list[tuple[bytes, Any]]) -> None:
        for data, addr in datagrams:
            self.net.route(self.address, self.peer or (str(addr[0]), int(addr[1])), data)

    def receive_nowait(self) -> list[tuple[bytes, Any]]:
        batch = list(self.inbox)
        self.inbox.clear()
        return batch

    async def wait_readable(self) -> None:
        while not self.inbox:
            if self.closed:
                raise trio.ClosedResourceError("endpoint closed")
            self.readable = trio.Event()
            await self.readable.wait()

    def close(self) -> None:
        self.closed = True
        self.readable.set()
        self.net.endpoints.pop(self.address, None)


class LossyNetwork:
    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        seed: int,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.005,
    ) -> None:
        self.nursery = nursery
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.endpoints: dict[Addr, FakeEndpoint] = {}
        self.ports = iter(range(20000, 60000))
        self.stats = NetStats()

    def open_endpoint(self, family: int, *, bind: Any = None, connect: Any = None) -> FakeEndpoint:
        host = str(bind[0]) if bind is not None else "127.0.0.1"
        port = int(bind[1]) if bind is not None and bind[1] else next(self.ports)
        address = (host, port)
        if address in self.endpoints:
            raise OSError(98, "address in use")
        peer = (str(connect[0]), int(connect[1])) if connect is not None else None
        endpoint = self.endpoints[address] = FakeEndpoint(self, address, peer)
        return endpoint

    def route(self, source: Addr, destination: Addr, data: bytes) -> None:
        self.stats.sent += 1
        if self.rng.random() < self.loss:
            self.stats.dropped += 1
            return
        copies = 1
        if self.rng.random() < self.duplicate:
            self.stats.duplicated += 1
            copies = 2
        for _ in range(copies):
            delay = self.delay
            if self.rng.random() < self.reorder:
                # Held back long enough for later packets to overtake it.
                self.stats.reordered += 1
                delay += self.rng.uniform(self.delay, 4 * self.delay)
            self.nursery.start_soon(self._deliver, source, destination, data, delay)

    async def _deliver(self, source: Addr, destination: Addr, data: bytes, delay: float) -> None:
        await trio.sleep(delay)
        endpoint = self.endpoints.get(destination)
        if endpoint is None or (endpoint.peer is not None and endpoint.peer != source):
            return  # nobody there, or a connected socket filters other senders
        self.stats.delivered += 1
        endpoint.inbox.append((data, source))
        endpoint.readable.set()
