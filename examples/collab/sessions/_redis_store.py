"""Sessions in Redis, in AetherFlow's layout (every key under the URL's
``prefix``, empty by default):

* ``session:{id}``: a HASH (id, user, connection, created, last_heartbeat,
  ttl, data as JSON, node: the owner of its actor) with a ``PEXPIRE`` of the
  session's TTL, renewed by every heartbeat;
* ``sessions:user:{user}`` and ``sessions:conn:{conn}``: SETs of ids;
* ``sessions:active``: a ZSET of ids scored by expiry time (ms, Redis's own
  ``TIME``, so it agrees with ``PEXPIRE`` whatever the nodes' clocks say):
  ``ZRANGEBYSCORE -inf now`` is exactly the sessions that may have expired,
  which is what makes the sweep cheap;
* ``sessions:meta``: a HASH, id -> "user\\nconnection", without TTL: what the
  sweep needs to find the index entries once the record has expired.

Every write is one Lua script (atomic), sent with ``EVALSHA`` and resent
with ``EVAL`` after ``NOSCRIPT``. The scripts build index key names from the
prefix, so they assume one Redis server (not Redis Cluster). Errors: the
pool's (``StoreError`` family); a pool that lends no connection in time is
``StoreUnavailable``.
"""

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trouper
import trouper.pools
from trouper.stores import StoreError, StoreUnavailable

from ._record import SessionRecord
from ._store import CreateRefused, WriteOutcome

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Removes one session's index entries, given its meta value; used by REMOVE and SWEEP.
_UNINDEX = """
local function unindex(p, id, m)
  local nl = string.find(m, '\\n', 1, true)
  redis.call('SREM', p .. 'sessions:user:' .. string.sub(m, 1, nl - 1), id)
  redis.call('SREM', p .. 'sessions:conn:' .. string.sub(m, nl + 1), id)
  redis.call('ZREM', p .. 'sessions:active', id)
  redis.call('HDEL', p .. 'sessions:meta', id)
  return string.sub(m, 1, nl - 1)
end
"""

# KEYS: hash, user set, conn set, active, meta. ARGV: prefix, id, user, conn,
# created, ttl, ttl ms, data, owner, max per user. {1, id}: created;
# {0, id}: that live session of the same user holds the connection;
# {-1, id}: another user's does; {-2, n}: the user has n live sessions.
_CREATE = (
    _NOW_MS
    + """
local p = ARGV[1]
for _, other in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local owner = redis.call('HGET', p .. 'session:' .. other, 'user')
  if owner then
    if owner == ARGV[3] then return {0, other} end
    return {-1, other}
  end
end
local live = 0
for _, other in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  live = live + redis.call('EXISTS', p .. 'session:' .. other)
end
if live >= tonumber(ARGV[10]) then return {-2, tostring(live)} end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'user', ARGV[3], 'connection', ARGV[4],
  'created', ARGV[5], 'last_heartbeat', ARGV[5], 'ttl', ARGV[6], 'data', ARGV[8],
  'node', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[3] .. '\\n' .. ARGV[4])
return {1, ARGV[2]}
"""
)

# KEYS: hash, active. ARGV: id, owner, last_heartbeat, ttl, ttl ms, data.
# 1 written, 0 gone, -1 owned by another node.
_WRITE = (
    _NOW_MS
    + """
local node = redis.call('HGET', KEYS[1], 'node')
if not node then return 0 end
if node ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'last_heartbeat', ARGV[3], 'ttl', ARGV[4], 'data', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
return 1
"""
)

# KEYS: hash. ARGV: expected owner, new owner.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'node', ARGV[2])
return 1
"""

# KEYS: hash, meta. ARGV: prefix, id. The user if this call removed the meta entry.
_REMOVE = (
    _UNINDEX
    + """
redis.call('DEL', KEYS[1])
local m = redis.call('HGET', KEYS[2], ARGV[2])
if not m then return false end
return unindex(ARGV[1], ARGV[2], m)
"""
)

# KEYS: active, meta. ARGV: prefix, batch. {id1, user1, id2, user2, ...}
_SWEEP = (
    _NOW_MS
    + _UNINDEX
    + """
