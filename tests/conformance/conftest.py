"""Fixtures of the transport conformance suite: every test runs once per scheme.

A scheme whose transport is not registered (quic://, ws://, wss:// until
their modules land) is skipped with the registry's own explanation; the
decision is made when this module is imported, i.e. at collection time, so
the same suite runs for those schemes as soon as they are registered.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conformance_helpers import CERT_NAMES, SCHEMES, Net, unavailable

from trouper._certs import make_dev_certs

HERE = Path(__file__).resolve().parent

_PARAMS = [
    pytest.param(
        scheme,
        id=scheme,
        marks=pytest.mark.skipif(unavailable(scheme) is not None, reason=unavailable(scheme) or ""),
    )
    for scheme in SCHEMES
]


@pytest.fixture(params=_PARAMS)
def scheme(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development CA and a certificate per node name, made once."""
    return make_dev_certs(tmp_path_factory.mktemp("conformance-certs"), CERT_NAMES)


@pytest.fixture
def net(scheme: str, certs: Path) -> Net:
    return Net(scheme, certs)


@pytest.fixture
def child_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let node processes ``import conformance_actors`` (they inherit the environment)."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), existing) if p))
