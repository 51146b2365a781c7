"""A method's arguments: what the proxy packs, the server's typed decoder
unpacks unchanged, and what does not fit is refused naming the parameter
(property tests; no node needed)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper.services._rpc import service_info


class Item(msgspec.Struct, frozen=True):
    sku: str
    qty: int


@trouper.service("shop")
class Shop(trouper.Actor):
    @trouper.rpc
    async def order(self, who: str, items: list[Item], note: str | None = None) -> int:
        return len(items)


ORDER = service_info(Shop).methods["order"]
items = st.lists(st.builds(Item, st.text(max_size=8), st.integers(-(2**63), 2**63 - 1)))


@settings(max_examples=200, deadline=None)
@given(who=st.text(max_size=20), its=items, note=st.none() | st.text(max_size=20))
def test_what_is_packed_unpacks_unchanged(who: str, its: list[Item], note: str | None) -> None:
    assert ORDER.unpack(ORDER.pack((who, its), {"note": note})) == (who, its, note)
    assert ORDER.unpack(ORDER.pack((who, its), {})) == (who, its, None)


@settings(max_examples=200, deadline=None)
@given(
    bad=st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary()
    | st.lists(st.integers(0, 9)),
    where=st.sampled_from(["who", "items", "note"]),
)
def test_a_value_of_the_wrong_type_names_its_parameter(bad: object, where: str) -> None:
    values: dict[str, object] = {"who": "ada", "items": [], "note": None}
    if where == "items" and isinstance(bad, list) and not bad:
        return  # an empty list is a valid list of items
    values[where] = bad
    data = msgspec.msgpack.encode(values)
    with pytest.raises(trouper.InvalidArgument, match=f"'{where}'"):
        ORDER.unpack(data)


def test_unknown_and_missing_arguments_are_named() -> None:
    with pytest.raises(trouper.InvalidArgument, match="cannot encode"):
        ORDER.pack(("ada", [], 2**70), {})
    with pytest.raises(trouper.InvalidArgument, match="'extra'"):
        ORDER.unpack(msgspec.msgpack.encode({"who": "a", "items": [], "extra": 1}))
    with pytest.raises(trouper.InvalidArgument, match="'items'"):
        ORDER.unpack(msgspec.msgpack.encode({"who": "a"}))
    with pytest.raises(trouper.InvalidArgument, match="not msgpack"):
        ORDER.unpack(b"\xc1")


def test_declarations_that_cannot_work_are_refused() -> None:
    with pytest.raises(trouper.ConfigurationError, match="async def"):
        trouper.rpc(lambda self: None)
    with pytest.raises(trouper.ConfigurationError, match="Actor subclass"):
        trouper.service("x")(int)  # type: ignore[type-var]
    with pytest.raises(trouper.ConfigurationError, match=r"not a @trouper\.service"):
        service_info(trouper.Actor)


def test_which_methods_can_suspend() -> None:
    from trouper.services._rpc import may_suspend

    class Probe(trouper.Actor):
        async def plain(self) -> int:
            return 1

        async def waits(self) -> None:
            import trio

            await trio.lowlevel.checkpoint()

        async def loops(self, it: Any) -> None:
            async for _ in it:
                pass

        async def enters(self, cm: Any) -> None:
            async with cm:
                pass

    assert not may_suspend(Probe.plain)
    assert may_suspend(Probe.waits) and may_suspend(Probe.loops) and may_suspend(Probe.enters)
