"""The gateway's middleware chain: request id, access log, CORS, JWT, rate limit, size."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trouper
from trouper.web import (
    CORS,
    JWTAuth,
    RateLimit,
    Request,
    Response,
    Routes,
    WebGateway,
    claims_of,
    open_gateway,
)

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def api_routes() -> Routes:
    routes = Routes()

    @routes.route("/me")
    async def me(req: Request) -> dict[str, Any]:
        return {"sub": claims_of(req).get("sub"), "order": req.state.get("order", [])}

    @routes.route("/open", auth=False)
    async def public(req: Request) -> dict[str, Any]:
        return {"claims": claims_of(req)}

    @routes.route("/admin", methods=["POST"], roles=["admin"])
    async def admin(req: Request) -> dict[str, str]:
        return {"ok": "admin"}

    return routes


@asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
    tracing = options.pop("tracing", None)
    async with (
        trouper.open_node(tracing=tracing) as node,
        open_gateway(node, WebGateway(routes=api_routes(), **options)) as gw,
        httpx.AsyncClient(base_url=gw.url) as client,
    ):
        yield client


def hs256(claims: dict[str, Any], secret: str = SECRET) -> dict[str, str]:
    claims = {"exp": time.time() + 60, **claims}
    return {"authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}


async def test_request_id_in_and_out_and_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(10):
        async with serve() as client:
            with caplog.at_level(logging.INFO, logger="trouper.web.access"):
                fresh = await client.get("/open")
                kept = await client.get("/open", headers={"x-request-id": "abc-123"})
                odd = await client.get("/open", headers={"x-request-id": "has spaces; and <b>"})
            again = await client.get("/open")
            assert fresh.headers["x-request-id"] != again.headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", fresh.headers["x-request-id"])
            assert kept.headers["x-request-id"] == "abc-123"
            assert odd.headers["x-request-id"] not in ("has spaces; and <b>", "")
            lines = [r.getMessage() for r in caplog.records if r.name == "trouper.web.access"]
            assert len(lines) == 3  # the fourth request ran after the capture
            assert '"GET /open" 200' in lines[1] and lines[1].endswith(" abc-123")


async def test_the_request_id_is_the_trace_id_when_tracing_is_on() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with trio.fail_after(10):
        async with serve(tracing=provider) as client:
            reply = await client.get("/open", headers={"traceparent": parent})
            root = await client.get("/open")
    assert reply.headers["x-request-id"] == "0af7651916cd43dd8448eb211c80319c"
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name == "GET /open"}
    assert spans
    ids = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()}
    assert {reply.headers["x-request-id"], root.headers["x-request-id"]} <= ids
    span = next(s for s in exporter.get_finished_spans() if s.name == "GET /open")
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200


async def test_cors_preflight_and_simple_requests() -> None:
    policy = CORS(origins=["https://app.example"], credentials=True)
    with trio.fail_after(10):
        async with serve(cors=policy) as client:
            asked = {"origin": "https://app.example", "access-control-request-method": "POST"}
            preflight = await client.options("/me", headers=asked)
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "authorization" in preflight.headers["access-control-allow-headers"]
            assert preflight.headers["access-control-allow-credentials"] == "true"
            evil = await client.options("/me", headers={**asked, "origin": "https://evil.example"})
            assert (evil.status_code, evil.json()["error"]) == (403, "cors")
            simple = await client.get("/open", headers={"origin": "https://app.example"})
            assert simple.headers["access-control-allow-origin"] == "https://app.example"
            assert simple.headers["access-control-expose-headers"] == "x-request-id"
            other = await client.get("/open", headers={"origin": "https://evil.example"})
            assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    with pytest.raises(trouper.ConfigurationError, match="credentials"):
        CORS(origins=["*"], credentials=True)


async def test_cors_asks_allow_about_origins_it_does_not_list() -> None:
    # Origins that change at run time (a cluster's gateways): the hook
    # decides for those not listed; a listed one never reaches it.
    asked: list[str] = []
    live = {"http://127.0.0.1:8001"}

    async def allow(origin: str) -> bool:
        asked.append(origin)
        return origin in live

    policy = CORS(origins=["https://app.example"], allow=allow)
    with trio.fail_after(10):
        async with serve(cors=policy) as client:
            preflight = {"access-control-request-method": "POST"}
            ok = await client.options(
                "/me", headers={**preflight, "origin": "http://127.0.0.1:8001"}
            )
            assert ok.status_code == 204
            assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:8001"
            simple = await client.get("/open", headers={"origin": "http://127.0.0.1:8001"})
            assert simple.headers["access-control-allow-origin"] == "http://127.0.0.1:8001"
            live.clear()  # that gateway left the cluster
            gone = await client.options(
                "/me", headers={**preflight, "origin": "http://127.0.0.1:8001"}
            )
            assert gone.status_code == 403
            listed = await client.get("/open", headers={"origin": "https://app.example"})
            assert listed.headers["access-control-allow-origin"] == "https://app.example"
    assert asked == ["http://127.0.0.1:8001"] * 3


async def test_jwt_hs256_claims_expiry_and_roles() -> None:
    with trio.fail_after(10):
        async with serve(auth=JWTAuth(secret=SECRET)) as client:
            good = await client.get("/me", headers=hs256({"sub": "ada"}))
            assert (good.status_code, good.json()["sub"]) == (200, "ada")
            none = await client.get("/me")
            assert none.status_code == 401 and none.headers["www-authenticate"] == "Bearer"
            assert none.json()["error"] == "unauthorized"
            expired = await client.get("/me", headers=hs256({"sub": "ada", "exp": 1}))
            assert (expired.status_code, expired.json()["message"]) == (
                401,
                "the bearer token has expired",
            )
            forged = await client.get("/me", headers=hs256({"sub": "ada"}, secret="x" * 40))
            assert forged.status_code == 401 and "invalid" in forged.json()["message"]
            unsigned = jwt.encode({"sub": "ada", "exp": time.time() + 60}, None, algorithm="none")
            alg_none = await client.get("/me", headers={"authorization": f"Bearer {unsigned}"})
            assert alg_none.status_code == 401
            basic = await client.get("/me", headers={"authorization": "Basic YWRhOng="})
            assert basic.status_code == 401
            assert (await client.get("/open")).json() == {"claims": {}}
            assert (await client.get("/healthz")).status_code == 200  # never behind auth
            user = await client.post("/admin", headers=hs256({"sub": "ada", "roles": ["user"]}))
            assert (user.status_code, user.json()["error"]) == (403, "forbidden")
            admin = await client.post("/admin", headers=hs256({"sub": "b", "roles": "user admin"}))
            assert admin.status_code == 200


async def test_jwt_rs256_and_no_key_confusion() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = JWTAuth(public_key=public, algorithms=["RS256"], audience="api", issuer="me")
    claims = {"sub": "ada", "aud": "api", "iss": "me", "exp": time.time() + 60}
    token = jwt.encode(claims, key, algorithm="RS256")
    with trio.fail_after(10):
        async with serve(auth=auth) as client:
            good = await client.get("/me", headers={"authorization": f"Bearer {token}"})
            assert (good.status_code, good.json()["sub"]) == (200, "ada")
            # An HS256 token signed with the public key as its secret: refused.
            confused = jwt.encode(claims, SECRET, algorithm="HS256")
            bad = await client.get("/me", headers={"authorization": f"Bearer {confused}"})
            assert bad.status_code == 401 and "not accepted" in bad.json()["message"]
            other_aud = jwt.encode({**claims, "aud": "x"}, key, algorithm="RS256")
            wrong = await client.get("/me", headers={"authorization": f"Bearer {other_aud}"})
            assert wrong.status_code == 401
    with pytest.raises(trouper.ConfigurationError, match="public_key"):
        JWTAuth(algorithms=["RS256"])
    with pytest.raises(trouper.ConfigurationError, match="secret"):
        JWTAuth()


async def test_rate_limit_answers_429_with_retry_after() -> None:
    limit = RateLimit(rate=0.5, burst=3)
    with trio.fail_after(10):
        async with serve(rate_limit=limit) as client:
            statuses = [(await client.get("/open")).status_code for _ in range(3)]
            assert statuses == [200, 200, 200]
            over = await client.get("/open")
            assert over.status_code == 429
            assert over.headers["retry-after"] == "2"
            assert over.json()["error"] == "rate-limited"


async def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    with trio.fail_after(10):
        async with serve(max_body=1000) as client:
            host, port = str(client.base_url).removeprefix("http://").rstrip("/").split(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                # Claims 10 MB, sends none of it: the answer comes anyway.
                head = b"POST /me HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
                await stream.send_all(head)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = await stream.receive_some(4096)
                    assert chunk, data
                    data += chunk
            assert data.startswith(b"HTTP/1.1 413")
            small = await client.post("/open", content=b"x" * 1000)
            assert small.status_code == 405  # within the limit, only the method is wrong


async def test_middleware_order_and_application_middleware() -> None:
    seen: list[str] = []

    def tag(name: str) -> Callable[..., Any]:
        async def mw(request: Request, call_next: Any) -> Response:
            request.state.setdefault("order", []).append(name)
            seen.append(f"{name}:{request.state.get('request_id') is not None}")
            seen.append(f"{name}:claims={'claims' in request.state}")
            response: Response = await call_next(request)
            response.headers.append(("x-" + name, "1"))
            return response

        return mw

    with trio.fail_after(10):
        async with serve(auth=JWTAuth(secret=SECRET), middleware=[tag("a"), tag("b")]) as client:
            reply = await client.get("/me", headers=hs256({"sub": "ada"}))
            assert reply.json()["order"] == ["a", "b"]
            assert reply.headers["x-a"] == reply.headers["x-b"] == "1"
            # The application's middleware runs inside: ids and claims are set.
            assert seen == ["a:True", "a:claims=True", "b:True", "b:claims=True"]
            refused = await client.get("/me")
            assert refused.status_code == 401 and "x-a" not in refused.headers
