"""``kill -9`` of the node that owns a document, in the middle of editing,
with two node processes sharing one sqlite store:

- ada's client (its URL list: a, then b) loses its connection and fails
  over to b by itself; what she typed while it did is not lost;
- bo, on b all along, keeps his connection: b's hub of the document
  resubscribes to the document's new owner (re-created on b from the
  store) and resyncs him;
- in the end ada, bo and a fresh client on b hold the same text, every
  acknowledged piece in it exactly once.
"""

from pathlib import Path

import trio
from collab_edge_helpers import FAST_FAILURE_FLAGS, STEP, collab_process
from examples.collab.client import open_client


async def test_kill_9_of_the_owner_mid_edit(tmp_path: Path) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_text("collab-failover-cookie\n")
    cookie.chmod(0o600)
    store = f"sqlite:///{tmp_path}/collab.db"
    common = ["--cookie-file", str(cookie), "--store", store, *FAST_FAILURE_FLAGS]
    with trio.fail_after(STEP * 5):
        async with collab_process(tmp_path, "a", "--listen", "tcp://127.0.0.1:0", *common) as a:
            seed = a.info["addresses"][0]
            async with collab_process(tmp_path, "b", "--seed", seed, *common) as b:
                url_a, url_b = a.info["http"], b.info["http"]
                async with open_client([url_a, url_b], "minutes", "ada") as ada:
                    await ada.synced()  # before bo connects: the document lives on a
                    ada.text += "ada-acked. "
                    await ada.synced()
                    async with open_client([url_b], "minutes", "bo") as bo:
                        await bo.synced()
                        bo.text += "bo-acked. "
                        await bo.synced()
                        await ada.wait_for(lambda: "bo-acked" in str(ada.text))

                        ada.text += "ada-in-flight. "  # sent, maybe not stored: a dies now
                        a.process.kill()
                        await a.process.wait()
                        ada.text += "ada-during-failover. "
                        bo.text += "bo-during-failover. "

                        await ada.wait_for(lambda: ada.online and ada.url == url_b)
                        await ada.synced()
                        await bo.synced()
                        pieces = ["ada-acked. ", "bo-acked. ", "ada-in-flight. "]
                        pieces += ["ada-during-failover. ", "bo-during-failover. "]
                        await ada.wait_for(lambda: all(p in str(ada.text) for p in pieces))
                        await bo.wait_for(lambda: all(p in str(bo.text) for p in pieces))
                        async with open_client([url_b], "minutes", "cy") as cy:
                            await cy.synced()
                            final = str(cy.text)
                        assert str(ada.text) == str(bo.text) == final
                        for piece in pieces:
                            assert final.count(piece) == 1, (piece, final)
                        assert len(final) == sum(map(len, pieces))
                        assert bo.connections == 1  # bo never lost his connection
