"""Two Python clients edit offline, then reconnect: both end with the same
text as the server (a third, fresh client), nothing duplicated, and a
reconnecting client receives only the difference, not the document."""

import random
from pathlib import Path

import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab.client import open_client


async def test_offline_edits_merge_on_reconnect(tmp_path: Path) -> None:
    rng = random.Random(15)
    base = "".join(rng.choice("abcdefghij ") for _ in range(20_000))
    with trio.fail_after(STEP * 3):
        async with (
            collab_node(tmp_path / "collab.db") as (_, gateway),
            open_client([gateway.url], "para", "ada") as ada,
            open_client([gateway.url], "para", "bo") as bo,
        ):
            await ada.synced()
            await bo.synced()
            ada.text.insert(0, "The paragraph. " + base)
            await ada.synced()
            await bo.wait_for(lambda: str(bo.text) == str(ada.text))
            full = len(bo.doc.get_update())

            await ada.disconnect()
            await bo.disconnect()
            assert not ada.online and not bo.online
            # Both type into the same paragraph, at the same place, offline.
            ada.text.insert(4, "first ")
            bo.text.insert(4, "second ")
            ada.text += " ada's end."
            assert "first" not in str(bo.text) and "second" not in str(ada.text)

            await ada.reconnect()
            await ada.synced()
            await bo.reconnect()
            await bo.synced()
            # bo's sync brought ada's offline edits, not the 20 KB paragraph.
            assert 0 < bo.last_sync_bytes < full // 10, (bo.last_sync_bytes, full)
            await ada.wait_for(lambda: "second" in str(ada.text))
            await bo.wait_for(lambda: "ada's end" in str(bo.text))

            async with open_client([gateway.url], "para", "cy") as cy:
                await cy.synced()
                final = str(cy.text)
            assert str(ada.text) == str(bo.text) == final
            assert final.startswith("The ") and final[4:].startswith(
                ("first second ", "second first ")
            )
            for piece in ("paragraph. ", "first ", "second ", " ada's end.", base):
                assert final.count(piece) == 1, piece
            assert len(final) == len("The paragraph. first second  ada's end.") + len(base)
