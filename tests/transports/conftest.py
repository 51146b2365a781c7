"""Fixtures for the transport tests (helpers live in transport_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transport_helpers import Pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, "ca")


@pytest.fixture
def other_pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, "other-ca")
