"""The impaired wire: ``python -m benchmarks.net._forwarder FD_A FD_B --loss --rtt-ms ...``.

Moves IP packets between two TUN descriptors (inherited from the parent) and impairs them
with one seeded ``random.Random``: each packet is dropped with probability ``loss``,
otherwise held for half the RTT (one way), and with probability ``reorder`` held up to
``reorder_extra_ms`` longer, so later packets overtake it. There is no bandwidth limit and no
queue limit: the only other impairment is this process's own speed, which the stats report.

It runs until its stdin closes, then prints one JSON line of counters on stdout.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import select
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

BATCH = 64  # packets read from one descriptor before looking at the other and the timers
MAX_PACKET = 65535


@dataclass(slots=True)
class Stats:
    packets_in: int = 0
    bytes_in: int = 0
    dropped: int = 0
    reordered: int = 0
    write_errors: int = 0
    peak_pps: int = 0  # most packets read in one wall-clock second
    max_held: int = 0  # most packets held for delay at once
    busy_s: float = 0.0  # time spent moving packets (not waiting in select)


@dataclass(frozen=True, slots=True)
class Impairment:
    loss: float
    rtt_ms: float
    reorder: float
    reorder_extra_ms: float
    seed: int


def forward(fd_a: int, fd_b: int, control: int, impairment: Impairment) -> Stats:
    """Forward until ``control`` reports end of file; return the counters."""
    rng = random.Random(impairment.seed)
    one_way = impairment.rtt_ms / 2000.0
    extra = impairment.reorder_extra_ms / 1000.0
    other = {fd_a: fd_b, fd_b: fd_a}
    # Packets on the common delay leave in arrival order, so a FIFO holds them (cheaper than
    # a heap at 100k+ packets/s); only the few given extra delay go through the heap, whose
    # sequence number keeps equal due times in order.
    fifo: deque[tuple[float, int, bytes]] = deque()
    late: list[tuple[float, int, int, bytes]] = []
    sequence = 0
    stats = Stats()
    second, in_second = int(time.monotonic()), 0
    watched = [fd_a, fd_b, control]
    monotonic, read, write, random_ = time.monotonic, os.read, os.write, rng.random
    loss, reorder = impairment.loss, impairment.reorder
    while True:
        # select, not epoll: its timeout has microsecond resolution, epoll's milliseconds,
        # and a 0.5 ms one-way delay must not become 1 ms.
        timeout = None
        if fifo or late:
            due = min(fifo[0][0] if fifo else math.inf, late[0][0] if late else math.inf)
            timeout = max(0.0, due - monotonic())
        readable, _, _ = select.select(watched, [], [], timeout)
        started = now = monotonic()
        if control in readable and not read(control, 4096):
            stats.packets_in += in_second
            return stats
        for fd in readable:
            if fd == control:
                continue
            destination = other[fd]
            for _ in range(BATCH):
                try:
                    packet = read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                in_second += 1
                stats.bytes_in += len(packet)
                if loss and random_() < loss:
                    stats.dropped += 1
                elif reorder and random_() < reorder:
                    stats.reordered += 1
                    sequence += 1
                    due = now + one_way + extra * random_()
                    heapq.heappush(late, (due, sequence, destination, packet))
                else:
                    fifo.append((now + one_way, destination, packet))
        stats.max_held = max(stats.max_held, len(fifo) + len(late))
        now = monotonic()
        while fifo and fifo[0][0] <= now:
            _, destination, packet = fifo.popleft()
            stats.write_errors += _write(write, destination, packet)
        while late and late[0][0] <= now:
            _, _, destination, packet = heapq.heappop(late)
            stats.write_errors += _write(write, destination, packet)
        if int(now) != second:
            stats.packets_in += in_second
            stats.peak_pps = max(stats.peak_pps, in_second)
            second, in_second = int(now), 0
        stats.busy_s += monotonic() - started


def _write(write: Callable[[int, bytes], int], destination: int, packet: bytes) -> int:
    """Write one packet; 1 if the kernel refused it (queue full, device gone): a loss too."""
    try:
        write(destination, packet)
    except OSError:
        return 1
    return 0


def parse_args(argv: list[str]) -> tuple[int, int, Impairment]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.net._forwarder")
    parser.add_argument("fd_a", type=int)
    parser.add_argument("fd_b", type=int)
    parser.add_argument("--loss", type=float, default=0.0, help="drop probability, 0..1")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    parser.add_argument("--reorder", type=float, default=0.0, help="probability of extra delay")
    parser.add_argument("--reorder-extra-ms", type=float, default=0.0, help="max extra delay")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    impairment = Impairment(args.loss, args.rtt_ms, args.reorder, args.reorder_extra_ms, args.seed)
    return args.fd_a, args.fd_b, impairment


def main(argv: list[str]) -> int:
    fd_a, fd_b, impairment = parse_args(argv)
    for fd in (fd_a, fd_b):
        os.set_blocking(fd, False)
    stats = forward(fd_a, fd_b, sys.stdin.fileno(), impairment)
    print(json.dumps({**asdict(stats), "busy_s": round(stats.busy_s, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
