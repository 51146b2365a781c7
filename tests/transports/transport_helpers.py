"""Helpers for the transport tests: certificates, a background listener, echo."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio
import trustme

from trouper.transports import Address, Handler, TLSConfig, Transport, parse_address


@asynccontextmanager
async def serving(
    transport: Transport, url: str, handler: Handler, tls: TLSConfig | None = None
) -> AsyncIterator[Address]:
    """Run ``transport.serve`` in the background; yield the bound address."""
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(transport.serve, parse_address(url), handler, tls=tls))
        yield parse_address(bound)
        nursery.cancel_scope.cancel()


async def echo(stream: trio.abc.Stream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


async def receive_until_closed(stream: trio.abc.Stream) -> bytes:
    """Everything until EOF; a broken connection counts as closed too."""
    data = bytearray()
    try:
        async for chunk in stream:
            data += chunk
    except trio.BrokenResourceError:
        pass
    return bytes(data)


class Pki:
    """A trustme CA with helpers writing TLSConfigs to a temporary directory."""

    def __init__(self, directory: Path, name: str = "ca") -> None:
        self.ca = trustme.CA()
        self.dir = directory
        self.name = name
        self.cafile = directory / f"{name}.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))

    def config(
        self,
        identity: str | None,
        *,
        with_ca: bool = True,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1"),
        require_client_cert: bool = True,
        check_hostname: bool = True,
    ) -> TLSConfig:
        """A config with a fresh certificate for ``identity`` (None: no cert)."""
        certfile = None
        if identity is not None:
            certfile = self.dir / f"{self.name}-{identity}.pem"
            cert = self.ca.issue_cert(*hosts, common_name=identity)
            cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        return TLSConfig(
            certfile=certfile,
            cafile=self.cafile if with_ca else None,
            require_client_cert=require_client_cert,
            check_hostname=check_hostname,
        )


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll until ``predicate()`` holds (callers bound it with fail_after)."""
    while True:
        if predicate():
            return
        await trio.sleep(0.01)
