"""Validation at the API's edges (issue 10, item 8), end to end.

The pure checks have their own tests (test_supervision_validation.py,
test_options.py, test_remote_allow.py, transports/test_transport_pem.py);
these show that the runtime applies them: ``spawn`` as ``child`` does,
``open_node`` naming a misspelt option, remote spawns naming the argument
that cannot travel, and the allow-list admitting only Actors defined in the
named module.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import trouper


class Idle(trouper.Actor):
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args
        self.kwargs = kwargs


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("restart", "prmanent", "did you mean 'permanent'"),
        ("restart", "forever", "restart must be one of"),
        ("shutdown", -10, "shutdown"),
        ("shutdown", math.nan, "shutdown"),
        ("shutdown", math.inf, "shutdown"),
        ("shutdown", "brutal", "shutdown"),
        ("mailbox_size", 0, "mailbox_size"),
        ("mailbox_size", 2.5, "mailbox_size"),
    ],
)
async def test_spawn_checks_what_child_checks(option: str, value: object, match: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match=match):
        trouper.child(Idle, **{option: value})  # type: ignore[arg-type]
    async with trouper.open_node() as node:
        with pytest.raises(trouper.ConfigurationError, match=match):
            await node.spawn(Idle, **{option: value})  # type: ignore[arg-type]
        assert node.stats().actors == 3  # the guardians and dead letters: nothing was made


async def test_brutal_kill_is_a_valid_shutdown() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Idle, shutdown="brutal_kill")
            await node.stop(ref)
            assert node.stats().actors == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"listn": "tcp://127.0.0.1:0", "cookie": "c"}, "unknown node option 'listn'.*'listen'"),
        ({"mailbox_sise": 10}, "unknown node option 'mailbox_sise'.*'mailbox_size'"),
        ({"heartbeat_interal": 1.0, "cookie": "c"}, "'heartbeat_interval'"),
        ({"tell_windw": 8, "cookie": "c"}, "'tell_window'"),
    ],
)
async def test_a_misspelt_node_option_names_itself_and_the_closest(
    options: dict[str, object], match: str
) -> None:
    with pytest.raises(trouper.ConfigurationError, match=match):
        async with trouper.open_node(**options):  # type: ignore[arg-type]
            pass  # pragma: no cover


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cookie": "c", "heartbeat_interval": math.nan}, "heartbeat_interval"),
        ({"cookie": "c", "max_frame_size": 0}, "max_frame_size"),
        ({"cookie": "c", "tell_window": -1}, "tell_window"),
        ({"cookie": ""}, "cookie"),
        ({"shutdown_timeout": math.inf}, "shutdown_timeout"),
        ({"mailbox_size": 0}, "mailbox_size"),
        ({"cookie": "c", "allow_spawn": ["[abc]:X"]}, "allow"),
    ],
)
async def test_bad_node_option_values_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match=match):
        async with trouper.open_node(**options):  # type: ignore[arg-type]
            pass  # pragma: no cover


class Opaque:
    """Not msgpack-encodable."""


@pytest.fixture
def spawnable(tmp_path: Path) -> Iterator[str]:
    """A real module on sys.path with an Actor, an imported Actor and a non-actor."""
    (tmp_path / "validation_mod.py").write_text(
        textwrap.dedent(
            """
            import trouper
            from trouper import Actor  # imported: not "defined in" this module

            class Worker(trouper.Actor):
                def __init__(self, *args, **kwargs):
                    self.args, self.kwargs = args, kwargs

                @trouper.handler
                async def show(self, msg: str) -> list:
                    return [list(self.args), self.kwargs]

            class NotAnActor:
                pass
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield "validation_mod"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("validation_mod", None)


async def test_remote_spawn_names_the_argument_that_cannot_travel(spawnable: str) -> None:
    import importlib

    module = importlib.import_module(spawnable)
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie="c") as a,
            trouper.open_node(
                "b", seeds=a.addresses, cookie="c", allow_spawn=[f"{spawnable}:*"]
            ) as b,
        ):
            await a.wait_for_members(2)
            with pytest.raises(trouper.ConfigurationError, match="argument 1 of Worker"):
                await a.spawn(module.Worker, 1, Opaque(), on="b")
            with pytest.raises(trouper.ConfigurationError, match="keyword argument 'x'"):
                await a.spawn(module.Worker, x=Opaque(), on="b")
            ref = await a.spawn(module.Worker, 1, name="w", on="b", mailbox=2)
            assert await ref.ask("show") == [[1], {"mailbox": 2}]
            assert "w" in b.registry.local()
            # The class path is where the class is defined, which the
            # allow-list does not cover (test_remote_allow.py has the rest).
            with pytest.raises(trouper.SpawnRefused, match="not allowed"):
                await a.spawn(module.Actor, on="b")
            with pytest.raises(trouper.SpawnRefused):
                await a.spawn(module.NotAnActor, on="b")  # type: ignore[arg-type]
            with pytest.raises(trouper.SpawnRefused, match="mailbox_size"):
                await a.spawn(module.Worker, on="b", mailbox_size=10**9)


async def test_ctx_timers_refuse_nan_and_inf() -> None:
    class Timed(trouper.Actor):
        @trouper.handler
        async def arm(self, msg: float) -> str:
            try:
                self.ctx.send_after(msg, "x")
            except trouper.ConfigurationError as exc:
                return str(exc)
            return "armed"

        @trouper.handler
        async def x(self, msg: str) -> None:
            pass

    async with trouper.open_node() as node:
        ref = await node.spawn(Timed)
        assert "delay" in await ref.ask(math.nan)
        assert "delay" in await ref.ask(math.inf)
        assert "delay" in await ref.ask(-1.0)
        assert await ref.ask(0.0) == "armed"
