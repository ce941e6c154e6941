"""``mlops serve --workers N``: N gateway processes on one listening socket, for machines with more cores.

uvicorn's own supervisor runs them: it binds the socket once, starts the workers (each a fresh interpreter that
builds its gateway with ``server.worker_app``), restarts one that dies and, on SIGTERM or SIGINT, stops them all,
each draining its requests in flight. Every worker is a whole gateway, so the guarantees hold per request
whichever worker takes it: it follows the registry aliases itself (a swap is atomic in each worker and reaches
all of them within one poll; ``/admin/reload`` reloads the worker it reaches, the others follow at their next
poll), routes canary traffic by the same hash of the entity id, and appends to its own prediction-log file
(``<host>-<pid>.jsonl``, which the readers all read). The metrics are counted in prometheus-client's
multiprocess files, so any worker's ``/metrics`` tells the totals of all.

This module stays light (no model, MLflow or Starlette import): the parent only supervises.
"""

from __future__ import annotations

import tempfile
from typing import Any

import uvicorn

from mlops_assets import settings
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.transport import OneWriteHttpToolsProtocol

# On SIGTERM/SIGINT uvicorn stops accepting connections and lets requests in flight finish for up to this long
# before closing them: within the grace `mlops up` gives its children after ending runs (30 - 8 - 5 s), and long
# past any scoring request.
DRAIN_SECONDS = 15
# proxy_headers off: the gateway reads no client address (no access log, tokens for auth), so uvicorn's
# X-Forwarded-* rewriting, a middleware layer on every request, has nothing to feed.
UVICORN_OPTIONS: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on",
                                   "timeout_graceful_shutdown": DRAIN_SECONDS, "http": OneWriteHttpToolsProtocol,
                                   "proxy_headers": False}


def run_workers(config: GatewayConfig, workers: int) -> None:
    """Foreground supervisor of ``workers`` gateway processes on ``config``'s host and port, until SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="mlops-gateway-metrics-") as shared:
        settings.share_metrics_dir(shared)  # before the workers start: prometheus-client reads it at import
        uvicorn.run("mlops_assets.serving.server:worker_app", factory=True, workers=workers, host=config.host,
                    port=config.port, **UVICORN_OPTIONS)
