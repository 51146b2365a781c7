"""``kill -9`` of the node that owns a document, in the middle of the editing.

Two node processes of ``python -m examples.collab`` share one store
(PostgreSQL, and a sqlite file). Python clients on both nodes, each with the
failover list (its own node first), type unique tokens into one document at
once. The owner's process is killed with SIGKILL halfway: the clients on it
reconnect to the survivor, the document comes back there from the store, and
the editing goes on. At the end every client's text is the same, equals a
fresh client's view from the survivor, and holds every token typed exactly
once: no acknowledged update lost, no text duplicated.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import trio
from collab_bench_helpers import (
    COOKIE,
    FAST_FAILURE,
    Typist,
    collab_node,
    token_counts,
)
from collab_edge_helpers import CollabProcess
from examples.collab.client import open_client

import trouper

DOC = "failover-doc"
CLIENTS_PER_NODE = 2
#: Tokens each client types before the kill, and after it.
BEFORE, AFTER = 12, 12


async def wait_until_converged(clients: list, expected: set[str], limit: float) -> None:
    """Poll (the clients converge asynchronously) until every text is the same
    and holds every expected token, or fail naming what is missing."""
    with trio.move_on_after(limit):
        while True:
            texts = {str(client.text) for client in clients}
            if len(texts) == 1 and set(token_counts(texts.pop())) >= expected:
                return
            await trio.sleep(0.05)
    texts = [str(client.text) for client in clients]
    missing = [sorted(expected - set(token_counts(text))) for text in texts]
    raise AssertionError(f"no convergence within {limit} s; missing per client: {missing}")


async def owner_of(observer: trouper.Node, nodes: list[CollabProcess], doc: str) -> CollabProcess:
    """The node that runs the document: its actor's name, looked up cluster-wide."""
    ref = await observer.lookup(f"doc:{doc}", timeout=10)
    (node,) = [n for n in nodes if n.node_id == ref.node_id]
    return node


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_kill_9_of_the_owner_mid_editing_loses_and_duplicates_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        store = request.getfixturevalue("postgres_url")
    else:
        store = f"sqlite:///{tmp_path / 'collab.db'}"
    with trio.fail_after(60):
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(collab_node(tmp_path, "a", store))
            b = await stack.enter_async_context(
                collab_node(tmp_path, "b", store, "--seed", a.address)
            )
            nodes = [a, b]
            # The test's own node joins the cluster to see where the document runs.
            observer = await stack.enter_async_context(
                trouper.open_node(
                    "observer",
                    listen="tcp://127.0.0.1:0",
                    seeds=[a.address],
                    cookie=COOKIE,
                    **FAST_FAILURE,
                )
            )
            await observer.wait_for_members(3, timeout=10)
            typists: list[Typist] = []
            for number in range(CLIENTS_PER_NODE * len(nodes)):
                home = nodes[number % len(nodes)]
                urls = [home.http, *(n.http for n in nodes if n is not home)]
                name = f"{home.tag}{number}"
                client = await stack.enter_async_context(open_client(urls, DOC, name))
                await client.synced()
                typists.append(Typist(name, client, seed=1500 + number))
            owner = await owner_of(observer, nodes, DOC)
            survivor = b if owner is a else a

            async with trio.open_nursery() as nursery:
                for typist in typists:
                    nursery.start_soon(typist.type_tokens, BEFORE + AFTER)
                # Everyone has typed BEFORE tokens and is still typing: some edits
                # are stored, some in flight, some not yet sent when the owner dies.
                for typist in typists:
                    await typist.reached(BEFORE)
                owner.kill()
                await owner.process.wait()

            typed = {token for typist in typists for token in typist.typed}
            assert len(typed) == len(typists) * (BEFORE + AFTER)
            clients = [typist.client for typist in typists]
            await wait_until_converged(clients, typed, limit=30)
            text = str(clients[0].text)
            counts = token_counts(text)
            assert set(counts) == typed
            assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1]
            assert text == "".join(token for token in counts.elements())

            # The owner's clients failed over to the survivor by themselves; the
            # survivor's kept their one connection.
            for typist in typists:
                client = typist.client
                assert client.url == survivor.http, (typist.name, client.url)
                moved = typist.name.startswith(owner.tag)
                assert (client.connections >= 2) if moved else (client.connections == 1), (
                    typist.name,
                    client.closes,
                )

            # The survivor now runs the document, rebuilt from the store and the
            # clients' resends: a newcomer sees exactly the same text.
            async with open_client([survivor.http], DOC, "fresh") as fresh:
                await fresh.synced()
                assert str(fresh.text) == text
            assert (await owner_of(observer, [survivor], DOC)) is survivor
            async with httpx.AsyncClient(base_url=survivor.http, timeout=10) as http:
                response = await http.get(f"/api/docs/{DOC}/stats")
            stats = response.raise_for_status().json()
            # one live hub (the survivor's) subscribes now; the text's state is stored
            assert stats["subscribers"] == 1, stats
            assert stats["node"] == survivor.info["node"], stats
            assert stats["version"] >= 1 and stats["size"] >= len(text), stats
