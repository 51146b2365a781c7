"""What only the sqlite backend has: files, WAL, locks, schema, cancellation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from trouper._errors import ConfigurationError, TrouperError
from trouper.stores import SqliteStore, StoreBusy, StoreError, open_store
from trouper.stores._errors import map_exceptions


async def test_relative_url_and_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with trio.fail_after(10):
        async with open_store("sqlite:///rel/deeper/chat.db") as store:
            await store.append("log", b"x")
            assert isinstance(store, SqliteStore)
            assert store.path == tmp_path / "rel" / "deeper" / "chat.db"
        async with open_store(f"sqlite:///{tmp_path}/abs/a/b.db") as store:
            await store.put("k", b"v")
    assert (tmp_path / "rel" / "deeper" / "chat.db").is_file()
    assert (tmp_path / "abs" / "a" / "b.db").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/x.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///dir/",
        "sqlite:///x.db?mode=ro",
        "sqlite:///:memory:",
        "sqlite:x.db",
    ],
)
def test_malformed_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite"):
        open_store(url)


async def test_file_is_wal_with_a_versioned_schema(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with trio.fail_after(10):
        async with await SqliteStore.open(db) as store:
            await store.append("log", b"x")
            conn = sqlite3.connect(db)
            try:
                assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
                version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
                assert version.fetchone() == ("2",)
                conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
                conn.commit()
            finally:
                conn.close()
        with pytest.raises(StoreError, match="schema version 99") as info:
            await SqliteStore.open(db)
        assert not info.value.is_retryable


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not a database, just text" * 100)
    with trio.fail_after(10), pytest.raises(StoreError) as info:
        async with open_store(f"sqlite:///{db}"):
            pass
    assert info.value.error_code == "store"
    assert not info.value.is_retryable
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_busy_is_a_retryable_store_busy(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with trio.fail_after(10):
        async with await SqliteStore.open(db, busy_timeout=0.05) as store:
            await store.append("log", b"1")
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
            try:
                with pytest.raises(StoreBusy) as info:
                    await store.append("log", b"2")
                assert info.value.is_retryable and info.value.error_code == "store-busy"
                assert isinstance(info.value, StoreError)
                assert await store.tail("log", 5) == [(1, b"1")]  # WAL: reads still work
            finally:
                other.execute("COMMIT")
                other.close()
            assert await store.append("log", b"2") == 2  # nothing left half-done
            assert store.statistics().errors == 1


async def test_cancelled_append_finishes_its_transaction(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with trio.fail_after(10):
        async with await SqliteStore.open(db, busy_timeout=5.0) as store:
            await store.append("log", b"1")
            other = sqlite3.connect(db, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")

            async def release_later() -> None:
                await trio.sleep(0.3)
                other.execute("COMMIT")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(release_later)
                start = trio.current_time()
                with trio.move_on_after(0.05):
                    await store.append("log", b"2")  # blocked on the lock, then cancelled
                # abandon_on_cancel=False: we waited for the thread, which got
                # the lock once released and committed.
                assert trio.current_time() - start >= 0.25
            # The store's connection holds no transaction: someone else can
            # take the write lock at once.
            other.execute("PRAGMA busy_timeout = 0")
            other.execute("BEGIN IMMEDIATE")
            other.execute("COMMIT")
            other.close()
            assert await store.append("log", b"3") == 3
            assert [r for _, r in await store.tail("log", 5)] == [b"1", b"2", b"3"]


def test_map_exceptions() -> None:
    with pytest.raises(StoreBusy, match="db: database is locked"), map_exceptions("db"):
        raise sqlite3.OperationalError("database is locked")
    with pytest.raises(StoreError, match="db: disk I/O error") as info, map_exceptions("db"):
        raise sqlite3.OperationalError("disk I/O error")
    assert type(info.value) is StoreError and not info.value.is_retryable
    assert isinstance(info.value, TrouperError)
    with pytest.raises(StoreError, match="Permission denied"), map_exceptions("db"):
        raise PermissionError(13, "Permission denied")
    with pytest.raises(KeyError), map_exceptions("db"):
        raise KeyError("not ours to translate")
    with pytest.raises(ConfigurationError), map_exceptions("db"):
        raise ConfigurationError("trouper errors pass through")


def test_bad_synchronous_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        trio.run(lambda: SqliteStore.open(tmp_path / "x.db", synchronous="NONE; DROP"))  # type: ignore[arg-type]
