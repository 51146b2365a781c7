"""Runtime nodes as child processes (``node.spawn_node``).

A child node is ``python -m trouper node ...`` seeded with this node's
address. The cookie goes through a private file (never the command line, which
other users can read). The child prints one JSON line when it listens; the
parent then waits until the child has joined the cluster.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .. import _errors as errors

if TYPE_CHECKING:
    from ._layer import Remoting

_counter = itertools.count(1)


class NodeHandle:
    """A node process started by ``spawn_node``: ``id``, ``pid``, ``stop()``, ``kill()``."""

    def __init__(self, node_id: str, process: trio.Process, addresses: list[str], tmp: Path):
        self.id = node_id
        self.process = process
        self.addresses = tuple(addresses)
        self._tmp = tmp

    def __repr__(self) -> str:
        return f"<NodeHandle {self.id} pid={self.pid} returncode={self.process.returncode}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL after ``timeout``."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(timeout):
                await self.process.wait()
        self.kill()
        with trio.CancelScope(shield=True):
            await self.process.wait()
        self._cleanup()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as ``kill -9`` would: the node gets no chance to say goodbye."""
        if self.running:
            self.process.kill()

    def _cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


async def start_node_process(
    remote: Remoting,
    *,
    name: str | None,
    allow_spawn: Sequence[str],
    listen: str,
    timeout: float,
) -> NodeHandle:
    parent = remote.node
    node_id = name or f"{parent.id}-{next(_counter)}"
    tmp = Path(tempfile.mkdtemp(prefix="trouper-node-"))
    cookie_file = tmp / "cookie"
    fd = os.open(cookie_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(remote.config.cookie)
    command = [sys.executable, "-m", "trouper", "node", "--name", node_id]
    command += ["--listen", listen, "--cookie-file", str(cookie_file)]
    for address in parent.addresses:
        command += ["--seed", address]
    for pattern in allow_spawn:
        command += ["--allow-spawn", pattern]
    config = remote.config
    # The child judges its peers as this node does (the same detection time).
    command += ["--heartbeat-interval", str(config.heartbeat_interval)]
    command += ["--acceptable-pause", str(config.acceptable_pause)]
    command += ["--down-after", str(config.down_after)]
    tls = None if remote.tls is None else remote.tls.config  # as reloaded, if it was
    if tls is not None and tls.development:
        command += ["--tls-dev"]
    elif tls is not None:
        for flag, value in (("--tls-cert", tls.certfile), ("--tls-key", tls.keyfile)):
            if value is not None:
                command += [flag, str(value)]
        if tls.cafile is not None:
            command += ["--tls-ca", str(tls.cafile)]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        with trio.fail_after(timeout):
            line = await _read_line(process.stdout)
            ready = json.loads(line)
            handle = NodeHandle(node_id, process, ready["addresses"], tmp)
            while not any(m.node_id == node_id and m.status == "up" for m in parent.members()):
                await remote.wait_changed()
    except (trio.TooSlowError, ValueError, KeyError) as exc:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        raise errors.NodeDown(f"node process {node_id} did not start and join: {exc!r}") from exc
    except BaseException:
        process.kill()
        raise
    return handle


async def _read_line(stream: trio.abc.ReceiveStream) -> str:
    data = bytearray()
    while b"\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ValueError(f"the node process exited before it was ready: {bytes(data)!r}")
        data += chunk
    return data.split(b"\n", 1)[0].decode()
