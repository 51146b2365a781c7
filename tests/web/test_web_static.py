"""Static files (validators, caching headers, traversal), OpenAPI, and mounted ASGI apps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url
from web_helpers import raw_get

import trouper
from trouper.web import Request, Routes, WebGateway, open_gateway


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    root.mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    return root


async def test_etag_last_modified_and_304(site: Path) -> None:
    os.utime(site / "app.js", (1_700_000_000, 1_700_000_000))
    config = WebGateway(static_dir=site, static_cache_control="public, max-age=60")
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, config) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            first = await client.get("/app.js")
            etag = first.headers["etag"]
            assert first.status_code == 200 and etag.startswith('"')
            assert first.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
            assert first.headers["cache-control"] == "public, max-age=60"
            again = await client.get("/app.js", headers={"if-none-match": etag})
            assert (again.status_code, again.content) == (304, b"")
            assert again.headers["etag"] == etag and "content-length" not in again.headers
            listed = await client.get("/app.js", headers={"if-none-match": f'"x", W/{etag}'})
            assert listed.status_code == 304
            (site / "app.js").write_text("console.log(2)")  # a new version, a new tag
            changed = await client.get("/app.js", headers={"if-none-match": etag})
            assert (changed.status_code, changed.text) == (200, "console.log(2)")
            assert changed.headers["etag"] != etag
            head = await client.head("/app.js")
            assert head.headers["content-length"] == "14" and head.content == b""
            posted = await client.post("/app.js")
            assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"


async def test_traversal_is_refused(site: Path) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, static_dir=site) as gw:
            for path in (
                "/../secret.txt",
                "/%2e%2e/secret.txt",
                "/%2E%2E%2Fsecret.txt",
                "/sub/..%2f..%2fsecret.txt",
                "/escape",
                "/..%5csecret.txt",
                "//etc/passwd",
                "/%00",
            ):
                status, body = await raw_get(gw.url, path)
                assert status in (400, 404), path
                assert b"TOP SECRET" not in body, path
            assert (await raw_get(gw.url, "/"))[1] == b"<h1>home</h1>"


class Item(msgspec.Struct, frozen=True):
    """A thing to sell."""

    name: str
    price: float
    tags: list[str] = []


class Stock(msgspec.Struct, frozen=True):
    item: Item
    count: int


async def test_openapi_document_describes_the_typed_routes() -> None:
    routes = Routes()

    @routes.route("/api/items/{id}", methods=["GET"], tags=["items"])
    async def get_item(id: int, verbose: bool = False) -> Stock:
        """Read one item's stock."""
        return Stock(Item("x", 1.0), id)

    @routes.route("/api/items", methods=["POST"], roles=["admin"])
    async def add_item(req: Request, body: Item) -> Stock:
        return Stock(body, 0)

    @routes.route("/plain")
    async def plain(req: Request) -> Any:
        return {}

    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, WebGateway(routes=routes, title="shop", version="2.0")) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            reply = await client.get("/openapi.json")
            doc = reply.json()
    assert reply.headers["content-type"] == "application/json"
    check_openapi_31(doc)
    assert doc["info"] == {"title": "shop", "version": "2.0"}
    get = doc["paths"]["/api/items/{id}"]["get"]
    assert get["operationId"] == "get_item" and get["summary"] == "Read one item's stock."
    assert get["tags"] == ["items"]
    assert get["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean"}},
    ]
    ok = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Stock"}
    post = doc["paths"]["/api/items"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Item"}
    assert post["security"] == [{"bearer": []}]
    assert set(post["responses"]) == {"200", "401", "403", "422"}
    item = doc["components"]["schemas"]["Item"]
    assert item["required"] == ["name", "price"]
    assert item["properties"]["price"] == {"type": "number"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def check_openapi_31(doc: dict[str, Any]) -> None:
    """What a client generator needs of an OpenAPI 3.1 document: the version,
    info, operations with unique ids, parameters fully described, responses,
    and every ``$ref`` resolving inside the document."""
    assert doc["openapi"].startswith("3.1.")
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    ids: set[str] = set()
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "put", "post", "delete", "options", "head", "patch"}
            assert operation["operationId"] not in ids
            ids.add(operation["operationId"])
            assert operation["responses"]
            for param in operation.get("parameters", []):
                assert param["in"] in ("path", "query", "header", "cookie")
                assert {"name", "schema"} <= set(param)
                if param["in"] == "path":
                    assert param["required"] is True and "{" + param["name"] + "}" in path

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


async def test_a_mounted_asgi_app_on_both_servers() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        received.append({"path": scope["path"], "root": scope["root_path"], "body": event["body"]})
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"one ", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, WebGateway(mounts={"/app": app})) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            reply = await client.post("/app/x?y=1", content=b"payload")
            assert (reply.status_code, reply.text) == (201, "one two")
            assert reply.headers["content-type"] == "text/plain"
            assert (await client.get("/application")).status_code == 404
    assert received == [{"path": "/x", "root": "/app", "body": b"payload"}]


async def test_a_mounted_apps_websocket_on_both_servers() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] != "/echo":
            await send({"type": "websocket.close", "code": 1000})  # refused: 403
            return
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") == "bye":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                return
            if event.get("text") is not None:
                await send(
                    {"type": "websocket.send", "text": f"{scope['root_path']}:{event['text']}"}
                )
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"][::-1]})

    config = WebGateway(mounts={"/app": app}, max_message_size=1000)
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            base = gw.url.replace("http://", "ws://")
            async with open_websocket_url(base + "/app/echo") as ws:
                await ws.send_message("hi")
                assert await ws.get_message() == "/app:hi"
                await ws.send_message(b"abc")
                assert await ws.get_message() == b"cba"
                await ws.send_message("bye")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 4000
            with pytest.raises(HandshakeError):
                async with open_websocket_url(base + "/app/other"):
                    pass
            async with open_websocket_url(base + "/app/echo") as ws:
                await ws.send_message("x" * 2000)  # over max_message_size
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1009
