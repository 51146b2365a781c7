"""The registry of benchmark cases.

A case names two measuring functions as ``"module:function"`` strings, relative to
``benchmarks.cases``. Each function takes the problem size ``n`` and returns one number in
the case's unit; it runs in a fresh child process (see ``benchmarks._child``), so it may call
``trio.run`` itself and may leave the process in any state. Strings keep the runner from
importing trouper, pykka or trio itself.

To add a case: write both functions in a module under ``benchmarks/cases/`` and append a
``Case`` to ``CASES`` below (or call ``register`` from anywhere imported by this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    trouper: str  # "module:function" under benchmarks.cases, returns the value for trouper
    baseline: str  # "module:function" under benchmarks.cases, returns the baseline's value
    baseline_name: str  # a human name for the baseline, printed as "baseline"
    unit: str
    better: Better
    target: float  # ratio threshold: ratio >= target if better == "higher", else <=
    size: int
    quick_size: int

    @property
    def target_text(self) -> str:
        return f"{'>=' if self.better == 'higher' else '<='} {self.target}"

    def meets(self, ratio: float) -> bool:
        return ratio >= self.target if self.better == "higher" else ratio <= self.target


CASES: list[Case] = []


def register(case: Case) -> Case:
    if any(c.name == case.name for c in CASES):
        raise ValueError(f"duplicate benchmark case {case.name!r}")
    CASES.append(case)
    return case


register(
    Case(
        name="local_tell",
        trouper="local:trouper_tell",
        baseline="local:trio_channel_tell",
        baseline_name="trio memory channel (max_buffer_size=1024)",
        unit="msgs/s",
        better="higher",
        target=3.0,
        size=200_000,
        quick_size=10_000,
    )
)
register(
    Case(
        name="local_ask",
        trouper="local:trouper_ask",
        baseline="local:trio_channel_ask",
        baseline_name="trio ping-pong over two memory channels",
        unit="msgs/s",
        better="higher",
        target=1.0,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="local_tell_vs_pykka",
        trouper="local:trouper_tell",
        baseline="pykka_peer:pykka_tell",
        baseline_name="pykka ThreadingActor tell",
        unit="msgs/s",
        better="higher",
        target=2.0,
        size=200_000,
        quick_size=10_000,
    )
)
register(
    Case(
        name="local_ask_vs_pykka",
        trouper="local:trouper_ask",
        baseline="pykka_peer:pykka_ask",
        baseline_name="pykka ThreadingActor ask",
        unit="msgs/s",
        better="higher",
        target=5.0,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="spawn_rate",
        trouper="spawn:trouper_spawn_rate",
        baseline="spawn:trio_task_start_rate",
        baseline_name="trio nursery.start_soon of tasks awaiting an Event",
        unit="actors/s",
        better="higher",
        target=2.0,
        size=100_000,
        quick_size=5_000,
    )
)
register(
    Case(
        name="idle_actor_memory",
        trouper="spawn:trouper_idle_memory",
        baseline="spawn:trio_idle_task_memory",
        baseline_name="trio task awaiting an Event",
        unit="bytes/actor",
        better="lower",
        target=0.5,
        size=100_000,
        quick_size=5_000,
    )
)
register(
    Case(
        name="remote_ask",
        trouper="remote:trouper_remote_ask",
        baseline="remote:trio_tcp_ask",
        baseline_name="raw trio TCP ping-pong of length-prefixed msgspec frames, 2 processes",
        unit="msgs/s",
        better="higher",
        target=0.7,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="remote_tell",
        trouper="remote:trouper_remote_tell",
        baseline="remote:trio_tcp_tell",
        baseline_name="raw trio TCP msgspec frames, 64 per send_all, until acknowledged",
        unit="msgs/s",
        better="higher",
        target=2.0,
        size=200_000,
        quick_size=10_000,
    )
)
register(
    Case(
        name="remote_ask_vs_grpc",
        trouper="remote:trouper_remote_ask",
        baseline="remote:grpc_ask",
        baseline_name="grpcio sync unary call on loopback (raw msgspec bytes)",
        unit="msgs/s",
        better="higher",
        target=5.0,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="remote_ask_quic",
        trouper="remote_quic:trouper_remote_ask_quic",
        baseline="remote_quic:aioquic_ask",
        baseline_name="aioquic's asyncio client/server ping-pong on one stream (loopback)",
        unit="msgs/s",
        better="higher",
        target=0.8,
        size=5_000,
        quick_size=500,
    )
)
register(
    Case(
        name="remote_ask_ws",
        trouper="remote_ws:trouper_remote_ask_ws",
        baseline="remote_ws:trio_websocket_ask",
        baseline_name="raw trio-websocket ping-pong of one binary message, 2 processes",
        unit="msgs/s",
        better="higher",
        target=0.8,
        size=10_000,
        quick_size=1_000,
    )
)
register(
    Case(
        name="cluster_tell_scaling",
        trouper="remote_cluster:two_node_tell",
        baseline="remote_cluster:single_node_tell",
        baseline_name="the same tell load (4 sender->actor pairs) in 1 node process",
        unit="msgs/s",
        better="higher",
        target=1.6,
        size=1_000_000,
        quick_size=40_000,
    )
)
register(
    Case(
        name="publish_fanout_2_nodes",
        trouper="pubsub:two_node_fanout",
        baseline="pubsub:one_node_fanout",
        baseline_name="the same 1,000 actor subscribers in 1 node process",
        unit="deliveries/s",
        better="higher",
        target=0.6,
        size=2_000,
        quick_size=200,
    )
)
register(
    Case(
        name="local_channel",
        trouper="channels:trouper_local_channel",
        baseline="channels:trouper_local_stream",
        baseline_name="trouper ref.stream() of the same items from the same actor (window 64)",
        unit="items/s",
        better="higher",
        target=1.0,
        size=100_000,
        quick_size=5_000,
    )
)
register(
    Case(
        name="remote_channel",
        trouper="channels:trouper_remote_channel",
        baseline="channels:trouper_remote_stream",
        baseline_name="trouper ref.stream() of the same items, same 2 processes (window 64)",
        unit="items/s",
        better="higher",
        target=1.0,
        size=50_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="local_proxy_call",
        trouper="services:local_proxy_call",
        baseline="services:local_plain_ask",
        baseline_name="plain local ask of the same actor",
        unit="calls/s",
        better="higher",
        target=0.9,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="remote_proxy_call",
        trouper="services:remote_proxy_call",
        baseline="services:remote_plain_ask",
        baseline_name="plain remote ask of the same actor, 2 processes",
        unit="calls/s",
        better="higher",
        target=0.9,
        size=10_000,
        quick_size=1_000,
    )
)
register(
    Case(
        name="remote_proxy_vs_grpc",
        trouper="services:remote_proxy_call",
        baseline="remote:grpc_ask",
        baseline_name="grpcio sync unary call on loopback (raw msgspec bytes)",
        unit="calls/s",
        better="higher",
        target=3.0,
        size=10_000,
        quick_size=1_000,
    )
)
register(
    Case(
        name="local_tell_metrics",
        trouper="metrics:tell_metrics_on",
        baseline="metrics:tell_metrics_off",
        baseline_name="the same local tells on a node with metrics=False",
        unit="msgs/s",
        better="higher",
        target=0.95,
        size=200_000,
        quick_size=10_000,
    )
)
register(
    Case(
        name="local_ask_tracing",
        trouper="tracing:ask_tracing_on",
        baseline="tracing:ask_tracing_off",
        baseline_name="the same local asks with tracing off",
        unit="msgs/s",
        better="higher",
        target=0.0,  # no target: it reports what a span per ask and per handler costs
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="store_shared_append",
        trouper="stores:trouper_shared_append",
        baseline="stores:direct_append",
        baseline_name="the same sqlite store opened with open_store, used by plain tasks",
        unit="appends/s",
        better="higher",
        target=0.8,
        size=8_000,
        quick_size=320,
    )
)
register(
    Case(
        name="worker_pool_spike",
        trouper="worker_pool:smart_pool_p99",
        baseline="worker_pool:fixed_pool_p99",
        baseline_name="the same worker pool held at min=2 (10x spike of 1 ms asks)",
        unit="ms p99",
        better="lower",
        target=0.3,
        size=3_000,
        quick_size=200,
    )
)
register(
    Case(
        name="persist_sqlite",
        trouper="persistence:persist_sqlite",
        baseline="persistence:raw_append_sqlite",
        baseline_name="raw store.append of records of the same size, same sqlite store",
        unit="events/s",
        better="higher",
        target=0.7,
        size=5_000,
        quick_size=200,
    )
)

# persist_postgres / persist_redis: the same case against a server each sample
# starts (or the one TROUPER_BENCH_POSTGRES_URL / TROUPER_BENCH_REDIS_URL names).
for _backend in ("postgres", "redis"):
    register(
        Case(
            name=f"persist_{_backend}",
            trouper=f"persistence:persist_{_backend}",
            baseline=f"persistence:raw_append_{_backend}",
            baseline_name=f"raw store.append of same-size records, same {_backend} store",
            unit="events/s",
            better="higher",
            target=0.7,
            size=2_000,
            quick_size=100,
        )
    )
register(
    Case(
        name="transport_echo_tcp",
        trouper="transport:trouper_session_echo",
        baseline="transport:trio_tcp_echo",
        baseline_name="raw trio TCP ping-pong, length-prefixed, same message size (256 B)",
        unit="round trips/s",
        better="higher",
        target=0.8,
        size=20_000,
        quick_size=2_000,
    )
)
register(
    Case(
        name="pool_fetchval",
        trouper="pg_pool:trouper_pool_fetchval",
        baseline="pg_pool:psycopg_direct_fetchval",
        baseline_name="16 psycopg connections used directly, each driven by its own thread",
        unit="calls/s",
        better="higher",
        target=0.8,
        size=10_000,
        quick_size=1_000,
    )
)
register(
    Case(
        name="redis_store_append",
        trouper="redis_store:trouper_redis_append",
        baseline="redis_store:coredis_script_append",
        baseline_name="the same append script by EVALSHA on one plain coredis client, same 8 tasks",
        unit="appends/s",
        better="higher",
        target=0.5,
        size=5_000,
        quick_size=200,
    )
)
