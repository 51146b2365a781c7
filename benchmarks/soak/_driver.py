"""Runs the soak: three node processes, a seeded chaos of ``kill -9`` and restarts.

The driver never talks to trouper itself: it starts ``_node`` processes, kills,
restarts and finally stops them, samples the seed node's RSS, and asks every node
for its view of the cluster at the end. Everything it does to a process is written
down with its wall-clock time in that process's ``Life``, so the checker can tell a
down declared after a kill (expected) from one declared while the process was alive.

Nothing waits without a bound: reading a ready line, a status answer, an exit after
SIGTERM, and the whole run (``Config.deadline``); a bound that passes is a violation.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from benchmarks._runner import REPO_ROOT, child_env

from ._config import NODES, SEED, Config, Workload

OUTCOME = "outcome.json"  # beside the journals, so that ``--recheck DIR`` can judge again


@dataclass(slots=True)
class Violation:
    check: str
    node: str | None
    at: float | None  # time.time(); the report shows it relative to the run's start
    what: str


@dataclass(slots=True)
class Life:
    """One process of one node, from its start to its exit."""

    node: str
    start: int  # 1 for the first process of that node, then one more per restart
    started: float
    pid: int = 0
    incarnation: int | None = None
    ready: float | None = None
    ended: float | None = None  # when the driver signalled it, or saw it gone
    end_kind: str | None = None  # "kill" (-9), "term" (a graceful restart), "stop", "crash"
    exit_code: int | None = None
    exited: float | None = None

    @property
    def label(self) -> str:
        return f"{self.node}#{self.start}"


@dataclass(slots=True)
class Outcome:
    config: Config
    workdir: Path
    began: float  # the workload phase: time.time() when the chaos started
    lives: list[Life]
    rss: list[tuple[float, int]]  # (time.time(), KiB) of the seed node
    violations: list[Violation]
    converged_after: float | None
    finished: float
    loadavg: tuple[str, str]


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 1)[0]
    except OSError:
        return "?"


@dataclass(slots=True)
class Proc:
    """A running node process and the driver's pipes to it."""

    life: Life
    process: trio.Process
    buffer: bytes = b""
    gone: trio.Event = field(default_factory=trio.Event)

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buffer:
            data = await self.process.stdout.receive_some()
            if not data:
                raise EOFError(f"{self.life.label} closed its stdout")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        record = json.loads(line)
        assert isinstance(record, dict)
        return record


