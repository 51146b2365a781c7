"""The document's awareness table (who is where, with which name and colour),
pure: no I/O, no Trio.

A Yjs awareness update is ``varuint count`` then, per client, ``varuint
client id``, ``varuint clock`` and a var-length JSON string (``"null"`` or
empty: the client is gone). A state replaces the one held for its client
only with a higher clock (the Yjs rule), so an old update replayed late
changes nothing. Each state remembers the origin (connection) that brought
it, so that when a connection drops, exactly the states it introduced are
removed (``drop_origin``), and the removal is itself an awareness update the
others apply.

Bounded: at most ``max_states`` clients per document and ``max_state_bytes``
per state; an update breaking either is refused whole (``AwarenessError``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import write_var_uint

#: Clients with an awareness state in one document: a page has one; a hostile
#: client inventing client ids cannot grow the table beyond this.
MAX_AWARENESS_STATES = 256
#: Bytes of one client's JSON state (a name, a colour, a cursor: ~200 bytes).
MAX_AWARENESS_STATE_BYTES = 4096
#: A state not renewed for this long is removed (seconds): Yjs clients renew
#: theirs every 15 s, so only the states of a page, or a hub, that died go.
AWARENESS_TIMEOUT = 30.0
#: Largest clock or client id accepted (Yjs uses 53-bit integers).
_MAX_UINT = 2**53


class AwarenessError(ValueError):
    """A malformed or oversized awareness update (nothing was applied)."""


@dataclass(frozen=True, slots=True)
class Entry:
    client: int
    clock: int
    state: str  # the JSON text, "null" once removed
    origin: str


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise AwarenessError("awareness update ends inside a number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise AwarenessError("awareness update has a number over 64 bits")
    if value > _MAX_UINT:
        raise AwarenessError(f"awareness number {value} is over 2**53")
    return value, pos


def decode(update: bytes, max_state_bytes: int = MAX_AWARENESS_STATE_BYTES) -> list[Entry]:
    """The entries of an awareness update (origin left empty)."""
    count, pos = _read_uint(update, 0)
    if count > MAX_AWARENESS_STATES:
        raise AwarenessError(f"awareness update of {count} states (at most {MAX_AWARENESS_STATES})")
    entries = []
    for _ in range(count):
        client, pos = _read_uint(update, pos)
        clock, pos = _read_uint(update, pos)
        length, pos = _read_uint(update, pos)
        if length > max_state_bytes:
            raise AwarenessError(
                f"awareness state of client {client} is {length} bytes"
                f" (MAX_AWARENESS_STATE_BYTES is {max_state_bytes})"
            )
        if pos + length > len(update):
            raise AwarenessError("awareness update ends inside a state")
        try:
            state = update[pos : pos + length].decode()
        except UnicodeDecodeError as exc:
            raise AwarenessError(f"awareness state of client {client} is not UTF-8") from exc
        pos += length
        entries.append(Entry(client, clock, state or "null", ""))
    if pos != len(update):
        raise AwarenessError(f"{len(update) - pos} bytes after the awareness update")
    return entries


def encode(entries: list[Entry]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        text = entry.state.encode()
        out += write_var_uint(entry.client) + write_var_uint(entry.clock)
        out += write_var_uint(len(text)) + text
    return bytes(out)


def merge(updates: list[bytes]) -> bytes:
    """One update equivalent to applying ``updates`` in turn (per client the
    highest clock wins; at equal clocks the later one)."""
    latest: dict[int, Entry] = {}
    for update in updates:
        for entry in decode(update):
            held = latest.get(entry.client)
            if held is None or entry.clock >= held.clock:
                latest[entry.client] = entry
    return encode(list(latest.values()))


class AwarenessTable:
    def __init__(
        self,
        max_states: int = MAX_AWARENESS_STATES,
        max_state_bytes: int = MAX_AWARENESS_STATE_BYTES,
    ) -> None:
        self.max_states = max_states
        self.max_state_bytes = max_state_bytes
        #: client id -> its latest entry, removed ones kept (with "null") so
        #: that their clock still wins over a late replay; bounded with them.
        self._entries: dict[int, Entry] = {}
        self._seen: dict[int, float] = {}  # client id -> when its state last came

    def __len__(self) -> int:
        """Live states (removed clients not counted)."""
        return sum(1 for entry in self._entries.values() if entry.state != "null")

    def apply(self, update: bytes, origin: str, now: float = 0.0) -> bytes:
        """Apply ``update`` from ``origin`` at time ``now``; returns what
        changed, encoded (empty ``b""`` when nothing did). Raises
        ``AwarenessError`` and changes nothing if it is malformed or would
        exceed a bound."""
        changed = []
        for entry in decode(update, self.max_state_bytes):
            held = self._entries.get(entry.client)
            if held is not None and entry.clock < held.clock:
                continue
            if held is not None and entry.clock == held.clock and entry.state != "null":
                continue
            changed.append(Entry(entry.client, entry.clock, entry.state, origin))
        added = {e.client for e in changed if e.client not in self._entries}
        if len(self._entries) + len(added) > self.max_states:
            self._forget_removed(len(self._entries) + len(added) - self.max_states)
            if len(self._entries) + len(added) > self.max_states:
                raise AwarenessError(
                    f"a document keeps at most {self.max_states} awareness states"
                    " (MAX_AWARENESS_STATES)"
                )
        for entry in changed:
            self._entries[entry.client] = entry
            self._seen[entry.client] = now
        return encode(changed) if changed else b""

    def expire(self, now: float, timeout: float = AWARENESS_TIMEOUT) -> bytes:
        """Remove the live states not renewed since ``now - timeout``; the
        removal, encoded (``b""`` if none)."""
        removed = []
        for client, entry in self._entries.items():
            if entry.state != "null" and now - self._seen.get(client, now) > timeout:
                removed.append(Entry(client, entry.clock + 1, "null", entry.origin))
        for entry in removed:
            self._entries[entry.client] = entry
        return encode(removed) if removed else b""

    def _forget_removed(self, how_many: int) -> None:
        gone = [c for c, e in self._entries.items() if e.state == "null"][:how_many]
        for client in gone:
            del self._entries[client]
            self._seen.pop(client, None)

    def drop_origin(self, origin: str) -> bytes:
        """Remove the live states ``origin`` brought; the removal, encoded
        (``b""`` if it had none)."""
        removed = []
        for client, entry in self._entries.items():
            if entry.origin == origin and entry.state != "null":
                removed.append(Entry(client, entry.clock + 1, "null", origin))
        for entry in removed:
            self._entries[entry.client] = entry
        return encode(removed) if removed else b""

    def encode_all(self) -> bytes:
        """Every live state, as one update (for a client that just joined)."""
        return encode([e for e in self._entries.values() if e.state != "null"])

    def states(self) -> dict[int, str]:
        return {c: e.state for c, e in self._entries.items() if e.state != "null"}
