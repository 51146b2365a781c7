"""One soak node process: ``python -m benchmarks.soak._node --name n2 --start 3 ...``.

It opens a trouper node (public API only), hosts ``recv-<name>`` and ``slow-<name>``,
prints one JSON line once it is up (``{"node", "incarnation", "pid", "addresses"}``),
and runs the traffic of ``_workload`` towards its peers. Each ``status`` line on stdin
is answered with one JSON line of ``node.members()``. SIGTERM (or stdin closing: the
driver is gone) stops it gracefully, exit code 0. Everything it sees goes to its journal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import trio

import trouper

from ._actors import Receiver, Slow
from ._config import COOKIE, Workload
from ._journal import DOWN_LOGGER, DownRecorder, Journal
from ._workload import Traffic


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def own_incarnation(node: trouper.Node) -> int:
    return next(m.incarnation for m in node.members() if m.node_id == node.id)


async def serve_commands(node: trouper.Node, done: trio.CancelScope) -> None:
    """Answer ``status`` lines; stdin closing means the driver went away: stop."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        while data := await stdin.receive_some():
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip() == b"status":
                    members = [[m.node_id, m.incarnation, m.status] for m in node.members()]
                    emit({"members": members})
    done.cancel()


async def run(args: argparse.Namespace) -> None:
    settings = Workload.from_json(args.workload)
    journal = Journal(Path(args.journal))
    logging.getLogger(DOWN_LOGGER).addHandler(DownRecorder(journal))
    logging.getLogger(DOWN_LOGGER).setLevel(logging.INFO)  # "left the cluster" is INFO
    peers = [p for p in args.peers.split(",") if p != args.name]
    rng = random.Random(f"{args.rng_seed}:{args.name}:{args.start}")
    # Opened first, so that a SIGTERM during startup still means "stop gracefully".
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trouper.open_node(
            args.name,
            listen="tcp://127.0.0.1:0",
            seeds=args.seed_url,
            cookie=COOKIE,
            heartbeat_interval=settings.heartbeat_interval,
            acceptable_pause=settings.acceptable_pause,
            down_after=settings.down_after,
        ) as node:
            incarnation = own_incarnation(node)
            journal.identity(node.id, incarnation, os.getpid())
            await node.spawn(Receiver, journal, incarnation, name=f"recv-{node.id}")
            slow_args = (journal, incarnation, settings.slow_delay)
            await node.spawn(
                Slow, *slow_args, name=f"slow-{node.id}", mailbox_size=settings.slow_mailbox
            )
            emit(
                {
                    "node": node.id,
                    "incarnation": incarnation,
                    "pid": os.getpid(),
                    "addresses": list(node.addresses),
                }
            )
            traffic = Traffic(node, journal, settings, start=args.start, peers=peers, rng=rng)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic.run)
                nursery.start_soon(serve_commands, node, nursery.cancel_scope)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()
    journal.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak._node")
    parser.add_argument("--name", required=True)
    parser.add_argument("--start", type=int, required=True, help="how many times it started")
    parser.add_argument("--journal", required=True)
    parser.add_argument("--seed-url", action="append", default=[])
    parser.add_argument("--peers", required=True, help="every node's name, comma-separated")
    parser.add_argument("--rng-seed", type=int, default=1)
    parser.add_argument("--workload", default=Workload().to_json(), help="Workload as JSON")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    trio.run(run, parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
