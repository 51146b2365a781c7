"""A collab client that never reads: a WebSocket that opens a document and
then leaves its socket unread while another editor floods the document.

What it cannot take fills the kernel's socket buffers, then the gateway's
outbox, bounded in frames and in bytes (``CollabSettings.outbox_bytes``,
1 MiB here). A collab session closes at the first frame it cannot take
(``close_on_drop``: a dropped update would leave that client wrong without
its knowing), so what the server holds for it stays bounded. The editors go
on, and nothing is lost: the honest reader ends with every update, whether
it kept up or was closed and resynced on reconnecting.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab.client import open_client
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionClosed, open_websocket_url

import trouper
from trouper.observability import metrics_text

#: 48 updates of 256 KB: 12 MB to the reader that never reads, past what
#: loopback's socket buffers (a few MB) and its 1 MiB outbox hold, and
#: under the 16 MiB a client takes in one message (a resync of the whole).
UPDATES = 48
CHUNK = "x" * 256_000
OUTBOX_BYTES = 1024 * 1024


def _slow_consumers(node: trouper.Node) -> float:
    body, _ = metrics_text(node)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "trouper_web_slow_consumer_disconnects_total":
                return sample.value
    return 0.0


async def _until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - a counter, no event to wait on
        await trio.sleep(0.05)


async def test_a_client_that_never_reads_is_closed_and_the_editors_go_on(
    tmp_path: Path,
) -> None:
    with trio.fail_after(STEP * 6):
        async with (
            collab_node(tmp_path / "collab.db", sessions=False, outbox_bytes=OUTBOX_BYTES) as (
                node,
                gateway,
            ),
            open_client([gateway.url], "flood", "ada") as ada,
            open_client([gateway.url], "flood", "bo") as bo,
        ):
            await ada.synced()
            url = f"{gateway.ws_url}?doc=flood&user=mute"
            # message_queue_size=1 and no get_message(): it stops reading at once.
            async with open_websocket_url(
                url, message_queue_size=1, max_message_size=1 << 20
            ) as mute:
                await bo.synced()  # mute's hub membership is in place before the flood
                for n in range(UPDATES):
                    ada.text += f"[{n}]{CHUNK}"
                await ada.synced()
                await bo.wait_for(lambda: len(bo.text) == len(ada.text))
                assert str(bo.text) == str(ada.text)

                # The gateway closed it as too slow (its close frame may not
                # have fit in the full pipe: then the TCP connection went).
                await _until(lambda: _slow_consumers(node) >= 1)
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await mute.get_message()
                assert info.value.reason.code in (1008, 1006), info.value.reason

            # The writer was never disturbed, and they still edit together.
            ada.text += "[after]"
            await bo.wait_for(lambda: str(bo.text).endswith("[after]"))
            assert ada.connections == 1
