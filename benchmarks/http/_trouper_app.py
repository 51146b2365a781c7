"""The trouper server of the HTTP benchmark: a gateway with two routes."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import trio

import trouper
from trouper.web import Request, Response, Routes, WebGateway, open_gateway


class User(msgspec.Struct, frozen=True):
    id: int
    name: str


class GetUser(msgspec.Struct, frozen=True):
    id: int


class Users(trouper.Actor):
    @trouper.handler
    async def get(self, msg: GetUser) -> User:
        return User(msg.id, f"user-{msg.id}")


def serve(port: int, hello_body: bytes, ready: Callable[[], None]) -> None:
    async def main() -> None:
        async with trouper.open_node() as node:
            users = await node.spawn(Users)
            routes = Routes()

            @routes.route("/hello")
            async def hello(req: Request) -> Response:
                return Response(hello_body, 200, (), "text/plain")

            @routes.route("/api/users/{id}")
            async def get_user(id: int) -> User:
                user: User = await users.ask(GetUser(id))
                return user

            # Opening 10,000 idle connections takes a while on a busy machine: the
            # first must not be closed as idle before the last is open.
            config = WebGateway(port=port, routes=routes, server="trouper", idle_timeout=600)
            async with open_gateway(node, config):
                ready()
                await trio.sleep_forever()

    trio.run(main)
