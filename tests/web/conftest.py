"""Every gateway test runs on both servers: the fast path and hypercorn.

``WebGateway.server`` defaults to ``TROUPER_WEB_SERVER``; the ``web_server``
fixture sets it for the modules that start gateways. The WebSocket modules
run on the fast path once ``trouper.web._wsfast`` (the fast WebSocket path)
is in the tree, and are skipped there until then.
"""

from __future__ import annotations

import importlib.util

import pytest

SERVERS = ("trouper", "hypercorn")
HTTP_MODULES = {"test_web_http", "test_web_routes", "test_web_middleware", "test_web_static"}
WEBSOCKET_MODULES = {
    "test_web_fanout",
    "test_web_peers",
    "test_web_session_actors",
    "test_web_sessions",
    "test_web_slow_consumer",
}
FAST_WEBSOCKETS = importlib.util.find_spec("trouper.web._wsfast") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in HTTP_MODULES | WEBSOCKET_MODULES:
        metafunc.parametrize("web_server", SERVERS, indirect=True)


@pytest.fixture(autouse=True)
def web_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    server: str | None = getattr(request, "param", None)
    if server is None:
        return None
    module = request.module.__name__.rpartition(".")[2]
    if server == "trouper" and module in WEBSOCKET_MODULES and not FAST_WEBSOCKETS:
        pytest.skip("the fast WebSocket path (trouper.web._wsfast) is not in this tree")
    monkeypatch.setenv("TROUPER_WEB_SERVER", server)
    return server
