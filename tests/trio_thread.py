"""One ``trio.run`` in a thread of its own, driven from synchronous code.

Hypothesis's state machines are synchronous: each rule is a plain method.
A ``TrioThread`` runs an async context manager in a fresh Trio run (so each
example gets fresh nodes, and one example's leftovers cannot blur the
next), and lets the rules run async functions inside it. If the run fails
(a task in the context raised), every later call raises that failure.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")


class TrioThread(Generic[T]):
    def __init__(self, context: Callable[[], AbstractAsyncContextManager[T]], timeout: float):
        self._context = context
        self._timeout = timeout
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._finish: trio.Event | None = None
        self._value: T | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="trio-example", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"the Trio thread did not start within {timeout}s")
        self._raise()

    @property
    def value(self) -> T:
        assert self._value is not None
        return self._value

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._finish = trio.Event()
        async with self._context() as value:
            self._value = value
            self._ready.set()
            await self._finish.wait()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(*args)`` in the Trio run, and wait for it."""
        self._raise()
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):
            self._thread.join(self._timeout)
            self._raise()
            raise

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._raise()
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def close(self) -> None:
        """Leave the context (its exit runs in the Trio run) and end the run."""
        if self._thread.is_alive() and self._finish is not None and self.error is None:
            try:
                trio.from_thread.run_sync(self._finish.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(self._timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the Trio run did not end within {self._timeout}s")
        self._raise()
