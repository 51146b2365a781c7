"""``DocumentDirectory``: each node's way to the one ``DocumentActor`` of a
document, wherever it runs (as examples/chat's ``RoomDirectory`` for rooms).

Every node runs one, named ``DIRECTORY_NAME``. ``OpenDocument`` looks the
name ``doc:<id>`` up in the cluster; if nobody has it, the directory claims
the document in the store (``collab/owner/<id>``, ``compare_and_set``,
taking over the claim of a node that is down or unknown) and the winner
spawns the actor as its own supervised child under that name; the others
wait for the name to appear. So a document whose node died comes back, from
the store, on a live node, at the first ``OpenDocument`` after it, from any
node. The actor's ``PersistentActor`` claim then fences the old owner out.

Refusals are answers (``ctx.refuse``), never failures of the directory: a
malformed id (``InvalidArgument``), an unknown document with
``create=False`` (``ActorNotFound``), a node already hosting
``max_documents`` documents or a full catalog (``InvalidArgument`` naming
the limit), a store error. A refused request creates nothing.

One request at a time: an ``OpenDocument`` that waits for another node's
claim (a node not yet found down) holds up the ones behind it on this
node, up to ``claim_timeout``.
"""

# No ``from __future__ import annotations``: handler annotations are read at runtime.
import logging

import trio

import trouper
from trouper.stores import Store

from . import _catalog
from ._document import PASSIVATE_AFTER, SNAPSHOT_EVERY, DocumentActor
from ._messages import OpenDocument
from ._protocol import CountHosted, check_doc_id

log = logging.getLogger("examples.collab.sync")

#: Documents one node hosts at once (each is a pycrdt Doc in memory).
MAX_DOCUMENTS_PER_NODE = 1000
#: How long a directory tries to find or claim a document (seconds).
CLAIM_TIMEOUT = 15.0
#: How long a claim by a node this one has never heard of is respected.
UNKNOWN_OWNER_WAIT = 2.0


class DocumentDirectory(trouper.Actor):
    def __init__(
        self,
        store_url: str | None = None,
        passivate_after: float | None = PASSIVATE_AFTER,
        snapshot_every: int | None = SNAPSHOT_EVERY,
        max_documents: int = MAX_DOCUMENTS_PER_NODE,
        claim_timeout: float = CLAIM_TIMEOUT,
    ) -> None:
        self.store_url = store_url  # None: the node's default store
        self.passivate_after = passivate_after
        self.snapshot_every = snapshot_every
        self.max_documents = max_documents
        self.claim_timeout = claim_timeout
        self.hosted: set[trouper.ActorRef] = set()  # the documents this node runs now

    async def on_start(self) -> None:
        self.store: Store = await self.ctx.store(self.store_url)

    @trouper.handler
    async def document_stopped(self, msg: trouper.Terminated) -> None:
        self.hosted.discard(msg.ref)  # passivated, deleted, or its node is stopping

    @trouper.handler
    async def hosted_count(self, msg: CountHosted) -> int:
        """How many documents this node runs now."""
        return len(self.hosted)

    async def _create(self, doc: str, name: str) -> trouper.ActorRef:
        args = (doc, self.store_url, self.passivate_after, self.snapshot_every)
        ref = await self.ctx.spawn(DocumentActor, *args, name=name, restart="transient")
        self.hosted.add(ref)
        self.ctx.watch(ref)
        return ref

    @trouper.handler
    async def open(self, msg: OpenDocument) -> trouper.ActorRef | None:
        try:
            return await self._open(msg)
        except trouper.TrouperError as exc:
            # Refused (a bad id, a limit), not found, or the store failing
            # for a moment (StoreUnavailable): the asker's error. Failing
            # here would restart the directory, and stop every document of
            # this node with it.
            self.ctx.refuse(exc)
            return None

    async def _open(self, msg: OpenDocument) -> trouper.ActorRef:
        doc = check_doc_id(msg.doc)
        node = self.ctx.node
        name = f"doc:{doc}"
        key = f"collab/owner/{doc}"
        me = node.id.encode()
        waited_for_stranger = False
        in_catalog = False
        with trio.move_on_after(self.claim_timeout):
            while True:
                try:
                    return await node.lookup(name)
                except trouper.ActorNotFound:
                    pass
                owner = await self.store.get(key)
                members = {m.node_id.encode(): m.status for m in node.members()}
                if owner is not None and owner not in members and not waited_for_stranger:
                    # An owner this node never heard of: a node not met yet,
                    # or one long gone. Give gossip a moment before taking over.
                    waited_for_stranger = True
                    if node.addresses or len(members) > 1:
                        try:
                            return await node.lookup(name, timeout=UNKNOWN_OWNER_WAIT)
                        except trouper.ActorNotFound:
                            continue
                if owner == me or owner is None or members.get(owner) in (None, "down"):
                    if len(self.hosted) >= self.max_documents:
                        raise trouper.InvalidArgument(
                            f"this node hosts {self.max_documents} documents, its limit"
                            f" (max_documents): document {doc!r} cannot be opened here now"
                        )
                    if not in_catalog:
                        if msg.create:
                            await _catalog.create(self.store, doc)
                        elif await _catalog.get(self.store, doc) is None:
                            raise trouper.ActorNotFound(f"no document {doc!r}")
                        in_catalog = True
                    # Nobody alive hosts it: claim it (one claimant wins).
                    if owner == me or await self.store.compare_and_set(key, owner, me):
                        try:
                            return await self._create(doc, name)
                        except trouper.NameTaken:
                            pass  # passivating: its name goes after its claim
                    continue
                try:  # a live node claimed it: its actor will show up
                    return await node.lookup(name, timeout=1.0)
                except trouper.ActorNotFound:
                    pass  # not yet, or its node died meanwhile: look again
        raise trouper.ActorNotFound(f"document {doc!r} could not be found or created in time")