class Driver:
    """One run's processes and record; ``scenario`` is the run itself."""

    def __init__(self, config: Config, workdir: Path, nursery: trio.Nursery) -> None:
        self.config = config
        self.workdir = workdir
        self.nursery = nursery
        self.rng = random.Random(config.seed)
        self.procs: dict[str, Proc] = {}
        self.lives: list[Life] = []
        self.rss: list[tuple[float, int]] = []
        self.violations: list[Violation] = []
        self.seed_url = ""
        self.began = time.time()
        self.converged_after: float | None = None
        self.phase = "startup"

    def violation(self, check: str, node: str | None, what: str) -> None:
        self.violations.append(Violation(check, node, time.time(), what))

    # ------------------------------------------------------------ processes

    async def start(self, name: str) -> bool:
        """Start a process for ``name`` and wait for its ready line."""
        start = 1 + sum(life.node == name for life in self.lives)
        life = Life(name, start, time.time())
        self.lives.append(life)
        argv = [sys.executable, "-m", "benchmarks.soak._node", "--name", name]
        argv += ["--start", str(start), "--journal", str(self.workdir / f"{life.label}.journal")]
        argv += ["--peers", ",".join(NODES), "--rng-seed", str(self.config.seed)]
        argv += ["--workload", self.config.workload.to_json()]
        if name != SEED:
            argv += ["--seed-url", self.seed_url]
        with (self.workdir / f"{life.label}.log").open("wb") as log:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=REPO_ROOT,
                env=child_env(),
                start_new_session=True,  # a Ctrl-C reaches the driver only, which stops them
            )
        life.pid = process.pid
        proc = self.procs[name] = Proc(life, process)
        self.nursery.start_soon(self.reap, proc)
        ready: dict[str, Any] | None = None
        with trio.move_on_after(self.config.startup_timeout):
            try:
                ready = await proc.line()
            except (EOFError, ValueError) as exc:
                self.violation("hang", name, f"{life.label} did not start: {exc}")
        if ready is None:
            if life.end_kind is None:
                what = f"no ready line within {self.config.startup_timeout:g} s"
                self.violation("hang", name, f"{life.label}: {what}")
            await self.kill(name)
            return False
        life.ready, life.incarnation = time.time(), int(ready["incarnation"])
        if name == SEED:
            self.seed_url = ready["addresses"][0]
        return True

    async def reap(self, proc: Proc) -> None:
        life = proc.life
        life.exit_code = await proc.process.wait()
        life.exited = time.time()
        if life.end_kind is None:
            life.ended, life.end_kind = life.exited, "crash"
            self.violation(
                "crash", life.node, f"{life.label} exited by itself with code {life.exit_code}"
            )
        proc.gone.set()

    async def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.life.end_kind is None:
            proc.life.ended, proc.life.end_kind = time.time(), "kill"
            proc.process.kill()
        await proc.gone.wait()

    async def terminate(self, name: str, kind: str) -> None:
        """SIGTERM, and check the process leaves, with code 0, within ``stop_bound``."""
        proc, bound = self.procs[name], self.config.stop_bound
        life = proc.life
        if life.end_kind is None:
            life.ended, life.end_kind = time.time(), kind
            proc.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(bound):
            await proc.gone.wait()
        if not proc.gone.is_set():
            self.violation("shutdown", name, f"{life.label} still ran {bound:g} s after SIGTERM")
            proc.process.kill()
            await proc.gone.wait()
        elif life.exit_code != 0 and life.end_kind != "crash":
            self.violation(
                "shutdown", name, f"{life.label} exited with {life.exit_code} on SIGTERM"
            )

    async def status(self, name: str) -> list[list[Any]] | None:
        proc = self.procs[name]
        assert proc.process.stdin is not None
        with trio.move_on_after(self.config.status_timeout):
            try:
                await proc.process.stdin.send_all(b"status\n")
                return list((await proc.line())["members"])
            except (EOFError, ValueError, trio.BrokenResourceError, trio.ClosedResourceError):
                return None
        return None

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.life.end_kind is None]

    # ------------------------------------------------------------ phases

    async def converge(self, timeout: float) -> float | None:
        """Seconds until every live node sees every live node's incarnation up."""
        started, wrong = time.time(), ["no status asked yet"]
        with trio.move_on_after(timeout):
            while wrong:
                wrong = []
                for name in self.alive():
                    members = await self.status(name)
                    if members is None:
                        wrong.append(f"{name} did not answer a status request")
                        continue
                    seen = {m[0]: (m[1], m[2]) for m in members}
                    for other in self.alive():
                        expected = (self.procs[other].life.incarnation, "up")
                        if other != name and seen.get(other) != expected:
                            view = seen.get(other, "nothing")
                            wrong.append(f"{name} sees {other} as {view}, not {expected}")
                if wrong:
                    await trio.sleep(0.25)
            return time.time() - started
        for what in wrong:
            self.violation("membership", what.split()[0], f"{self.phase}: {what}")
        return None

    async def chaos(self, end: float) -> None:
        """Kill or SIGTERM n2 or n3, wait, restart; until ``settle`` s before ``end``."""
        config = self.config
        while config.chaos:
            wait = self.rng.uniform(config.chaos_min, config.chaos_max)
            victim = self.rng.choice(NODES[1:])
            graceful = self.rng.random() < config.graceful_share
            downtime = self.rng.uniform(config.downtime_min, config.downtime_max)
            if trio.current_time() + wait + downtime > end - config.settle:
                return
            await trio.sleep(wait)
            if graceful:
                await self.terminate(victim, "term")
            else:
                await self.kill(victim)
            await trio.sleep(downtime)
            if not await self.start(victim):
                return  # a violation already says why; the rest runs without it

    async def sample(self, end: float) -> None:
        pid = self.procs[SEED].life.pid
        while trio.current_time() < end:
            kib = vm_rss_kib(pid)
            if kib is not None:
                self.rss.append((time.time(), kib))
            await trio.sleep(1.0)

    async def scenario(self) -> None:
        config = self.config
        for name in NODES:
            if not await self.start(name):
                return
        if await self.converge(config.startup_timeout) is None:
            return
        self.phase, self.began = "run", time.time()
        end = trio.current_time() + config.duration
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.chaos, end)
            nursery.start_soon(self.sample, end)
        self.phase = "after the run"
        self.converged_after = await self.converge(config.converge_timeout)
        self.phase = "shutdown"
        alive, now = self.alive(), time.time()
        for name in alive:  # every end is written down before any signal goes out
            self.procs[name].life.ended, self.procs[name].life.end_kind = now, "stop"
        async with trio.open_nursery() as nursery:
            for name in alive:
                self.procs[name].process.send_signal(signal.SIGTERM)
                nursery.start_soon(self.terminate, name, "stop")

    async def kill_all(self) -> None:
        """The last resort (a run cut short): ``kill -9`` whatever still runs."""
        for proc in self.procs.values():
            if proc.life.end_kind is None:
                proc.life.ended, proc.life.end_kind = time.time(), "kill"
            if not proc.gone.is_set():
                proc.process.kill()
        with trio.move_on_after(10):
            for proc in self.procs.values():
                await proc.gone.wait()


async def run(config: Config) -> Outcome:
    """One soak run; the verdict is ``_check.check(outcome)``."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="trouper-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.glob("*.journal")):  # journals only grow: an old one would be read too
        raise ValueError(f"{workdir} holds the journals of an earlier run: give an empty one")
    load_before = loadavg()
    async with trio.open_nursery() as nursery:
        driver = Driver(config, workdir, nursery)
        try:
            with trio.move_on_after(config.deadline) as deadline:
                await driver.scenario()
            if deadline.cancelled_caught:
                what = f"the run's deadline ({config.deadline:g} s) passed during {driver.phase}"
                driver.violation("hang", None, what)
        finally:
            with trio.CancelScope(shield=True):
                await driver.kill_all()
    outcome = Outcome(
        config=config,
        workdir=workdir,
        began=driver.began,
        lives=driver.lives,
        rss=driver.rss,
        violations=driver.violations,
        converged_after=driver.converged_after,
        finished=time.time(),
        loadavg=(load_before, loadavg()),
    )
    (workdir / OUTCOME).write_text(json.dumps(asdict(outcome), default=str))
    return outcome


def load_outcome(workdir: Path) -> Outcome:
    """The outcome a run left in ``workdir``, to check it again."""
    data = json.loads((workdir / OUTCOME).read_text())
    config = data.pop("config")
    workload = Workload(**config.pop("workload"))
    config["workdir"] = workdir
    return Outcome(
        config=Config(**config, workload=workload),
        workdir=workdir,
        began=data["began"],
        lives=[Life(**life) for life in data["lives"]],
        rss=[(t, kib) for t, kib in data["rss"]],
        violations=[Violation(**v) for v in data["violations"]],
        converged_after=data["converged_after"],
        finished=data["finished"],
        loadavg=(data["loadavg"][0], data["loadavg"][1]),
    )
