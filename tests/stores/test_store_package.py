"""The package contract: public names, the scheme registry, module hygiene,
and that no store call blocks the Trio loop."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import trio

import trouper.stores as stores
from trouper._errors import ConfigurationError
from trouper.stores import MemoryStore, Store, StoreError, open_store, register_store

PUBLIC = {
    "MAX_NAME_LENGTH",
    "InvalidStoreArgument",
    "MemoryStore",
    "SharedStore",
    "SqliteStore",
    "StaleWriter",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreFactory",
    "StoreStatistics",
    "StoreUnavailable",
    "open_store",
    "register_store",
}


def test_public_names() -> None:
    assert set(stores.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(stores, name)


def test_modules_are_private_and_small() -> None:
    for module in Path(stores.__file__).parent.glob("*.py"):
        assert module.name == "__init__.py" or module.name.startswith("_"), module.name
        assert len(module.read_text().splitlines()) < 300, module.name


def test_error_codes() -> None:
    assert StoreError("x").error_code == "store"
    assert not StoreError.is_retryable
    assert stores.StoreBusy.is_retryable
    assert issubclass(stores.InvalidStoreArgument, ValueError)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nosuch://x", "no store registered for nosuch://; known schemes: memory://, "),
        ("redis://user:secret@host:port/0", "redis URL has a bad port"),
        ("redis://user:secret@host/0?pool=3", "unknown redis URL option 'pool'"),
        ("redis://user:secret@host/zero", "db .the path. 'zero' is not an integer"),
        ("just-a-path.db", "malformed store URL"),
        ("", "malformed store URL"),
        ("://x", "malformed store URL"),
        ("memory://" + "n" * 600, "bad memory store URL"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        open_store(url)
    assert "secret" not in str(info.value)  # URLs may carry passwords


def test_register_store() -> None:
    opened: list[str] = []

    @asynccontextmanager
    async def fake(url: str) -> AsyncIterator[Store]:
        opened.append(url)
        async with MemoryStore() as store:
            yield store

    def factory(url: str) -> AbstractAsyncContextManager[Store]:
        return fake(url)

    assert register_store("Fake", factory) is None
    try:

        async def main() -> None:
            with trio.fail_after(5):
                async with open_store("FAKE://anything") as store:
                    assert await store.append("log", b"x") == 1

        trio.run(main)
        assert opened == ["FAKE://anything"]
        assert register_store("fake", factory) is factory
    finally:
        stores._registry._FACTORIES.pop("fake")
    with pytest.raises(ConfigurationError):
        register_store("not a scheme", factory)


async def test_nothing_blocks_the_loop(store_url: str) -> None:
    # A task that only ever yields: if a store call ran sqlite on the Trio
    # thread, this task could not run while the call is in progress.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            # Let go of the GIL for a moment: a task that only checkpoints
            # holds it between forced switches (5 ms each), and the store's
            # worker thread needs it a few times per call, so a hot spinner
            # made 100 calls take over 10 s in some runs (bimodal, seen
            # under pytest 9). The loop still ticks only if it is free.
            time.sleep(0)  # noqa: ASYNC251 (a zero sleep: it only drops the GIL)
            await trio.lowlevel.checkpoint()

    with trio.fail_after(10):
        async with open_store(store_url) as store, trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            progressed = 0
            for i in range(100):
                before = ticks
                await store.append("log", b"%d" % i)
                await store.tail("log", 100)
                progressed += ticks > before
            nursery.cancel_scope.cancel()
    assert progressed == 100


def test_the_stores_doc_has_executed_examples() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "stores.md"
    text = doc.read_text(encoding="utf-8")
    assert text.count("```python") >= 3  # tests/test_docs.py runs each of them
    for section in ("## The interface", "## Node-shared stores", "## Errors", "## Bounds"):
        assert section in text
