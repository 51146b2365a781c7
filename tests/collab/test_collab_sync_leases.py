"""Locks on a DocumentActor: fenced writes, conflicts, expiry, release when
the session ends, and tokens that keep increasing across a new owner."""

from __future__ import annotations

import pytest
import trio
from collab_sync_helpers import Client, open_doc, server_text, wait_until
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sync import spawn_state_sync
from examples.collab.sync._messages import ApplyUpdate, LockFence
from examples.collab.sync._protocol import AcquireLock, LockLease, ReleaseLock, RenewLock

import trouper


async def lease(ref: trouper.ActorRef, scope: str, session: str, ttl: float = 30.0) -> LockLease:
    got = await ref.ask(AcquireLock(scope, session, ttl))
    assert isinstance(got, LockLease)
    return got


async def test_fenced_writes_conflicts_and_stale_tokens() -> None:
    a = Client("a")
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "locked")
            intro = await lease(ref, "intro", "s1")
            body = await lease(ref, "body", "s2")  # another range: no conflict
            assert body.token > intro.token
            with pytest.raises(trouper.InvalidArgument, match="conflicts with 'intro'"):
                await lease(ref, "intro", "s2")
            with pytest.raises(trouper.InvalidArgument, match="conflicts"):
                await lease(ref, "*", "s3")  # the whole document conflicts with any range
            fence = LockFence("intro", intro.token)
            version = await ref.ask(ApplyUpdate(a.insert(0, "fenced "), "a", fence))
            # s1 takes the lock again: its old token is stale from now on.
            again = await lease(ref, "intro", "s1")
            assert again.token > body.token
            with pytest.raises(trouper.InvalidArgument) as refused:
                await ref.ask(ApplyUpdate(a.insert(0, "stale "), "a", fence))
            assert f"stale lock token {intro.token} for scope 'intro'" in str(refused.value)
            with pytest.raises(trouper.InvalidArgument, match="no lock is held there"):
                await ref.ask(ApplyUpdate(a.insert(0, "x"), "a", LockFence("end", 99)))
            assert await server_text(ref) == "fenced "  # nothing refused was applied
            renewed = await ref.ask(RenewLock("intro", "s1", again.token, 60.0))
            assert isinstance(renewed, LockLease) and renewed.token == again.token
            with pytest.raises(trouper.InvalidArgument, match="another session"):
                await ref.ask(RenewLock("intro", "s2", again.token, 60.0))
            assert await ref.ask(ReleaseLock("intro", "s2")) is False  # not the holder's
            assert await ref.ask(ReleaseLock("intro", "s1")) is True
            assert (await lease(ref, "*", "s2")).token > again.token  # only its own "body" left
            assert version.version >= 1


async def test_a_lease_expires_by_itself() -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "expiring")
            held = await lease(ref, "*", "s1", ttl=0.3)
            with pytest.raises(trouper.InvalidArgument, match="conflicts"):
                await lease(ref, "intro", "s2")

            async def free() -> bool:
                try:
                    await lease(ref, "intro", "s2")
                except trouper.InvalidArgument:
                    return False
                return True

            await wait_until(free, "the lease to expire", timeout=5)
            with pytest.raises(trouper.InvalidArgument, match="no lock is held there"):
                late = Client("a").insert(0, "late")
                await ref.ask(ApplyUpdate(late, "a", LockFence("*", held.token)))


async def test_a_sessions_locks_go_when_it_ends() -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "sessions")
            await lease(ref, "intro", "s1")
            await lease(ref, "body", "s1")
            other = await lease(ref, "end", "s2")
            node.publish(SESSION_EVENTS, SessionEnded("s1", "ada", "expired"))

            async def released() -> bool:
                try:
                    await lease(ref, "*", "s3")
                except trouper.InvalidArgument as exc:
                    return "'end'" in str(exc)  # only s2's lock is left in the way
                return False

            await wait_until(released, "s1's locks to go")
            fence = LockFence("end", other.token)
            assert await ref.ask(ApplyUpdate(Client("b").insert(0, "kept"), "b", fence))


async def test_tokens_keep_increasing_across_new_owners(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/leases.db"
    with trio.fail_after(30):
        async with trouper.open_node(store=url) as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "moving")
            first = await lease(ref, "intro", "s1")
            await node.stop(ref)
            ref = await open_doc(node, "moving")  # a new instance, recovered from the log
            second = await lease(ref, "body", "s2")
            assert second.token > first.token
            fence = LockFence("intro", first.token)  # the lease survived the restart
            await ref.ask(ApplyUpdate(Client("a").insert(0, "hi"), "a", fence))
        async with trouper.open_node(store=url) as node:  # another node, same store
            await spawn_state_sync(node)
            ref = await open_doc(node, "moving")
            third = await lease(ref, "end", "s3")
            assert third.token > second.token
            with pytest.raises(trouper.InvalidArgument, match="conflicts"):
                await lease(ref, "intro", "s4")
