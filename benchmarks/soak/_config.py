"""The soak test's knobs: what the driver decides, and the workload every node runs.

The workload travels to each node process as one JSON argument, so the driver and the
nodes can never disagree about it. Failure detection is tight on purpose: with
``down_after=3.0`` a node whose heartbeats queue behind a slow actor's tells for three
seconds is declared down within the run, which is the failure this test exists to catch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

NODES = ("n1", "n2", "n3")
#: The seed node: never killed, so its memory can be watched for the whole run.
SEED = NODES[0]
COOKIE = "trouper-soak"


@dataclass(frozen=True, slots=True)
class Workload:
    """What every node does to the others, and how it judges them."""

    ask_loops: int = 1  # steady ask loops per peer, one ask in flight each
    ask_interval: float = 0.02  # seconds between two asks of one loop
    ask_timeout: float = 2.0
    slow_delay: float = 0.005  # seconds a slow actor spends on each message
    slow_mailbox: int = 20
    burst_min: int = 20  # tells per burst to a peer's slow actor, drawn uniformly
    burst_max: int = 600
    burst_every: float = 6.0  # mean seconds between two bursts to one peer
    conc_size: int = 100  # concurrent asks in an occasional ask burst
    conc_every: float = 10.0  # mean seconds between two ask bursts to one peer
    heartbeat_interval: float = 0.2
    acceptable_pause: float = 1.0
    down_after: float = 3.0

    def node_options(self) -> dict[str, float]:
        """The failure-detection options given to ``trouper.open_node``."""
        return {
            "heartbeat_interval": self.heartbeat_interval,
            "acceptable_pause": self.acceptable_pause,
            "down_after": self.down_after,
        }

    @property
    def flush_timeout(self) -> float:
        """Time for the ask that closes a burst: two peers' largest bursts drained, and slack."""
        return 2 * self.burst_max * self.slow_delay + 2 * self.ask_timeout

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class Config:
    """One soak run. Times are seconds; every random choice comes from ``seed``."""

    duration: float = 180.0
    seed: int = 1
    workdir: Path | None = None  # journals and node logs; a fresh temporary dir if None
    warmup: float | None = None  # RSS baseline taken here; default: a quarter, 5-30 s
    chaos: bool = True  # kill and restart n2 and n3; without it, only the load
    chaos_min: float = 4.0  # seconds between two kills, drawn uniformly
    chaos_max: float = 12.0
    downtime_min: float = 0.5  # seconds a killed node stays dead
    downtime_max: float = 3.0
    graceful_share: float = 0.25  # share of the restarts that SIGTERM instead of kill -9
    settle: float = 7.0  # no kill during the last ``settle`` seconds of the run
    converge_timeout: float = 10.0  # after the run, for every node to see every node up
    startup_timeout: float = 30.0  # for a node process to print its ready line
    stop_bound: float = 10.0  # for a node to exit after SIGTERM
    status_timeout: float = 5.0  # for a node to answer a status request
    stall_bound: float = 6.0  # longest gap between two answered asks to a live node
    rss_growth_mib: float = 16.0  # bound on the seed node's RSS growth after warm-up
    workload: Workload = field(default_factory=Workload)

    @property
    def warmup_seconds(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return max(5.0, min(30.0, self.duration / 4))

    @property
    def deadline(self) -> float:
        """The whole run's bound: startup, the run, convergence, shutdown, and slack."""
        return (
            2 * self.startup_timeout
            + self.duration
            + self.converge_timeout
            + 2 * self.stop_bound
            + 30.0
        )

    @classmethod
    def short(cls, **changes: Any) -> Config:
        """The 20-second run of ``make test`` (``--short``): at least one kill, still."""
        preset: dict[str, Any] = {
            "duration": 20.0,
            "warmup": 5.0,
            "chaos_min": 3.0,
            "chaos_max": 7.0,
            "settle": 5.0,
            "converge_timeout": 6.0,
        }
        return cls(**{**preset, **changes})

    def with_workload(self, **changes: Any) -> Config:
        return replace(self, workload=replace(self.workload, **changes))
