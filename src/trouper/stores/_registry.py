"""``open_store(url)``: the backend is chosen by the URL's scheme.

The node and the actors never import a backend module: they hand a URL to
``open_store``. Optional backends (``redis://``, ``postgres://``, with their
client libraries as extras) plug in with ``register_store`` from their own
module, and tests may register a fake under an existing scheme.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from trouper._errors import ConfigurationError

from ._api import Store

__all__ = ["StoreFactory", "open_store", "register_store"]

StoreFactory = Callable[[str], AbstractAsyncContextManager[Store]]
"""Takes the whole URL; returns a context manager that opens and closes the store.

It should reject a malformed URL with ``ConfigurationError`` when called (not
when entered), so mistakes surface where the URL is given.
"""

_FACTORIES: dict[str, StoreFactory] = {}

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def register_store(scheme: str, factory: StoreFactory) -> StoreFactory | None:
    """Make ``factory`` open ``scheme://`` URLs; returns the factory it replaces.

    Replacing is allowed on purpose (a test registers a fake over
    ``sqlite``); keep the returned factory to put it back.
    """
    scheme = scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        raise ConfigurationError(f"{scheme!r} is not a URL scheme")
    if not callable(factory):
        raise ConfigurationError(f"store factory for {scheme!r} is not callable: {factory!r}")
    previous = _FACTORIES.get(scheme)
    _FACTORIES[scheme] = factory
    return previous


def open_store(url: str) -> AbstractAsyncContextManager[Store]:
    """Open the store named by ``url``; leaving the ``async with`` closes it.

    ``memory://`` (private to this store), ``memory://name`` (shared by name
    within the process), ``sqlite:///relative.db``, ``sqlite:////abs/path.db``.
    Raises ``ConfigurationError`` for an unknown scheme or a malformed URL.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a store URL must be a str, not {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    known = ", ".join(f"{s}://" for s in sorted(_FACTORIES)) or "none"
    if not sep or not _SCHEME.fullmatch(scheme.lower()):
        # Only the scheme is echoed: redis/postgres URLs may carry a password.
        raise ConfigurationError(f"malformed store URL (expected scheme://...); known: {known}")
    factory = _FACTORIES.get(scheme.lower())
    if factory is None:
        raise ConfigurationError(f"no store registered for {scheme}://; known schemes: {known}")
    return factory(url)
