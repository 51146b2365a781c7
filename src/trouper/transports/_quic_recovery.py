"""Loss detection that learns how much a path reorders (RFC 9002 §6.1).

aioquic declares a packet lost once three later packets are acknowledged or
9/8 of an RTT has passed, with fixed thresholds, and never revisits the
decision. On a path that reorders even a little, every overtaken packet
becomes a congestion event and the window collapses: in the simulated
network of tests/transports, 0.5 % reordering cut a bulk stream at 50 ms RTT
from 9 MiB/s to 0.4 MiB/s, while Linux TCP (RACK) shrugs it off.

``ReorderTolerantRecovery`` keeps aioquic's recovery and congestion control
and adds what RFC 9002 §6.1.1-6.1.2 suggests: when a packet declared lost is
acknowledged after all (the loss was spurious), the packet and time
thresholds grow to what that packet needed, up to a bound, so the same
reordering is not mistaken for loss again; and, as TCP does on a spurious
retransmission (RFC 4015), the window cut that loss caused is undone.
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.connection import QuicConnection
from aioquic.quic.recovery import QuicPacketRecovery, QuicPacketSpace

__all__ = ["ReorderTolerantConnection", "ReorderTolerantRecovery"]

# RFC 9002's starting points, and how far reordering may stretch them.
_PACKET_THRESHOLD = 3
_TIME_THRESHOLD = 9 / 8
_MAX_PACKET_THRESHOLD = 256
_MAX_TIME_THRESHOLD = 2.0
# Losses remembered to recognise a late acknowledgement: enough for a window.
_SUSPECTS = 512
# Congestion-controller state an undo must not roll back: it tracks packets
# and measurements, not the window.
_KEEP = frozenset({"bytes_in_flight", "_congestion_recovery_start_time", "_rtt_monitor", "rtt"})


class ReorderTolerantRecovery(QuicPacketRecovery):
    packet_threshold: int
    time_threshold: float
    spurious_losses: int
    _suspects: dict[int, tuple[float, int]]  # packet number -> (sent at, largest acked then)
    _undo: tuple[frozenset[int], dict[str, Any]] | None  # the last window cut, and its cause

    def adopt(self) -> None:
        self.packet_threshold = _PACKET_THRESHOLD
        self.time_threshold = _TIME_THRESHOLD
        self.spurious_losses = 0
        self._suspects = {}
        self._undo = None

    def on_ack_received(
        self, *, ack_rangeset: Any, ack_delay: float, now: float, space: Any
    ) -> None:
        if self._suspects and space.is_application_data:
            for number in [n for n in self._suspects if n in ack_rangeset]:
                self._spurious(number, now)
        super().on_ack_received(
            ack_rangeset=ack_rangeset, ack_delay=ack_delay, now=now, space=space
        )

    def _spurious(self, number: int, now: float) -> None:
        sent_at, largest_then = self._suspects.pop(number)
        self.spurious_losses += 1
        needed = largest_then - number + 1
        self.packet_threshold = min(max(self.packet_threshold, needed), _MAX_PACKET_THRESHOLD)
        rtt = self._rtt()
        if rtt > 0:
            late = (now - sent_at) / rtt
            self.time_threshold = min(max(self.time_threshold, late), _MAX_TIME_THRESHOLD)
        if self._undo is not None and number in self._undo[0]:
            controller = self._cc
            for name, value in self._undo[1].items():
                if name not in _KEEP:
                    setattr(controller, name, value)
            self._undo = None

    def _rtt(self) -> float:
        if not self._rtt_initialized:
            return float(self._rtt_initial)
        return float(max(self._rtt_latest, self._rtt_smoothed))

    def _detect_loss(self, *, now: float, space: QuicPacketSpace) -> None:
        # RFC 9002 §6.1 (DetectAndRemoveLostPackets) with this path's thresholds.
        delay = self.time_threshold * self._rtt()
        largest = space.largest_acked_packet
        lost = []
        space.loss_time = None
        for number, packet in space.sent_packets.items():
            if number > largest:
                break
            assert packet.sent_time is not None  # set when the packet was sent
            # One expression for both tests: with "sent <= now - delay" here and
            # "sent + delay" as the timer, rounding can arm a timer that is due
            # yet declares nothing lost, and the timer fires forever.
            due = packet.sent_time + delay
            if number <= largest - self.packet_threshold or due <= now:
                lost.append(packet)
            elif space.loss_time is None or due < space.loss_time:
                space.loss_time = due
        if space.is_application_data:
            for packet in lost:
                self._suspects[packet.packet_number] = (packet.sent_time or now, largest)
            while len(self._suspects) > _SUSPECTS:
                del self._suspects[next(iter(self._suspects))]
        before = dict(vars(self._cc)) if lost and space.is_application_data else None
        self._on_packets_lost(
            now=now,
            packets=lost,
            persistent_congestion=self._in_persistent_congestion(packets=lost),
            space=space,
        )
        if before is not None and self._cc.congestion_window < before["congestion_window"]:
            self._undo = (frozenset(packet.packet_number for packet in lost), before)


class ReorderTolerantConnection(QuicConnection):
    """A ``QuicConnection`` whose loss detection is ``ReorderTolerantRecovery``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Swapped in place: the recovery object is built inside aioquic's
        # constructor from private state, and only its methods change.
        self._loss.__class__ = ReorderTolerantRecovery
        assert isinstance(self._loss, ReorderTolerantRecovery)
        self._loss.adopt()
