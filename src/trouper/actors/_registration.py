"""``trouper.message``: registering the types that may cross the wire.

Types named in handler annotations register themselves (``_actor``); this
decorator is for the others. The table is the process-wide one in
``trouper.protocols`` (sans-IO), read live by every node's codec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..protocols import default_registry

T = TypeVar("T")


@overload
def message(cls: type[T], *, name: str | None = None) -> type[T]: ...
@overload
def message(*, name: str | None = None) -> Callable[[type[T]], type[T]]: ...
def message(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Register a message type so it can cross the wire (a class decorator).

    Types named in handler annotations register themselves; use this for the
    others (replies inside containers, stream items, messages sent only from
    outside actors). ``name`` defaults to ``"module:QualName"`` and must be the
    same on every node.
    """

    def register(tp: type[T]) -> type[T]:
        return default_registry.register(tp, name)

    return register if cls is None else register(cls)
