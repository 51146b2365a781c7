"""The gateway's HTTP side: health, readiness, static files, errors, lifespan."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from web_helpers import raw_get

import trouper
from trouper.web import WebGateway, open_gateway, start_gateway
from trouper.web._app import GatewayApp
from trouper.web._connection import GatewayState


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("console.log(1)")
    (root / "style.css").write_text("body{}")
    (root / "data.json").write_text("{}")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n")
    (root / "blob.unknownext").write_bytes(b"\x00\x01")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    return root


async def test_healthz_and_readyz_toggle() -> None:
    with trio.fail_after(10):
        async with (
            trouper.open_node(name="web-a") as node,
            open_gateway(node) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            assert gw.url.startswith("http://127.0.0.1:") and not gw.url.endswith(":0")
            assert gw.ws_url == gw.url.replace("http://", "ws://") + "/ws"
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "alive", "node": "web-a"}
            assert health.headers["content-type"] == "application/json"
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()["status"]) == (200, "ready")
            gw.set_ready(False)
            not_ready = await client.get("/readyz")
            assert (not_ready.status_code, not_ready.json()["status"]) == (503, "not-ready")
            assert (await client.get("/healthz")).status_code == 200  # still alive
            gw.set_ready(True)
            assert (await client.get("/readyz")).status_code == 200


async def test_static_files_and_content_types(site: Path) -> None:
    expected = {
        "/": ("text/html; charset=utf-8", b"<h1>home</h1>"),
        "/index.html": ("text/html; charset=utf-8", b"<h1>home</h1>"),
        "/app.js": ("text/javascript; charset=utf-8", b"console.log(1)"),
        "/style.css": ("text/css; charset=utf-8", b"body{}"),
        "/data.json": ("application/json; charset=utf-8", b"{}"),
        "/logo.png": ("image/png", b"\x89PNG\r\n"),
        "/blob.unknownext": ("application/octet-stream", b"\x00\x01"),
        "/sub/": ("text/html; charset=utf-8", b"<h1>sub</h1>"),
        "/sub": ("text/html; charset=utf-8", b"<h1>sub</h1>"),
    }
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, WebGateway(static_dir=site)) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            for path, (content_type, body) in expected.items():
                response = await client.get(path)
                assert response.status_code == 200, path
                assert response.headers["content-type"] == content_type, path
                assert response.content == body, path
                assert response.headers["x-content-type-options"] == "nosniff"
            head = await client.head("/app.js")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(b"console.log(1)"))
            for path in ("/missing.html", "/sub/missing", "/nope/"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.get("/ws")).status_code == 426
            assert (await client.post("/healthz")).status_code == 405


async def test_path_traversal_is_refused(site: Path) -> None:
    attempts = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/escape",  # a symlink out of the static directory
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/%00",
        "//etc/passwd",
        "/" + str(site.parent / "secret.txt"),
    ]
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, static_dir=site) as gw:
            for path in attempts:
                status, body = await raw_get(gw.url, path)
                assert status in (400, 404), (path, status)
                assert b"TOP SECRET" not in body, path
            async with httpx.AsyncClient(base_url=gw.url) as client:
                response = await client.get("/%2e%2e/secret.txt")
                assert response.status_code == 404
                assert b"TOP SECRET" not in response.content
            assert (await raw_get(gw.url, "/sub/"))[0] == 200  # the directory itself is fine


async def test_no_static_dir_means_404() -> None:
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            assert (await client.get("/")).status_code == 404
            assert (await client.get("/index.html")).status_code == 404


async def test_lifespan_protocol() -> None:
    app = GatewayApp(WebGateway(), GatewayState("n", 0), None)  # type: ignore[arg-type]
    to_app, app_in = trio.open_memory_channel[dict[str, Any]](2)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app, {"type": "lifespan"}, app_in.receive, send)
            await to_app.send({"type": "lifespan.startup"})
            await to_app.send({"type": "lifespan.shutdown"})
    assert [e["type"] for e in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_gateway_lives_with_the_actor_and_stops_serving() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            gw = await start_gateway(node, port=0)
            assert gw.ref.path == "/system/web"
            with pytest.raises(trouper.ConfigurationError):
                await start_gateway(node)  # one gateway per node
            url = gw.url
            async with httpx.AsyncClient() as client:
                assert (await client.get(url + "/healthz")).status_code == 200
            await gw.aclose()
            with pytest.raises(OSError):
                await raw_get(url, "/healthz")  # the listener is gone
            gw = await start_gateway(node)  # and it can start again
            assert (await raw_get(gw.url, "/healthz"))[0] == 200
        with pytest.raises(OSError):
            await raw_get(gw.url, "/healthz")  # leaving the node stopped it


async def test_port_in_use_refuses_the_spawn() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(10):
            async with trouper.open_node() as node:
                with pytest.raises(trouper.SpawnRefused):
                    await start_gateway(node, port=port)
                assert node.kernel.cell_at("/system/web") is None


def test_config_is_validated() -> None:
    for bad in (
        {"outbox_size": 0},
        {"slow_consumer_timeout": 0},
        {"max_message_size": -1},
        {"ws_path": "ws"},
        {"port": 70000},
        {"session": int},
    ):
        with pytest.raises(trouper.ConfigurationError):
            WebGateway(**bad)
    assert WebGateway(static_dir="x").static_dir == Path("x")
