"""The handler ``configure_logging`` installs: it formats in the caller and
writes in a thread of its own.

A plain ``StreamHandler`` writes in the task that logs: when whoever reads
the node's stderr stops reading (a full pipe), every task that logs, and so
the whole Trio loop, would stop with it. Here a record is formatted where it
is logged (the context filters and formatter see the caller's task) and the
line is queued; a daemon thread writes the lines in batches. At most
``MAX_PENDING`` lines wait: beyond, lines are dropped and counted, and the
next batch written says how many.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import IO

#: Lines waiting for the writer thread at most.
MAX_PENDING = 10_000
#: Seconds ``flush`` (and so ``close``, and logging's own shutdown at exit)
#: waits for the thread to write what is queued.
FLUSH_TIMEOUT = 5.0


class LineWriter(logging.Handler):
    def __init__(self, stream: IO[str], max_pending: int = MAX_PENDING) -> None:
        super().__init__()
        self.stream = stream
        self.max_pending = max_pending
        self.dropped = 0  # in all, for statistics
        self._lines: deque[str] = deque()
        self._unreported = 0
        self._busy = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="trouper-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._cond:
            if self._closing:
                return
            if len(self._lines) >= self.max_pending:
                self._unreported += 1
                self.dropped += 1
                return
            self._lines.append(line)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._lines) or self._closing)
                if not self._lines:
                    return
                batch = list(self._lines)
                self._lines.clear()
                dropped, self._unreported = self._unreported, 0
                self._busy = True
            try:
                if dropped:
                    batch.append(self._notice(dropped))
                self.stream.write("".join(f"{line}\n" for line in batch))
                self.stream.flush()
            except Exception:
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _notice(self, dropped: int) -> str:
        record = logging.makeLogRecord(
            {
                "name": "trouper",
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": "%d log lines dropped: the log stream was not read fast enough",
                "args": (dropped,),
            }
        )
        return self.format(record)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait (at most ``timeout`` seconds) until every queued line is
        written. Never call it from the Trio loop."""
        with self._cond:
            self._cond.wait_for(lambda: not self._lines and not self._busy, timeout)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(FLUSH_TIMEOUT)
        super().close()
