"""A small tour of supervision: ``make demo`` (or ``python -m examples.supervision_demo``).

Three workers form a pipeline under one ``trouper.Supervisor`` with the
``RestForOne`` strategy: when a worker crashes, it and every worker started
after it are restarted; the ones started before it are left alone.

The demo sends ``beta`` a poison message. ``beta`` crashes, its asker gets the
error, the message goes to the dead letters, and the supervisor restarts
``beta`` and ``gamma`` (not ``alpha``) after a short backoff. The refs stay
valid and the messages queued meanwhile are handled by the fresh instances.
"""

from __future__ import annotations

import logging
import sys

import msgspec
import trio

import trouper


class Job(msgspec.Struct):
    n: int


class Poison(msgspec.Struct):
    pass


class Status(msgspec.Struct):
    pass


#: How many times each worker has started (a fresh instance per restart).
STARTS: dict[str, int] = {}


def say(text: str) -> None:
    print(f"  {text}", flush=True)


class Worker(trouper.Actor):
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.handled = 0

    async def on_start(self) -> None:
        STARTS[self.tag] = STARTS.get(self.tag, 0) + 1
        say(f"+ {self.tag} started (incarnation {STARTS[self.tag]})")

    async def on_restart(self, exc: BaseException) -> None:
        say(f"~ {self.tag} restarted after {exc!r}")

    async def on_stop(self) -> None:
        say(f"- {self.tag} stopped after handling {self.handled} job(s)")

    @trouper.handler
    async def job(self, msg: Job) -> str:
        self.handled += 1
        return f"{self.tag}: {msg.n}² = {msg.n * msg.n}"

    @trouper.handler
    async def poison(self, msg: Poison) -> None:
        raise RuntimeError(f"{self.tag} swallowed poison")

    @trouper.handler
    async def status(self, msg: Status) -> tuple[int, int]:
        return STARTS[self.tag], self.handled


class OneLine(logging.Formatter):
    """The runtime logs each failure with its traceback; one line is enough here."""

    def format(self, record: logging.LogRecord) -> str:
        return f"  ! [{record.name} log] {record.getMessage()}"


async def print_dead_letters(node: trouper.Node, task_status: trio.TaskStatus[None]) -> None:
    async with node.dead_letters.subscribe() as letters:
        task_status.started()
        async for letter in letters:
            say(f"✉ dead letter to {letter.recipient.path}: {letter.message!r} ({letter.reason})")


async def tour(node: trouper.Node) -> None:
    print("1. start a RestForOne supervisor over three workers")
    strategy = trouper.RestForOne(
        max_restarts=3, within=5.0, backoff=trouper.Backoff(initial=0.05, maximum=0.2)
    )
    await node.spawn(
        trouper.Supervisor,
        name="pipeline",
        children=[trouper.child(Worker, tag, name=tag) for tag in ("alpha", "beta", "gamma")],
        strategy=strategy,
    )
    alpha, beta, gamma = [await node.lookup(tag) for tag in ("alpha", "beta", "gamma")]

    print("2. every worker answers")
    for ref, n in ((alpha, 2), (beta, 3), (gamma, 4)):
        say(await ref.ask(Job(n)))

    print("3. beta swallows poison: RestForOne restarts beta and gamma (started after it)")
    try:
        await beta.ask(Poison())
    except RuntimeError as exc:
        say(f"x the asker of Poison got {exc!r}")
    # beta is suspended until its supervisor restarts it (after the backoff);
    # these wait in its mailbox and are answered by the fresh instance.
    await beta.tell(Job(5))
    say(f"answer after the restart: {await beta.ask(Job(6))}")

    print("4. after the restart: same refs, fresh instances")
    assert await node.lookup("beta") == beta
    for ref in (alpha, beta, gamma):
        incarnation, handled = await ref.ask(Status())
        say(f"{ref.path}: incarnation {incarnation}, {handled} job(s) since it started")
    assert [STARTS[tag] for tag in ("alpha", "beta", "gamma")] == [1, 2, 2]
    stats = node.stats()
    say(f"restarts: {stats.restarts}, dead letters: {node.dead_letters.count}")
    assert stats.restarts == 1 and node.dead_letters.count == 1


async def main() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(OneLine())
    logging.getLogger("trouper").addHandler(handler)
    logging.getLogger("trouper").propagate = False

    async with trouper.open_node(name="demo") as node:
        async with trio.open_nursery() as nursery:
            await nursery.start(print_dead_letters, node)
            await tour(node)
            nursery.cancel_scope.cancel()
        print("5. leaving open_node stops everything, children first, in reverse order")
    print("done")


if __name__ == "__main__":
    trio.run(main)
