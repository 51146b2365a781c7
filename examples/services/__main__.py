"""``python -m examples.services`` (``make demo-services``): a small shop.

Three ``Inventory`` instances run on two node processes (``shop-1`` holds
two, ``shop-2`` one); this process is the client. It places orders through
a proxy (``reserve``: not idempotent) and reads stock (``available``:
idempotent) from a few concurrent loops, and kills ``shop-1`` (SIGKILL)
partway through. It prints what happens, then a JSON summary line, and
exits 1 if any order was reserved twice or the calls did not fail over.

What to expect:
* before the kill, orders spread over the three instances (round-robin);
* when ``shop-1`` dies, a call already delivered to it may have run or not:
  ``reserve`` is not idempotent, so that call is *not* retried elsewhere and
  fails with ``NodeDown`` (its order shows in the ledger if it ran); calls
  that had not reached it yet go to ``shop-2``; the breakers of ``shop-1``'s
  members open;
* after the kill, every call is served by ``shop-2``, and the ledger, which
  records each reservation as it runs, holds no order twice.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections import Counter
from typing import Any

import trio

import trouper

from ._shop import Entries, Inventory, Ledger

ALLOW = ("examples.services._shop:*",)


def say(*parts: Any) -> None:
    print(*parts, flush=True)


async def shop(orders: int, loops: int, kill_at: int) -> dict[str, Any]:
    cookie = secrets.token_hex(16)
    async with trouper.open_node("client", listen="tcp://127.0.0.1:0", cookie=cookie) as node:
        ledger = await node.spawn(Ledger, name="ledger")
        shop1 = await node.spawn_node(name="shop-1", allow_spawn=ALLOW)
        shop2 = await node.spawn_node(name="shop-2", allow_spawn=ALLOW)
        for on in ("shop-1", "shop-1", "shop-2"):
            await node.spawn(Inventory, on=on)
        members = await node.registry.wait_for_members("inventory", 3, timeout=20)
        say(
            f"inventory: {len(members)} instances:",
            ", ".join(f"{m.node_id}{m.path}" for m in members),
        )

        inventory = node.proxy(Inventory, timeout=2.0, retry=trouper.Retry(attempts=3, budget=0.5))
        served: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        breaker_events: list[str] = []
        placed = 0
        kill_now = trio.Event()
        killed = trio.Event()
        after_kill: Counter[str] = Counter()
        stock_reads = Counter[str]()

        async def watch_breakers() -> None:
            async with node.subscribe("trouper.breaker") as events:
                async for event in events:
                    breaker_events.append(f"{event.member}: {event.old} -> {event.new}")
                    say(f"  breaker {event.member}: {event.old} -> {event.new}")

        async def kill_shop1() -> None:
            await kill_now.wait()
            say(f"-- kill -9 shop-1 (pid {shop1.pid}) after {placed} orders")
            shop1.kill()
            killed.set()

        async def customer(k: int) -> None:
            nonlocal placed
            while placed < orders:
                n = placed
                placed += 1
                if placed >= kill_at:
                    kill_now.set()
                order = f"order-{n}"
                late = killed.is_set()  # sent after shop-1 died: only shop-2 can serve it
                try:
                    where = await inventory.reserve(order, ("apple", "pear", "plum")[n % 3], 1)
                except trouper.TrouperError as exc:
                    failed[type(exc).__name__] += 1
                    say(f"  {order}: {type(exc).__name__}: {exc}")
                else:
                    served[where.split("/")[0]] += 1
                    if late:
                        after_kill[where.split("/")[0]] += 1
                try:  # an idempotent read: retried on any member
                    await inventory.available("apple")
                    stock_reads["ok"] += 1
                except trouper.TrouperError as exc:
                    stock_reads[type(exc).__name__] += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_breakers)
            async with trio.open_nursery() as work:
                work.start_soon(kill_shop1)
                for k in range(loops):
                    work.start_soon(customer, k)
            nursery.cancel_scope.cancel()

        entries = await ledger.ask(Entries())
        per_order = Counter(e.order for e in entries)
        duplicates = sorted(o for o, n in per_order.items() if n > 1)
        ok = sum(served.values())
        summary = {
            "orders": orders,
            "reserved": ok,
            "served_by": dict(served),
            "served_after_kill": dict(after_kill),
            "failed": dict(failed),
            "ledger_entries": len(entries),
            "ran_but_unanswered": len(entries) - ok,
            "duplicates": duplicates,
            "stock_reads": dict(stock_reads),
            "breaker_events": len(breaker_events),
        }
        await shop2.stop()
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.services", description=__doc__)
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--loops", type=int, default=8, help="concurrent customers")
    parser.add_argument("--kill-at", type=int, default=200, help="orders before shop-1 dies")
    args = parser.parse_args(argv)
    summary = trio.run(shop, args.orders, args.loops, args.kill_at)
    say(
        f"\n{summary['reserved']} of {summary['orders']} orders reserved; "
        f"served by {summary['served_by']}; after the kill by {summary['served_after_kill']}; "
        f"failed {summary['failed'] or 'none'}"
    )
    say(
        f"ledger: {summary['ledger_entries']} reservations ran "
        f"({summary['ran_but_unanswered']} ran but their answer was lost with shop-1), "
        f"duplicates: {summary['duplicates'] or 'none'}"
    )
    say(json.dumps(summary))
    good = not summary["duplicates"] and set(summary["served_after_kill"]) == {"shop-2"}
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
