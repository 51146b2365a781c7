"""The ``StateSync`` service: documents, operations, locks, statistics,
named snapshots and subscriptions, as a trouper service
(``collab.state-sync``) that any node can call (``node.proxy(StateSync)``).

Each node runs one member next to its ``DocumentDirectory``; a call finds
the document's actor through that directory (wherever in the cluster it
runs) and asks it. The catalog (titles, the list of ids) lives in the store
(``_catalog``). A refused call raises its error to the caller
(``InvalidArgument``, ``ActorNotFound``...), never fails the member.
"""

# No ``from __future__ import annotations``: rpc annotations are read at runtime.
from collections.abc import AsyncIterator

import msgspec

import trouper
from trouper.stores import Store

from . import _catalog
from ._catalog import DocumentPage
from ._directory import CLAIM_TIMEOUT, MAX_DOCUMENTS_PER_NODE, DocumentDirectory
from ._document import PASSIVATE_AFTER, SNAPSHOT_EVERY
from ._messages import (
    DIRECTORY_NAME,
    Applied,
    ApplyUpdate,
    DocEvent,
    LockFence,
    OpenDocument,
    Subscribe,
)
from ._protocol import (
    AcquireLock,
    DeleteDocument,
    DocStats,
    GetStats,
    ListSnapshots,
    LockLease,
    Operations,
    OperationsSince,
    ReleaseLock,
    RenewLock,
    RestoreSnapshot,
    SaveSnapshot,
    SnapshotInfo,
    SnapshotList,
    check_doc_id,
)

SERVICE_NAME = "collab.state-sync"
#: How long a member waits for a document's answer (seconds).
CALL_TIMEOUT = 20.0


@trouper.message(name="collab-sync:DocumentInfo")
class DocumentInfo(msgspec.Struct, frozen=True):
    id: str
    title: str
    created: float  # wall clock
    version: int  # the last persisted sequence number
    size: int  # bytes of the encoded state


@trouper.service(SERVICE_NAME)
class StateSync(trouper.Actor):
    def __init__(
        self,
        directory: trouper.ActorRef,
        store_url: str | None = None,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.directory = directory  # this node's DocumentDirectory
        self.store_url = store_url
        self.timeout = timeout

    async def on_start(self) -> None:
        self.store: Store = await self.ctx.store(self.store_url)

    async def _open(self, doc: str, create: bool = False) -> trouper.ActorRef:
        request = OpenDocument(check_doc_id(doc), create)
        ref = await self.directory.ask(request, timeout=self.timeout)
        assert isinstance(ref, trouper.ActorRef)
        return ref

    async def _ask(self, doc: str, msg: object) -> object:
        return await (await self._open(doc)).ask(msg, timeout=self.timeout)

    # ------------------------------------------------------------ documents

    @trouper.rpc
    async def create_document(self, doc: str, title: str = "") -> DocumentInfo:
        await _catalog.create(self.store, check_doc_id(doc), title)
        return await self.get_document(doc)

    @trouper.rpc(idempotent=True)
    async def get_document(self, doc: str) -> DocumentInfo:
        meta = await _catalog.get(self.store, check_doc_id(doc))
        if meta is None:
            raise trouper.ActorNotFound(f"no document {doc!r}")
        stats = await self._ask(doc, GetStats())
        assert isinstance(stats, DocStats)
        return DocumentInfo(meta.id, meta.title, meta.created, stats.version, stats.size)

    @trouper.rpc(idempotent=True)
    async def list_documents(self, limit: int = 100, after: str = "") -> DocumentPage:
        """One page of the catalog, in id order (``after``: the previous page's
        ``next_after``)."""
        return await _catalog.listing(self.store, limit, after)

    @trouper.rpc
    async def delete_document(self, doc: str) -> bool:
        """Empty the document, drop its history and its catalog entry."""
        if await _catalog.get(self.store, check_doc_id(doc)) is None:
            return False
        await self._ask(doc, DeleteDocument())
        return await _catalog.delete(self.store, doc)

    # ------------------------------------------------------------ operations

    @trouper.rpc
    async def apply(self, doc: str, update: bytes, fence: LockFence | None = None) -> int:
        applied = await self._ask(doc, ApplyUpdate(update, f"service:{self.ctx.node.id}", fence))
        assert isinstance(applied, Applied)
        return applied.version

    @trouper.rpc(idempotent=True)
    async def operations_since(self, doc: str, version: int, limit: int = 1000) -> Operations:
        """The updates stored after ``version``, oldest first (at most
        ``limit``, and MAX_OPERATIONS)."""
        found = await self._ask(doc, OperationsSince(version, limit))
        assert isinstance(found, Operations)
        return found

    # ------------------------------------------------------------ locks

    @trouper.rpc
    async def acquire_lock(self, doc: str, scope: str, session_id: str, ttl: float) -> LockLease:
        lease = await self._ask(doc, AcquireLock(scope, session_id, ttl))
        assert isinstance(lease, LockLease)
        return lease

    @trouper.rpc
    async def renew_lock(
        self, doc: str, scope: str, session_id: str, token: int, ttl: float
    ) -> LockLease:
        lease = await self._ask(doc, RenewLock(scope, session_id, token, ttl))
        assert isinstance(lease, LockLease)
        return lease

    @trouper.rpc
    async def release_lock(
        self, doc: str, scope: str, session_id: str, token: int | None = None
    ) -> bool:
        return bool(await self._ask(doc, ReleaseLock(scope, session_id, token)))

    # ------------------------------------------------------------ the rest

    @trouper.rpc(idempotent=True)
    async def stats(self, doc: str) -> DocStats:
        stats = await self._ask(doc, GetStats())
        assert isinstance(stats, DocStats)
        return stats

    @trouper.rpc
    async def save_snapshot(self, doc: str, name: str) -> SnapshotInfo:
        info = await self._ask(doc, SaveSnapshot(name))
        assert isinstance(info, SnapshotInfo)
        return info

    @trouper.rpc(idempotent=True)
    async def list_snapshots(self, doc: str) -> SnapshotList:
        infos = await self._ask(doc, ListSnapshots())
        assert isinstance(infos, SnapshotList)
        return infos

    @trouper.rpc
    async def restore_snapshot(self, doc: str, name: str) -> int:
        version = await self._ask(doc, RestoreSnapshot(name))
        assert isinstance(version, int)
        return version

    @trouper.rpc
    async def subscribe(self, doc: str) -> AsyncIterator[DocEvent]:
        """The document's events: a "resync" first, then updates and
        awareness changes (a slow reader gets them merged, or a resync)."""
        ref = await self._open(doc)
        async with ref.stream(Subscribe(f"service:{self.ctx.node.id}")) as events:
            async for event in events:
                yield event


async def spawn_state_sync(
    node: trouper.Node,
    *,
    store_url: str | None = None,
    passivate_after: float | None = PASSIVATE_AFTER,
    snapshot_every: int | None = SNAPSHOT_EVERY,
    max_documents: int = MAX_DOCUMENTS_PER_NODE,
    claim_timeout: float = CLAIM_TIMEOUT,
) -> trouper.ActorRef:
    """Start this node's ``DocumentDirectory`` (named ``DIRECTORY_NAME``)
    and its ``StateSync`` member; returns the directory's ref."""
    directory = await node.spawn(
        DocumentDirectory,
        store_url,
        passivate_after,
        snapshot_every,
        max_documents,
        claim_timeout,
        name=DIRECTORY_NAME,
    )
    await node.spawn(StateSync, directory, store_url, name=SERVICE_NAME)
    return directory
