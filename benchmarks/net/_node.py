"""One trouper node in one namespace: ``python -m benchmarks.net._node serve|client URL``.

``serve URL``: listen on URL, host the ``echo`` actor, print ``{"ready": [...]}`` once
listening, and run until stdin closes.

``client URL``: dial URL, check the link with one ask, then measure (see ``_measure``) and
print one JSON line of results. A broken link prints ``{"error": ...}`` and exits 1.

``--certs DIR`` (from ``make_dev_certs``, names ``a`` and ``b``) gives the node a
``TLSConfig``; quic:// needs one, tcp:// ignores it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import trio

import trouper
from benchmarks.cases._messages import Ping
from benchmarks.net import _measure
from benchmarks.net._actors import Echo

COOKIE = "trouper-bench-net"
SANITY_TIMEOUT = 30.0
# The failure detector is not under test: with its defaults a peer whose heartbeats sit
# behind a lossy bulk stream for a few seconds would be declared down mid-measurement.
LINK_OPTIONS: dict[str, Any] = {
    "acceptable_pause": 30.0,
    "down_after": 60.0,
    "handshake_timeout": 30.0,
}


def _tls(certs: str | None, name: str) -> trouper.TLSConfig | None:
    return None if certs is None else trouper.TLSConfig.from_dir(certs, name)


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _progress(text: str) -> None:
    print(f"[bench-net node] {text}", file=sys.stderr, flush=True)


async def serve(args: argparse.Namespace) -> None:
    async with trouper.open_node(
        "server", listen=args.url, cookie=COOKIE, tls=_tls(args.certs, "b"), **LINK_OPTIONS
    ) as node:
        await node.spawn(Echo, name="echo")
        _emit({"ready": list(node.addresses)})
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        async with stdin:
            while await stdin.receive_some():
                pass


async def client(args: argparse.Namespace) -> dict[str, Any]:
    async with trouper.open_node(
        "client", cookie=COOKIE, tls=_tls(args.certs, "a"), **LINK_OPTIONS
    ) as node:
        try:
            with trio.fail_after(SANITY_TIMEOUT):
                await node.connect(args.url, timeout=None)
                ref = await node.lookup("echo", timeout=SANITY_TIMEOUT)
                await ref.ask(Ping(-1), timeout=None)
        except trio.TooSlowError:
            return {
                "error": f"no working link to {args.url}: connect, lookup and one ask "
                f"did not complete within {SANITY_TIMEOUT:g} s"
            }
        except trouper.TrouperError as exc:
            return {"error": f"no working link to {args.url}: {type(exc).__name__}: {exc}"}
        common = {"askers": args.askers, "timeout": args.ask_timeout}
        stream = {"chunk": args.chunk, "window": args.window}
        _progress(f"{args.url}: link up, warming up")
        await _measure.ask_latency(ref, duration=args.warmup, **common)
        asks = await _measure.ask_latency(ref, duration=args.duration, **common)
        _progress(f"{args.url}: asks done, bulk stream")
        await trio.sleep(args.pause)
        mib_s = await _measure.bulk(ref, duration=args.duration, **stream)
        _progress(f"{args.url}: bulk done, asks during a bulk stream")
        await trio.sleep(args.pause)
        during = await _measure.ask_during_bulk(ref, duration=args.duration, **common, **stream)
        return {"ask": asks.summary(), "bulk_mib_s": mib_s, "hol": during}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.net._node")
    parser.add_argument("role", choices=["serve", "client"])
    parser.add_argument("url")
    parser.add_argument("--certs", help="directory from make_dev_certs (names a and b)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of untimed asks")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between phases")
    parser.add_argument("--askers", type=int, default=64)
    parser.add_argument("--ask-timeout", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=32 * 1024, help="bytes per stream item")
    parser.add_argument("--window", type=int, default=16, help="stream credit, in items")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.role == "serve":
        trio.run(serve, args)
        return 0
    result = trio.run(client, args)
    _emit(result)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
