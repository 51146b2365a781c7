"""Discovery through a membership table in Redis (as Orleans keeps one).

Each node writes its entry (``Entry``: node id, incarnation, addresses) under
``trouper:<cluster>:member:<node>`` with a TTL and renews it every ttl/3; the
set ``trouper:<cluster>:members`` indexes the entries. Each round a node
renews its own entry, then reads the others: an id whose entry has expired
(its node stopped renewing it: killed, or cut off) is dropped from the index
and from the node's listing, so nothing dials it any more.

Redis is reached through coredis, which runs on Trio natively. Every call
goes through ``redis_errors``, the one edge where coredis and OS errors
become ``DiscoveryUnavailable``: an outage is logged and retried with
backoff, and never stops the node (its links stay up meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._errors import DiscoveryUnavailable
from ..supervisors import Backoff
from ._discovery import MAX_ENTRIES, Entry, Listing, decode_entry, encode_entry, own_entry

if TYPE_CHECKING:
    from ..remote import Remoting
    from ._discovery import RedisSpec

log = logging.getLogger("trouper.discovery")

#: After a failed round: retry soon, then every five seconds at most.
RETRY = Backoff(initial=0.2, maximum=5.0, jitter=0.2)
#: The longest one Redis command may take (connect, or send and answer).
COMMAND_TIMEOUT = 2.0


@contextmanager
def redis_errors(spec: RedisSpec) -> Iterator[None]:
    """Turn what coredis and the OS raise (alone, or in the exception group
    coredis's connection pool raises) into ``DiscoveryUnavailable``.
    Cancellation and programming errors pass through untouched."""
    import coredis.exceptions

    where = f"redis://{spec.host}:{spec.port}/{spec.db}"
    failures = (coredis.exceptions.RedisError, OSError, trio.TooSlowError)
    try:
        yield
    except failures as exc:
        raise DiscoveryUnavailable(f"Redis at {where}: {exc}") from exc
    except BaseExceptionGroup as group:
        matched, rest = group.split(failures)
        if matched is None or rest is not None:
            raise
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise DiscoveryUnavailable(f"Redis at {where}: {first}") from group


class RedisBackend:
    def __init__(self, remoting: Remoting, spec: RedisSpec) -> None:
        self.remoting = remoting
        self.spec = spec
        self.listing = Listing(remoting)
        self.key = f"{spec.prefix}:member:{remoting.node.id}"
        self.index = f"{spec.prefix}:members"
        #: Rounds done, and rounds that failed (the table was unreachable).
        self.rounds = 0
        self.failures = 0
        #: The running loop's scope, and its end: ``close`` stops the loop
        #: before it deletes the entry, so no round in flight writes it back.
        self._scope: trio.CancelScope | None = None
        self._ended = trio.Event()

    def _client(self) -> Any:
        import coredis

        spec = self.spec
        return coredis.Redis(
            host=spec.host,
            port=spec.port,
            db=spec.db,
            username=spec.username,
            password=spec.password,
            connect_timeout=COMMAND_TIMEOUT,
            stream_timeout=COMMAND_TIMEOUT,
        )

    async def run(self) -> None:
        self._scope, self._ended = trio.CancelScope(), trio.Event()
        try:
            with self._scope:
                await self._loop()
        finally:
            self._ended.set()

    async def _loop(self) -> None:
        rng = self.remoting.node.kernel.rng
        attempt = 0
        while True:
            try:
                with redis_errors(self.spec):
                    async with self._client() as client:
                        while True:
                            await self._round(client)
                            attempt = 0
                            await trio.sleep(self.spec.ttl / 3)
            except DiscoveryUnavailable as exc:
                self.failures += 1
                # The first failure of an outage is worth a warning; the
                # retries that follow it are not.
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "node %s: discovery: %s; retrying", self.remoting.node.id, exc)
            await trio.sleep(RETRY.delay(attempt, rng))
            attempt += 1

    async def _round(self, client: Any) -> None:
        """Renew this node's entry, then read the table."""
        ttl_ms = max(100, int(self.spec.ttl * 1000))
        own = encode_entry(own_entry(self.remoting))
        with trio.fail_after(COMMAND_TIMEOUT * 4):
            await client.set(self.key, own, px=ttl_ms)
            await client.sadd(self.index, [self.remoting.node.id])
            ids = sorted(_text(i) for i in await client.smembers(self.index))[:MAX_ENTRIES]
            keys = [f"{self.spec.prefix}:member:{i}" for i in ids]
            values = await client.mget(keys) if keys else []
            expired = [i for i, v in zip(ids, values, strict=True) if v is None]
            if expired:
                await client.srem(self.index, expired)
        entries: list[Entry] = []
        for value in values:
            entry = None if value is None else decode_entry(_bytes(value))
            if entry is not None:
                entries.append(entry)
        self.listing.replace(entries)
        self.rounds += 1

    async def close(self) -> None:
        """Withdraw the entry, so that others stop listing this node at once
        rather than after its TTL; bounded, and quiet if Redis is away."""
        with trio.move_on_after(COMMAND_TIMEOUT, shield=True):
            if self._scope is not None:
                self._scope.cancel()
                await self._ended.wait()
            try:
                with redis_errors(self.spec):
                    async with self._client() as client:
                        await client.delete([self.key])
                        await client.srem(self.index, [self.remoting.node.id])
            except DiscoveryUnavailable as exc:
                log.info("node %s: discovery entry left to expire: %s", self.remoting.node.id, exc)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
