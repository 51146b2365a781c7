"""The shared half of every backend: argument checks, counters, closing.

Backends subclass ``BaseStore`` and implement the ``_do_*`` methods on
arguments that are already valid. Keeping validation here means every
backend rejects exactly the same names and counts, which is what lets the
conformance suite run unchanged over all of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import ClassVar, Self

from ._api import MAX_NAME_LENGTH, StoreStatistics
from ._errors import InvalidStoreArgument, StoreError

__all__ = ["BaseStore", "check_name", "check_ttl"]

# SQLite integers (and ids) are signed 64-bit; larger counts cannot be bound.
_MAX_INT = 2**63 - 1


def check_name(kind: str, value: str) -> str:
    """Validate a log name or key: a non-empty str of at most 512 characters."""
    if not isinstance(value, str):
        raise TypeError(f"{kind} must be a str, not {type(value).__name__}")
    if not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidStoreArgument(
            f"{kind} must be 1 to {MAX_NAME_LENGTH} characters long, got {len(value)}"
        )
    if "\x00" in value:  # C APIs underneath (sqlite, redis keys in logs) truncate at NUL
        raise InvalidStoreArgument(f"{kind} must not contain NUL characters")
    return value


def _check_bytes(kind: str, value: bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)  # copy: the caller may mutate its buffer afterwards
    raise TypeError(f"{kind} must be bytes (encode it with msgspec), not {type(value).__name__}")


def _check_count(kind: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{kind} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _MAX_INT:
        raise InvalidStoreArgument(f"{kind} must be between 0 and 2**63-1, got {value}")
    return value


def check_ttl(ttl: float | None) -> float | None:
    """Validate a time-to-live: None, or a finite number of seconds > 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    if not 0 < ttl < math.inf:  # also rejects NaN
        raise InvalidStoreArgument(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
    return float(ttl)


def _check_fence(fence: tuple[str, bytes]) -> tuple[str, bytes]:
    if not isinstance(fence, tuple) or len(fence) != 2:
        raise TypeError(f"fence must be a (key, token) tuple, not {fence!r}")
    key, token = fence
    return check_name("fence key", key), _check_bytes("fence token", token)


class BaseStore(ABC):
    """Implements the public ``Store`` methods on top of backend hooks."""

    backend: ClassVar[str] = "base"

    def __init__(self) -> None:
        self._closed = False
        self._counts: Counter[str] = Counter()

    @contextmanager
    def _op(self, counter: str) -> Iterator[None]:
        if self._closed:
            self._counts["errors"] += 1
            raise StoreError(f"{self.backend} store is closed")
        self._counts[counter] += 1
        try:
            yield
        except StoreError:
            self._counts["errors"] += 1
            raise

    async def append(
        self, log: str, record: bytes, *, fence: tuple[str, bytes] | None = None
    ) -> int:
        check_name("log name", log)
        data = _check_bytes("record", record)
        checked = None if fence is None else _check_fence(fence)
        with self._op("appends"):
            return await self._do_append(log, data, checked)

    async def tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        check_name("log name", log)
        _check_count("n", n)
        with self._op("reads"):
            return await self._do_tail(log, n)

    async def read(self, log: str, after_id: int = 0, limit: int = 100) -> list[tuple[int, bytes]]:
        check_name("log name", log)
        _check_count("after_id", after_id)
        _check_count("limit", limit)
        with self._op("reads"):
            return await self._do_read(log, after_id, limit)

    async def trim(self, log: str, keep_last: int) -> int:
        check_name("log name", log)
        _check_count("keep_last", keep_last)
        with self._op("trims"):
            return await self._do_trim(log, keep_last)

    async def get(self, key: str) -> bytes | None:
        check_name("key", key)
        with self._op("gets"):
            return await self._do_get(key)

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        check_name("key", key)
        data = _check_bytes("value", value)
        seconds = check_ttl(ttl)
        with self._op("puts"):
            await self._do_put(key, data, seconds)

    async def delete(self, key: str) -> bool:
        check_name("key", key)
        with self._op("deletes"):
            return await self._do_delete(key)

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, *, ttl: float | None = None
    ) -> bool:
        check_name("key", key)
        old = None if expected is None else _check_bytes("expected", expected)
        value = None if new is None else _check_bytes("new", new)
        seconds = check_ttl(ttl)
        with self._op("compare_and_sets"):
            return await self._do_compare_and_set(key, old, value, seconds)

    def statistics(self) -> StoreStatistics:
        c = self._counts
        return StoreStatistics(
            backend=self.backend,
            closed=self._closed,
            appends=c["appends"],
            reads=c["reads"],
            trims=c["trims"],
            gets=c["gets"],
            puts=c["puts"],
            deletes=c["deletes"],
            compare_and_sets=c["compare_and_sets"],
            errors=c["errors"],
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True  # first: calls made from now on fail fast
        await self._do_close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Backend hooks: arguments are already validated; ``ttl`` is None or a
    # float in (0, inf).

    # ``fence``: (key, token) already checked; the backend verifies that key
    # holds token and appends in one atomic step, or raises StaleWriter.
    @abstractmethod
    async def _do_append(self, log: str, record: bytes, fence: tuple[str, bytes] | None) -> int: ...

    @abstractmethod
    async def _do_tail(self, log: str, n: int) -> list[tuple[int, bytes]]: ...

    @abstractmethod
    async def _do_read(self, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]: ...

    @abstractmethod
    async def _do_trim(self, log: str, keep_last: int) -> int: ...

    @abstractmethod
    async def _do_get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _do_put(self, key: str, value: bytes, ttl: float | None) -> None: ...

    @abstractmethod
    async def _do_delete(self, key: str) -> bool: ...

    @abstractmethod
    async def _do_compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None
    ) -> bool: ...

    @abstractmethod
    async def _do_close(self) -> None: ...
