"""The hubs: one per document per node, with its sessions counted by the
node's registry and stopped with its last session; and, on a two-node
cluster in this process, a hub whose document's owner goes away
resubscribes to the document re-created on its own node, and its sessions
converge without reconnecting."""

from pathlib import Path

import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab._app import CollabSettings, open_collab
from examples.collab._hub import HUB_REGISTRY_NAME, GetHub, HubInfo
from examples.collab.client import open_client

import trouper
from trouper.web import GatewayHandle

COOKIE = b"collab-hubs-test-cookie"


async def _counts(node: trouper.Node) -> dict[str, int]:
    registry = await node.lookup(HUB_REGISTRY_NAME)
    counts: dict[str, int] = await registry.ask(HubInfo())
    return counts


async def _until_counts(node: trouper.Node, want: dict[str, int]) -> None:
    while True:  # polled (the caller bounds it): a closed socket reaches the registry later
        if await _counts(node) == want:
            return
        await trio.sleep(0.02)


async def test_one_hub_per_document_until_its_last_session(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 2):
        async with collab_node(tmp_path / "collab.db", sessions=False) as (node, gateway):
            async with (
                open_client([gateway.url], "a", "ada") as ada,
                open_client([gateway.url], "a", "bo") as bo,
            ):
                async with open_client([gateway.url], "b", "cy") as cy:
                    for client in (ada, bo, cy):
                        await client.synced()
                    assert await _counts(node) == {"a": 2, "b": 1}
                await _until_counts(node, {"a": 2})  # b's hub stopped with its last session
                registry = await node.lookup(HUB_REGISTRY_NAME)
                assert await registry.ask(GetHub("b")) is None
                hub = await registry.ask(GetHub("a"))
                assert await hub.ask(HubInfo()) == 1  # one stream for both sessions

                # A hub that stops on its own is replaced, with its sessions,
                # and they are resynced (whatever it had not passed on yet).
                await node.stop(hub)
                while True:  # polled, bounded: the registry sees it stop
                    replacement = await registry.ask(GetHub("a"))
                    if replacement not in (None, hub):
                        break
                    await trio.sleep(0.02)
                assert await _counts(node) == {"a": 2}
                ada.text += "after the replacement"
                await bo.wait_for(lambda: str(bo.text) == "after the replacement")
            await _until_counts(node, {})


async def _serve_a(
    b: trouper.Node,
    store: str,
    stop: trio.Event,
    task_status: trio.TaskStatus[GatewayHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with (
        trouper.open_node(
            "a", listen="tcp://127.0.0.1:0", seeds=b.addresses, cookie=COOKIE, store=store
        ) as a,  # fmt: skip
        open_collab(a, CollabSettings(sessions=False)) as gateway,
    ):
        await a.wait_for_members(2, timeout=STEP)
        task_status.started(gateway)
        await stop.wait()


async def test_a_hub_follows_its_document_to_a_new_owner(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/collab.db"
    with trio.fail_after(STEP * 3):
        async with (
            trouper.open_node("b", listen="tcp://127.0.0.1:0", cookie=COOKIE, store=store) as b,
            open_collab(b, CollabSettings(sessions=False)) as gateway_b,
            trio.open_nursery() as nursery,
        ):
            stop_a = trio.Event()
            gateway_a = await nursery.start(_serve_a, b, store, stop_a)
            async with open_client([gateway_a.url, gateway_b.url], "moving", "ada") as ada:
                await ada.synced()  # before bo connects: the document lives on a
                ada.text += "ada on a. "
                await ada.synced()
                async with open_client([gateway_b.url], "moving", "bo") as bo:
                    await bo.synced()
                    hub = await (await b.lookup(HUB_REGISTRY_NAME)).ask(GetHub("moving"))
                    assert await hub.ask(HubInfo()) == 1

                    stop_a.set()  # node a closes: the document passivates with it
                    while True:  # polled, bounded: the hub resubscribes
                        if await hub.ask(HubInfo()) >= 2:
                            break
                        await trio.sleep(0.02)
                    await ada.wait_for(lambda: ada.online and ada.url == gateway_b.url)
                    await ada.synced()
                    bo.text += "bo on b. "  # reaches ada through the resubscribed hub
                    await ada.wait_for(lambda: "bo on b" in str(ada.text))
                    assert bo.connections == 1
                    async with open_client([gateway_b.url], "moving", "cy") as cy:
                        await cy.synced()
                        want = "ada on a. bo on b. "
                        assert str(cy.text) == str(ada.text) == str(bo.text) == want
            nursery.cancel_scope.cancel()
