"""Named snapshots of a document (its history), kept in the store.

A named snapshot is the document's full Yjs state when it was saved (never
its text), with its version and time: ``collab/snapshot/<doc>/<name>``.
The names of a document's snapshots are one key, ``collab/snapshots/<doc>``
(a msgpack list of ``SnapshotInfo``, oldest first), updated with
``compare_and_set`` so that two nodes saving at once lose nothing. At most
``MAX_SNAPSHOTS`` per document: saving one more is refused, naming the
bound (saving under an existing name replaces it).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

import trouper
from trouper.stores import Store, StoreBusy

from ._protocol import DOC_ID, NamedSnapshot, SnapshotInfo

#: Named snapshots one document keeps (each is a full copy of its state).
MAX_SNAPSHOTS = 50
#: Compare-and-set rounds lost in a row before giving up (retryable).
_CAS_ROUNDS = 32

_encode = msgspec.msgpack.Encoder().encode
_decode_index = msgspec.msgpack.Decoder(list[SnapshotInfo]).decode
_decode_snapshot = msgspec.msgpack.Decoder(NamedSnapshot).decode


def _index_key(doc: str) -> str:
    return f"collab/snapshots/{doc}"


def _entry_key(doc: str, name: str) -> str:
    return f"collab/snapshot/{doc}/{name}"


def check_name(name: object) -> str:
    if not isinstance(name, str) or DOC_ID.fullmatch(name) is None:
        raise trouper.InvalidArgument(
            f"bad snapshot name {name!r:.80}: 1 to 128 of A-Z a-z 0-9 . _ -"
        )
    return name


async def _update_index(
    store: Store, doc: str, change: Callable[[list[SnapshotInfo]], list[SnapshotInfo]]
) -> None:
    key = _index_key(doc)
    for _ in range(_CAS_ROUNDS):
        raw = await store.get(key)
        infos = _decode_index(raw) if raw else []
        new = change(infos)
        if await store.compare_and_set(key, raw, _encode(new) if new else None):
            return
    raise StoreBusy(f"{key}: {_CAS_ROUNDS} updates in a row lost to other writers")


async def save(store: Store, doc: str, info: SnapshotInfo, update: bytes) -> None:
    check_name(info.name)

    def add(infos: list[SnapshotInfo]) -> list[SnapshotInfo]:
        kept = [old for old in infos if old.name != info.name]
        if len(kept) >= MAX_SNAPSHOTS:
            raise trouper.InvalidArgument(
                f"document {doc!r} has {MAX_SNAPSHOTS} named snapshots, the limit"
                " (MAX_SNAPSHOTS): restore or delete one first"
            )
        return [*kept, info]

    # The state first: an index entry never names a snapshot that is not there.
    await store.put(_entry_key(doc, info.name), _encode(NamedSnapshot(info, update)))
    await _update_index(store, doc, add)


async def listing(store: Store, doc: str) -> list[SnapshotInfo]:
    raw = await store.get(_index_key(doc))
    return _decode_index(raw) if raw else []


async def load(store: Store, doc: str, name: str) -> NamedSnapshot | None:
    raw = await store.get(_entry_key(doc, check_name(name)))
    return _decode_snapshot(raw) if raw else None


async def delete_all(store: Store, doc: str) -> None:
    for info in await listing(store, doc):
        await store.delete(_entry_key(doc, info.name))
    await store.delete(_index_key(doc))
