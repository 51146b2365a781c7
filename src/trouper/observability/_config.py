"""``AdminConfig``: where a node's admin endpoint listens, and its token."""

from __future__ import annotations

from pathlib import Path

import attrs

from .._errors import ConfigurationError

#: The name each node's admin agent (``/system/observer``) registers under
#: (cluster-wide), so any node's admin endpoint can ask another node for its tree.
ADMIN_NAME = "trouper:admin:{}"


def admin_name(node_id: str) -> str:
    return ADMIN_NAME.format(node_id)


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9100"``, ``"[::1]:0"`` or ``"localhost:9100"`` as (host, port)."""
    if not isinstance(address, str):
        raise ConfigurationError(f"admin must be 'HOST:PORT', not {address!r}")
    text = address.strip()
    if "://" in text:
        text = text.split("://", 1)[1].rstrip("/")
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigurationError(
            f"admin must be 'HOST:PORT' with a port in 0..65535 (0: any free port), not {address!r}"
        )
    return host, int(port_text)


def _check_token(instance: object, attribute: object, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or len(value.strip()) < 16):
        raise ConfigurationError("an admin token is a string of at least 16 characters")


@attrs.frozen
class AdminConfig:
    """How ``open_node(admin=...)`` serves the admin endpoint.

    ``token``: the bearer token the actions (stop, kill, restart) require;
    without one the API is read-only. ``dead_letters``: how many recent dead
    letters ``/api/deadletters`` keeps. ``request_timeout``: how long a
    request that crosses the cluster (``?node=ID``) waits for the other node.
    """

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = attrs.field(default=None, validator=_check_token)
    dead_letters: int = 100
    request_timeout: float = 5.0
    graceful_timeout: float = 2.0


def load_config(
    address: str, token: str | None = None, token_file: str | Path | None = None
) -> AdminConfig:
    """The config for ``open_node(admin=, admin_token=, admin_token_file=)``.

    The token file is read here, once (a few bytes, before the node runs).
    """
    host, port = parse_address(address)
    if token is not None and token_file is not None:
        raise ConfigurationError("give admin_token or admin_token_file, not both")
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the admin token file {path}: {exc}") from None
        if not token:
            raise ConfigurationError(f"the admin token file {path} is empty")
    return AdminConfig(host=host, port=port, token=token)
