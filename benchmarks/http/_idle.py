"""``python -m benchmarks.http._idle PORT N``: hold N idle keep-alive connections.

A lean opener, plain blocking sockets and no event loop: each connection
makes one ``GET /hello`` (so it is a keep-alive HTTP connection, not a bare
TCP one) and then stays silent. Prints ``HELD n``, waits for a line on
stdin, then prints ``ALIVE n``: how many the server still holds (a closed
one reads as EOF).
"""

from __future__ import annotations

import socket
import sys

from ._procs import raise_nofile


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    raise_nofile()
    request = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
    socks: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        socks.append(sock)
    print(f"HELD {len(socks)}", flush=True)
    sys.stdin.readline()
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(4096) != b""  # EOF: the server closed it
        except BlockingIOError:
            alive += 1  # nothing to read: still open and idle
        except OSError:
            pass
        sock.close()
    print(f"ALIVE {alive}", flush=True)


if __name__ == "__main__":
    main()