local ended = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  if redis.call('EXISTS', ARGV[1] .. 'session:' .. id) == 0 then
    local m = redis.call('HGET', KEYS[2], id)
    if m then
      table.insert(ended, id)
      table.insert(ended, unindex(ARGV[1], id, m))
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return ended
"""
)


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "surrogatepass") if not isinstance(value, str) else value


class RedisSessionStore:
    def __init__(self, pool: trouper.pools.RedisPool, prefix: str) -> None:
        self.pool = pool
        self.prefix = prefix

    def _key(self, name: str) -> bytes:
        return (self.prefix + name).encode("utf-8", "surrogatepass")

    @contextmanager
    def _edge(self) -> Iterator[None]:
        # The one place driver trouble becomes a StoreError: coredis errors
        # leave the pool as StoreErrors already; a checkout that timed out
        # means the server is away.
        try:
            yield
        except trouper.PoolTimeout as exc:
            raise StoreUnavailable("redis: no connection to the server in time") from exc

    async def _script(self, source: str, keys: list[bytes], args: list[Any]) -> Any:
        from coredis.exceptions import NoScriptError

        sha = hashlib.sha1(source.encode()).hexdigest()
        with self._edge():
            async with self.pool.connection() as client:
                try:
                    return await client.evalsha(sha, keys, args)
                except NoScriptError:  # a restarted or flushed server
                    return await client.eval(source, keys, args)

    async def _call(self, *command: Any) -> Any:
        with self._edge():
            return await self.pool.execute(*command)

    async def create(
        self, record: SessionRecord, owner: str, max_per_user: int
    ) -> tuple[SessionRecord, bool]:
        keys = [
            self._key(f"session:{record.id}"),
            self._key(f"sessions:user:{record.user}"),
            self._key(f"sessions:conn:{record.connection}"),
            self._key("sessions:active"),
            self._key("sessions:meta"),
        ]
        args = [
            self.prefix,
            record.id,
            record.user,
            record.connection,
            repr(record.created),
            repr(record.ttl),
            str(_ms(record.ttl)),
            json.dumps(record.data),
            owner,
            str(max_per_user),
        ]
        code, detail = await self._script(_CREATE, keys, args)
        code, detail = int(code), _text(detail)
        if code == 1:
            return record, True
        if code == 0:
            found = await self.load(detail)
            if found is not None:
                return found[0], False
            raise StoreError(f"session {detail!r} vanished while being returned; try again")
        if code == -1:
            raise CreateRefused(
                f"connection {record.connection!r} is in use by another user's session"
            )
        raise CreateRefused(f"user {record.user!r} has {detail} live sessions, the most allowed")

    async def load(self, session_id: str) -> tuple[SessionRecord, str] | None:
        raw = await self._call("HGETALL", self._key(f"session:{session_id}"))
        if not raw:
            return None
        if isinstance(raw, list):  # RESP2: a flat list of field, value
            raw = dict(zip(raw[::2], raw[1::2], strict=True))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        record = SessionRecord(
            id=fields["id"],
            user=fields["user"],
            connection=fields["connection"],
            created=float(fields["created"]),
            last_heartbeat=float(fields["last_heartbeat"]),
            ttl=float(fields["ttl"]),
            data=json.loads(fields["data"]),
        )
        return record, fields["node"]

    async def write(self, record: SessionRecord, owner: str) -> WriteOutcome:
        keys = [self._key(f"session:{record.id}"), self._key("sessions:active")]
        args = [
            record.id,
            owner,
            repr(record.last_heartbeat),
            repr(record.ttl),
            str(_ms(record.ttl)),
            json.dumps(record.data),
        ]
        result = int(await self._script(_WRITE, keys, args))
        return "ok" if result == 1 else "gone" if result == 0 else "taken"

    async def claim(self, session_id: str, expected: str, owner: str) -> bool:
        keys = [self._key(f"session:{session_id}")]
        return int(await self._script(_CLAIM, keys, [expected, owner])) == 1

    async def remove(self, session_id: str) -> str | None:
        keys = [self._key(f"session:{session_id}"), self._key("sessions:meta")]
        user = await self._script(_REMOVE, keys, [self.prefix, session_id])
        return None if user is None else _text(user)

    async def ids(
        self, user: str | None, connection: str | None, active: bool, limit: int
    ) -> list[str]:
        sets: list[set[str]] = []
        if user is not None:
            sets.append(await self._members(f"sessions:user:{user}"))
        if connection is not None:
            sets.append(await self._members(f"sessions:conn:{connection}"))
        if active or not sets:
            seconds, micros = await self._call("TIME")
            now = int(seconds) * 1000 + int(micros) // 1000
            found = await self._call(
                "ZRANGEBYSCORE", self._key("sessions:active"), f"({now}", "+inf"
            )
            sets.append({_text(i) for i in found})
        return sorted(set.intersection(*sets))

    async def _members(self, key: str) -> set[str]:
        return {_text(i) for i in await self._call("SMEMBERS", self._key(key))}

    async def sweep(self, batch: int) -> list[tuple[str, str]]:
        keys = [self._key("sessions:active"), self._key("sessions:meta")]
        flat = [_text(v) for v in await self._script(_SWEEP, keys, [self.prefix, str(batch)])]
        return list(zip(flat[::2], flat[1::2], strict=True))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def redis_prefix(url: str) -> str:
    """The URL's ``prefix`` option ("" when absent: AetherFlow's bare keys)."""
    return parse_qs(urlsplit(url).query).get("prefix", [""])[0]


@asynccontextmanager
async def open_redis_session_store(url: str) -> AsyncIterator[RedisSessionStore]:
    async with trouper.pools.redis(url) as pool:
        yield RedisSessionStore(pool, redis_prefix(url))
