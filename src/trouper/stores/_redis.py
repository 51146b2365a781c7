"""``redis://host:port/db?prefix=P``: a store on a Redis server.

Every key the store writes starts with the URL's ``prefix`` (default
``trouper:store:``), so several stores (and the tests) share one database without
seeing each other. Under that prefix:

* ``log:<name>:seq`` — the log's id counter (``INCR``). ``trim`` never
  touches it, so ids keep increasing after a trim, a restart, or with
  several processes appending at once;
* ``log:<name>:stream`` — the records, as a Redis stream whose entry ids are
  ``<id>-0``. ``read`` is ``XRANGE`` from ``after_id + 1``, ``tail`` is
  ``XREVRANGE``, ``trim`` is an exact ``XTRIM MAXLEN``: each one command,
  logarithmic in the log's length. The stream refuses an id at or below its
  last one, a second guard that ids never go back;
* ``kv:<key>`` — a key-value entry, a Redis string (``SET ... PX`` for a
  TTL: Redis itself expires it, so an expired key reads as absent in
  ``get``, ``compare_and_set`` and fences alike).

Writes that read first (append, fenced append, compare-and-set) are Lua
scripts, atomic on the server, sent by ``EVALSHA`` with a fallback to
``EVAL`` when the server answers ``NOSCRIPT`` (after a restart or
``SCRIPT FLUSH``). The store owns one ``trouper.pools.redis`` pool
(``min``/``max`` URL options); its errors are ``StoreError`` subclasses,
``StoreUnavailable`` (retryable) while the server is away.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import attrs

from trouper.pools._redis import RedisPool, redis
from trouper.pools._redis_url import parse_redis_url

from . import _errors
from ._api import Store
from ._base import BaseStore
from ._errors import StoreError, StoreUnavailable

__all__ = ["RedisStore", "open_redis_store"]


@attrs.frozen
class _Script:
    source: str
    sha: str = attrs.field(init=False)

    @sha.default
    def _digest(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


# KEYS: seq, stream[, fence key]; ARGV: record[, token]. -1: the fence refused.
_APPEND = _Script("""
if #KEYS == 3 and redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
local id = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], string.format('%d-0', id), 'r', ARGV[1])
return id
""")

# KEYS: key; ARGV: has-expected ('0'/'1'), expected, has-new, new, ttl in ms or ''.
_CAS = _Script("""
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
""")


def _milliseconds(ttl: float | None) -> str:
    return "" if ttl is None else str(max(1, math.ceil(ttl * 1000)))


def _stale(message: str) -> StoreError:
    return _errors.StaleWriter(message)


def _entries(reply: Sequence[Any]) -> list[tuple[int, bytes]]:
    """``XRANGE`` entries ``[id, [field, value]]`` as ``(id, record)``."""
    return [
        (int(bytes(entry_id).partition(b"-")[0]), bytes(fields[1])) for entry_id, fields in reply
    ]


class RedisStore(BaseStore):
    """A store in one Redis database, under a key prefix. Open it with ``open_store(url)``."""

    backend = "redis"

    def __init__(self, pool: RedisPool, prefix: str) -> None:
        super().__init__()
        self.pool = pool
        self.prefix = prefix

    def _key(self, kind: str, name: str, suffix: str = "") -> bytes:
        # surrogatepass: any str the name checks accept is a valid key.
        return f"{self.prefix}{kind}:{name}{suffix}".encode("utf-8", "surrogatepass")

    @contextmanager
    def _no_member(self) -> Iterator[None]:
        # Callers of a store see StoreErrors only: a pool that found no
        # connection in time (trouper.PoolTimeout) means the server is away.
        try:
            yield
        except TimeoutError as exc:
            if isinstance(exc, StoreError):
                raise
            where = self.pool.spec.where
            raise StoreUnavailable(f"{where}: no connection to the server in time") from exc

    async def _call(self, *command: Any) -> Any:
        with self._no_member():
            return await self.pool.execute(*command)

    async def _script(self, script: _Script, keys: list[bytes], args: list[bytes | str]) -> Any:
        from coredis.exceptions import NoScriptError

        with self._no_member():
            async with self.pool.connection() as client:
                try:
                    return await client.evalsha(script.sha, keys, args)
                except NoScriptError:  # the server restarted or flushed its script cache
                    return await client.eval(script.source, keys, args)

    async def _do_append(
        self, log: str, record: bytes, fence: tuple[str, bytes] | None = None
    ) -> int:
        keys = [self._key("log", log, ":seq"), self._key("log", log, ":stream")]
        args: list[bytes | str] = [record]
        if fence is not None:
            keys.append(self._key("kv", fence[0]))
            args.append(fence[1])
        result = int(await self._script(_APPEND, keys, args))
        if result < 0:
            assert fence is not None
            raise _stale(
                f"append to {log!r} refused: {fence[0]!r} no longer holds this writer's token"
            )
        return result

    async def _do_tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        if n == 0:
            return []
        reply = await self._call(
            "XREVRANGE", self._key("log", log, ":stream"), "+", "-", "COUNT", n
        )
        return _entries(reply)[::-1]

    async def _do_read(self, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        if limit == 0:
            return []
        start = f"{after_id + 1}-0"
        reply = await self._call(
            "XRANGE", self._key("log", log, ":stream"), start, "+", "COUNT", limit
        )
        return _entries(reply)

    async def _do_trim(self, log: str, keep_last: int) -> int:
        stream = self._key("log", log, ":stream")
        return int(await self._call("XTRIM", stream, "MAXLEN", keep_last))

    async def _do_get(self, key: str) -> bytes | None:
        value = await self._call("GET", self._key("kv", key))
        return None if value is None else bytes(value)

    async def _do_put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if ttl is None:
            await self._call("SET", self._key("kv", key), value)
        else:
            await self._call("SET", self._key("kv", key), value, "PX", _milliseconds(ttl))

    async def _do_delete(self, key: str) -> bool:
        return int(await self._call("DEL", self._key("kv", key))) > 0

    async def _do_compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        args: list[bytes | str] = [
            "0" if expected is None else "1",
            expected or b"",
            "0" if new is None else "1",
            new or b"",
            _milliseconds(ttl),
        ]
        return int(await self._script(_CAS, [self._key("kv", key)], args)) == 1

    async def _do_close(self) -> None:
        # The pool belongs to open_redis_store's context, which drains it on
        # exit; closing the store only makes later calls fail fast.
        pass


def open_redis_store(url: str) -> AbstractAsyncContextManager[Store]:
    """``open_store`` factory for ``redis://`` URLs; a bad URL fails here."""
    spec = parse_redis_url(url)
    pool = redis(url)

    @asynccontextmanager
    async def manage() -> AsyncIterator[Store]:
        async with pool as connections, RedisStore(connections, spec.prefix) as store:
            yield store

    return manage()
