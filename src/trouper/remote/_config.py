"""``RemoteConfig``: a node's network settings, and every limit it holds its
peers to. Each limit has a default here and a row in docs/remote.md
("Limits"); ``tests/test_remote_limits_doc.py`` checks the two agree.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .._errors import ConfigurationError

KIB = 1024
MIB = 1024 * KIB


def _positive_int(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be an int >= 1, not {value!r}")


def _seconds(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigurationError(
            f"{attribute.name} must be a finite number of seconds > 0, not {value!r}"
        )


def _positive(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigurationError(f"{attribute.name} must be a finite number > 0, not {value!r}")


@attrs.frozen
class RemoteConfig:
    """The network settings of a node (``open_node`` keyword arguments)."""

    cookie: bytes
    listen: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    tls: Any = None
    allow_spawn: tuple[str, ...] = ()

    # --- frames and the handshake
    #: The largest frame, and so the largest single message, either way.
    max_frame_size: int = attrs.field(default=16 * MIB, validator=_positive_int)
    #: The largest frame a connection may send before it has authenticated.
    max_handshake_frame: int = attrs.field(default=64 * KIB, validator=_positive_int)
    #: Connections in the handshake at once; more are closed at once.
    max_handshakes: int = attrs.field(default=64, validator=_positive_int)
    handshake_timeout: float = attrs.field(default=10.0, validator=_seconds)

    # --- what this node sends (per peer)
    #: Asks this node may have waiting on one peer; more callers wait for a slot.
    max_pending_asks: int = attrs.field(default=10_000, validator=_positive_int)
    #: Bytes queued for one peer before senders wait (replies never wait).
    max_outbox_bytes: int = attrs.field(default=32 * MIB, validator=_positive_int)
    #: A peer whose outbox holds more than this many times ``max_outbox_bytes``
    #: (replies it asked for and does not read) is disconnected at once.
    outbox_hard_factor: int = attrs.field(default=4, validator=_positive_int)
    #: A peer that reads less than 256 KiB in this long while data waits for
    #: it is disconnected as a slow consumer.
    slow_consumer_timeout: float = attrs.field(default=15.0, validator=_seconds)

    # --- what a peer may make this node hold (per peer)
    #: Tells in flight per destination actor (per-destination credit).
    tell_window: int = attrs.field(default=1024, validator=_positive_int)
    #: Messages from one peer waiting at full mailboxes; beyond it the node
    #: stops reading from that peer until they drain (local backpressure,
    #: never counted as the peer's silence).
    max_parked: int = attrs.field(default=100_000, validator=_positive_int)
    #: Asks from one peer not yet answered; beyond it, reading pauses too.
    max_inbound_asks: int = attrs.field(default=20_000, validator=_positive_int)
    #: Streams one peer may have open on this node's actors.
    max_streams: int = attrs.field(default=1_000, validator=_positive_int)
    #: Watches one peer may hold on this node's actors.
    max_watches: int = attrs.field(default=100_000, validator=_positive_int)
    #: Names one peer may announce.
    max_names: int = attrs.field(default=100_000, validator=_positive_int)
    #: Group memberships one peer may announce (an actor in two groups is two).
    max_group_members: int = attrs.field(default=100_000, validator=_positive_int)
    #: The longest group name a peer may announce, in characters.
    max_group_name: int = attrs.field(default=255, validator=_positive_int)
    #: Spawns and stops one peer may have in progress here at once.
    max_peer_requests: int = attrs.field(default=64, validator=_positive_int)
    #: The largest ``mailbox_size`` a remote spawn may ask for.
    max_remote_mailbox: int = attrs.field(default=100_000, validator=_positive_int)
    #: Nodes this node will know at once (gossip cannot make it dial more).
    max_peers: int = attrs.field(default=1_000, validator=_positive_int)
    #: Envelopes per second read from one connection (None: no limit).
    rate_limit: float | None = None
    #: Put the remote traceback text in error replies (off: type and message only).
    remote_tracebacks: bool = False

    # --- failure detection and gossip
    heartbeat_interval: float = attrs.field(default=0.5, validator=_seconds)
    acceptable_pause: float = attrs.field(default=2.0, validator=_seconds)
    phi_threshold: float = attrs.field(default=8.0, validator=_positive)
    down_after: float = attrs.field(default=4.5, validator=_seconds)
    gossip_every: int = attrs.field(default=4, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if not self.cookie:
            raise ConfigurationError("the cluster cookie cannot be empty")
        if self.max_handshake_frame > self.max_frame_size:
            raise ConfigurationError("max_handshake_frame cannot exceed max_frame_size")
        if self.rate_limit is not None:
            _positive(None, attrs.fields(RemoteConfig).rate_limit, self.rate_limit)

    @property
    def outbox_hard_limit(self) -> int:
        return self.max_outbox_bytes * self.outbox_hard_factor


#: Every option ``open_node`` passes through to ``RemoteConfig``.
REMOTE_OPTIONS: frozenset[str] = frozenset(
    a.name for a in attrs.fields(RemoteConfig) if a.name not in ("cookie",)
)
