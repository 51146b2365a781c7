"""Typed HTTP routes on the gateway: parameters, bodies, results, errors, actors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio

import trouper
from trouper.web import Request, Response, Routes, WebGateway, open_gateway


class NewUser(msgspec.Struct, frozen=True):
    name: str
    age: int


class User(msgspec.Struct, frozen=True):
    id: int
    name: str
    age: int


class GetUser(msgspec.Struct, frozen=True):
    id: int


class Users(trouper.Actor):
    def __init__(self) -> None:
        self.users = {1: User(1, "ada", 36)}

    @trouper.handler
    async def get(self, msg: GetUser) -> User | None:
        return self.users.get(msg.id)

    @trouper.handler
    async def create(self, msg: NewUser) -> User:
        user = User(len(self.users) + 1, msg.name, msg.age)
        self.users[user.id] = user
        return user


class Stuck(msgspec.Struct, frozen=True):
    pass


class Sleeper(trouper.Actor):
    def __init__(self, release: trio.Event) -> None:
        self.release = release

    @trouper.handler
    async def stuck(self, msg: Stuck) -> None:
        await self.release.wait()


@trouper.service("greeter")
class Greeter(trouper.Actor):
    @trouper.rpc
    async def greet(self, name: str) -> str:
        return f"hello {name}"


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """A node with the users actor, a sleeper, the greeter service, and routes."""
    async with trouper.open_node() as node:
        users = await node.spawn(Users)
        release = trio.Event()  # lets the sleeper go at the end: the node stops at once
        sleeper = await node.spawn(Sleeper, release)
        await node.spawn(Greeter)
        greeter = node.proxy(Greeter, timeout=2.0)
        routes = Routes()

        @routes.route("/api/users/{id}", methods=["GET"])
        async def get_user(id: int) -> User:
            """Read one user."""
            user = await users.ask(GetUser(id))
            if user is None:
                raise trouper.ActorNotFound(f"no user {id}")
            assert isinstance(user, User)
            return user

        @routes.route("/api/users", methods=["POST"])
        async def create_user(req: Request, body: NewUser) -> Response:
            user = await users.ask(body)
            location = [("location", f"/api/users/{user.id}")]
            return Response(msgspec.json.encode(user), 201, location, "application/json")

        async def greet(name: str, shout: bool = False) -> dict[str, str]:
            text = await greeter.greet(name)
            return {"greeting": text.upper() if shout else text}

        routes.route("/api/greet", greet)  # a call, not a decorator

        @routes.route("/api/slow")
        async def slow() -> None:
            await sleeper.ask(Stuck(), timeout=0.05)

        @routes.route("/api/empty", methods=["DELETE"])
        async def empty(req: Request) -> None:
            return None

        @routes.route("/api/boom")
        async def boom() -> str:
            raise RuntimeError("secret detail")

        @routes.route("/api/echo/{a}/{b}", methods=["GET", "PUT"])
        async def echo(req: Request, a: str, b: float) -> dict[str, object]:
            return {"a": a, "b": b, "method": req.method, "q": req.query_string.decode()}

        try:
            async with (
                open_gateway(node, WebGateway(routes=routes)) as gw,
                httpx.AsyncClient(base_url=gw.url) as client,
            ):
                yield client
        finally:
            release.set()


async def test_a_route_asks_an_actor(api: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        reply = await api.get("/api/users/1")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == {"id": 1, "name": "ada", "age": 36}
        created = await api.post("/api/users", json={"name": "bob", "age": 7})
        assert created.status_code == 201
        assert created.headers["location"] == "/api/users/2"
        assert (await api.get("/api/users/2")).json()["name"] == "bob"


async def test_a_route_calls_a_service_proxy(api: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        assert (await api.get("/api/greet?name=ada")).json() == {"greeting": "hello ada"}
        loud = await api.get("/api/greet", params={"name": "bo b", "shout": "true"})
        assert loud.json() == {"greeting": "HELLO BO B"}


async def test_validation_errors_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        bad_body = await api.post("/api/users", json={"name": "x", "age": "old"})
        assert bad_body.status_code == 422
        error = bad_body.json()
        assert (error["error"], error["field"], error["where"]) == ("validation", "age", "body")
        assert "`$.age`" in error["message"] and error["request_id"]
        missing = await api.post("/api/users", json={"name": "x"})
        assert (missing.status_code, missing.json()["message"]) == (
            422,
            "Object missing required field `age`",
        )
        bad_path = await api.get("/api/users/abc")
        assert bad_path.status_code == 422
        assert (bad_path.json()["field"], bad_path.json()["where"]) == ("id", "path")
        no_query = await api.get("/api/greet")
        assert (no_query.status_code, no_query.json()["field"]) == (422, "name")
        bad_json = await api.post("/api/users", content=b"{not json")
        assert (bad_json.status_code, bad_json.json()["error"]) == (400, "malformed-json")


async def test_not_found_method_not_allowed_and_head(api: httpx.AsyncClient) -> None:
    with trio.fail_after(10):
        nothing = await api.get("/api/nothing")
        assert (nothing.status_code, nothing.json()["error"]) == (404, "not-found")
        wrong = await api.delete("/api/users/1")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD"
        head = await api.head("/api/users/1")
        get = await api.get("/api/users/1")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == get.headers["content-length"]
        both = await api.put("/api/echo/x%20y/2.5?k=v")
        assert both.json() == {"a": "x y", "b": 2.5, "method": "PUT", "q": "k=v"}
        assert (await api.delete("/api/empty")).status_code == 204


async def test_errors_map_to_statuses(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(10):
        slow = await api.get("/api/slow")
        assert (slow.status_code, slow.json()["error"]) == (504, "ask-timeout")
        missing = await api.get("/api/users/99")
        assert (missing.status_code, missing.json()["error"]) == (404, "actor-not-found")
        with caplog.at_level(logging.ERROR, logger="trouper.web"):
            boom = await api.get("/api/boom", headers={"x-request-id": "req-42"})
        assert boom.status_code == 500
        assert boom.json() == {
            "error": "internal",
            "message": "internal server error",
            "request_id": "req-42",
        }
        assert "secret" not in boom.text and "Traceback" not in boom.text
        logged = [r for r in caplog.records if "req-42" in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # the log has the cause


def test_statuses_in_one_table() -> None:
    from trouper.web._h1 import Request as RawRequest
    from trouper.web._statuses import error_response

    request = RawRequest()
    request.state["request_id"] = "r1"
    cases = [
        (trouper.CircuitOpen("open", retry_delay=2.5), 503, "3"),
        (trouper.RateLimited("slow down", retry_delay=0.2), 503, "1"),
        (trouper.NodeDown("gone"), 503, "1"),
        (trouper.Unauthorized("who?"), 401, None),
        (trouper.Forbidden("not you"), 403, None),
        (trouper.AskTimeout("late"), 504, None),
        (trouper.ActorNotFound("none"), 404, None),
        (trouper.InvalidArgument("bad"), 400, None),
    ]
    for exc, status, retry in cases:
        response = error_response(exc, request)
        headers = dict(response.headers)
        assert response.status == status, exc
        assert headers.get("retry-after") == retry, exc
        body = msgspec.json.decode(response.body)
        assert body == {"error": exc.error_code, "message": str(exc), "request_id": "r1"}


async def test_routes_added_while_serving_and_conflicts() -> None:
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node) as gw,
            httpx.AsyncClient(base_url=gw.url) as client,
        ):
            assert (await client.get("/late")).status_code == 404

            @gw.route("/late")
            async def late(req: Request) -> Response:
                return Response("on time\n", content_type="text/plain")

            assert (await client.get("/late")).text == "on time\n"
            with pytest.raises(trouper.ConfigurationError, match="registered already"):
                gw.route("/late", late)
            with pytest.raises(trouper.ConfigurationError, match="async"):
                gw.route("/sync", lambda req: None)
            with pytest.raises(trouper.ConfigurationError, match="takes no"):

                @gw.route("/x/{missing}")
                async def wrong(req: Request) -> None: ...

            with pytest.raises(trouper.ConfigurationError, match="methods"):
                gw.route("/y", late, methods=["BREW"])
            with pytest.raises(trouper.ConfigurationError, match="cannot decode"):

                @gw.route("/z")
                async def opaque(thing: trio.Event) -> None: ...
