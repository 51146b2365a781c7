"""The catalog of documents, in the store: who exists, with which title.

``collab/doc/<id>`` holds a document's metadata (``DocumentMeta``, msgpack);
``collab/docs`` the sorted list of every id (the index that ``list``
pages through), changed with ``compare_and_set`` so that nodes creating and
deleting documents at once lose nothing. The index is bounded by
``MAX_CATALOG``: creating one document more is refused, naming the bound.
Versions and sizes are not here: they change with every edit, and the
document's actor answers them (``get_document``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

import msgspec

import trouper
from trouper.stores import Store, StoreBusy

#: Documents in one catalog (the index is one store value: at most ~1.3 MB of ids).
MAX_CATALOG = 10_000
#: Characters of a document's title.
MAX_TITLE = 200
#: Documents one ``list`` returns at most.
MAX_PAGE = 1000
#: Compare-and-set rounds lost in a row before giving up (retryable).
_CAS_ROUNDS = 32

INDEX_KEY = "collab/docs"


@trouper.message(name="collab-sync:DocumentMeta")
class DocumentMeta(msgspec.Struct, frozen=True):
    id: str
    title: str
    created: float  # wall clock


@trouper.message(name="collab-sync:DocumentPage")
class DocumentPage(msgspec.Struct, frozen=True):
    """One page of the catalog; ``next_after`` is the ``after`` of the next
    page ("" when this is the last)."""

    documents: list[DocumentMeta]
    next_after: str = ""


_encode = msgspec.msgpack.Encoder().encode
_decode_meta = msgspec.msgpack.Decoder(DocumentMeta).decode
_decode_index = msgspec.msgpack.Decoder(list[str]).decode


def meta_key(doc: str) -> str:
    return f"collab/doc/{doc}"


async def _change_index(store: Store, change: Callable[[list[str]], list[str] | None]) -> None:
    for _ in range(_CAS_ROUNDS):
        raw = await store.get(INDEX_KEY)
        ids = _decode_index(raw) if raw else []
        new = change(ids)
        if new is None:
            return  # nothing to change
        if await store.compare_and_set(INDEX_KEY, raw, _encode(new)):
            return
    raise StoreBusy(f"{INDEX_KEY}: {_CAS_ROUNDS} updates in a row lost to other writers")


async def get(store: Store, doc: str) -> DocumentMeta | None:
    raw = await store.get(meta_key(doc))
    return _decode_meta(raw) if raw else None


async def create(store: Store, doc: str, title: str = "") -> DocumentMeta:
    """The document's metadata, created (with ``title``) if it did not exist."""
    if len(title) > MAX_TITLE:
        raise trouper.InvalidArgument(f"a title has at most {MAX_TITLE} characters")

    def add(ids: list[str]) -> list[str] | None:
        at = bisect.bisect_left(ids, doc)
        if at < len(ids) and ids[at] == doc:
            return None
        if len(ids) >= MAX_CATALOG:
            raise trouper.InvalidArgument(
                f"the catalog holds {MAX_CATALOG} documents, its limit (MAX_CATALOG):"
                f" document {doc!r} cannot be created"
            )
        return [*ids[:at], doc, *ids[at:]]

    await _change_index(store, add)
    meta = DocumentMeta(doc, title or doc, time.time())
    if not await store.compare_and_set(meta_key(doc), None, _encode(meta)):
        existing = await get(store, doc)
        if existing is not None:
            return existing
        await store.put(meta_key(doc), _encode(meta))
    return meta


async def delete(store: Store, doc: str) -> bool:
    """Remove the document from the catalog; True if it was there."""
    found = False

    def remove(ids: list[str]) -> list[str] | None:
        nonlocal found
        at = bisect.bisect_left(ids, doc)
        found = at < len(ids) and ids[at] == doc
        return [*ids[:at], *ids[at + 1 :]] if found else None

    await _change_index(store, remove)
    existed = await store.delete(meta_key(doc))
    return found or existed


async def listing(store: Store, limit: int = 100, after: str = "") -> DocumentPage:
    """Up to ``limit`` documents with ids after ``after``, in id order."""
    raw = await store.get(INDEX_KEY)
    ids = _decode_index(raw) if raw else []
    start = bisect.bisect_right(ids, after) if after else 0
    end = start + max(1, min(limit, MAX_PAGE))
    metas = []
    for doc in ids[start:end]:
        meta = await get(store, doc)
        metas.append(meta if meta is not None else DocumentMeta(doc, doc, 0.0))
    return DocumentPage(metas, metas[-1].id if end < len(ids) else "")
