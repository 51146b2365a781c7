"""``python -m examples.collab`` as a process: its one JSON line, the page
served, one client editing, and a clean exit on SIGTERM. Run from an empty
directory, it makes its default store (``.collab/collab.db``) there."""

import signal
from pathlib import Path

import httpx
import trio
from collab_edge_helpers import STEP, collab_process
from examples.collab.client import open_client


async def test_the_module_serves_the_editor(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 3):
        async with collab_process(tmp_path, "node") as node:
            info = node.info
            assert set(info) == {"node", "http", "addresses", "pid"}
            assert info["pid"] == node.process.pid and info["http"].startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(base_url=info["http"]) as http:
                page = await http.get("/")
                assert page.status_code == 200 and 'id="editor"' in page.text
                assert (await http.get("/style.css")).status_code == 200
            async with open_client([info["http"]], "proc", "ada") as ada:
                await ada.synced()
                ada.text += "edited through a real process"
                await ada.synced()
            async with open_client([info["http"]], "proc", "bo") as bo:
                await bo.synced()
                assert str(bo.text) == "edited through a real process"
            node.process.send_signal(signal.SIGTERM)
            assert await node.process.wait() == 0
        assert (tmp_path / ".collab" / "collab.db").exists()
