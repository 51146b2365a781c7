"""Two network namespaces joined by two TUN devices that only the forwarder connects.

Each TUN device is created from the root namespace, so this process holds its file
descriptor, and then moved into its namespace: the descriptor stays attached, and every
IP packet the namespace routes to its peer comes out of that descriptor. Nothing reaches
the other namespace unless a forwarder writes it into the other descriptor.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000  # bare IP packets, no 4-byte protocol header
MTU = 1500
ADDRESS_A = "10.77.0.1"
ADDRESS_B = "10.77.0.2"
PREFIX = "trouper-"


class LinkUnavailable(Exception):
    """This machine or user cannot build the link (not root, no ``ip``, no TUN)."""


@dataclass(frozen=True, slots=True)
class Link:
    ns_a: str
    ns_b: str
    fd_a: int  # packets leaving namespace a come out here; writes enter namespace a
    fd_b: int


def unavailable_reason() -> str | None:
    """Why the link cannot be built here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and TUN devices)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (Debian package iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun (the tun kernel module)"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LinkUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise LinkUnavailable(f"TUNSETIFF {name}: {exc}") from exc
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces left by a run that was killed (its pid suffix no longer runs)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        tail = name.removeprefix(PREFIX)
        side, _, pid = tail.partition("-")
        ours = name.startswith(PREFIX) and side in ("a", "b") and pid.isdigit()
        if ours and not _pid_alive(int(pid)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            removed.append(name)
    return removed


def _configure(ns: str, dev: str, local: str, peer: str) -> None:
    _ip("link", "set", dev, "netns", ns)
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "addr", "add", local, "peer", peer, "dev", dev)
    _ip("-n", ns, "link", "set", dev, "mtu", str(MTU), "up")


@contextmanager
def open_link() -> Iterator[Link]:
    """Build the two namespaces and their TUN devices; tear everything down on exit."""
    pid = os.getpid()
    ns_a, ns_b = f"{PREFIX}a-{pid}", f"{PREFIX}b-{pid}"
    dev_a, dev_b = f"trA{pid}", f"trB{pid}"  # IFNAMSIZ: at most 15 characters
    fds: list[int] = []
    namespaces: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _ip("netns", "add", ns)
            namespaces.append(ns)
        fds.append(_open_tun(dev_a))
        fds.append(_open_tun(dev_b))
        _configure(ns_a, dev_a, ADDRESS_A, ADDRESS_B)
        _configure(ns_b, dev_b, ADDRESS_B, ADDRESS_A)
        yield Link(ns_a, ns_b, fds[0], fds[1])
    finally:
        # Closing the last descriptor of a non-persistent TUN device deletes the device,
        # wherever it lives; the namespaces go once no process runs in them.
        for fd in fds:
            os.close(fd)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def in_namespace(ns: str, argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]
