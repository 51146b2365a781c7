"""trouper.observability: see inside a running node and its cluster.

Prometheus metrics (``metrics_text``, ``metrics_registry``), and the admin
endpoint: ``open_node(admin="127.0.0.1:9100")`` serves (with hypercorn's trio
worker, as the supervised system actor ``/system/admin``) ``/metrics``,
``/healthz``, ``/readyz`` and a JSON API (``/api/node``, ``/api/tree``,
``/api/actors/{path}``, ``/api/cluster``, ``/api/deadletters``), whose
actions (stop, kill, restart) need the admin token. ``AdminApp`` is the same
endpoint as a plain ASGI application. See docs/observability.md.
"""

from ._api import AdminAnswer as AdminAnswer
from ._api import AdminQuery as AdminQuery
from ._app import AdminApp as AdminApp
from ._config import AdminConfig as AdminConfig
from ._metrics import metrics_registry as metrics_registry
from ._metrics import metrics_text as metrics_text
from ._server import AdminHandle as AdminHandle
from ._server import start_admin as start_admin

__all__ = [
    "AdminAnswer",
    "AdminApp",
    "AdminConfig",
    "AdminHandle",
    "AdminQuery",
    "metrics_registry",
    "metrics_text",
    "start_admin",
]
