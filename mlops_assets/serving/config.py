"""What one gateway instance serves and where: a plain value the model manager, the app and the server share.

Its own module so that ``models``, ``app`` and ``server`` all read it without importing each other in a circle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_assets import settings
from mlops_assets.core.spec import SpecError

log = logging.getLogger("mlops.gateway")


@dataclass
class GatewayConfig:
    model_name: str
    tracking_uri: str
    registry_uri: str
    log_root: str | Path  # a local path or an fsspec URL (MLOPS_PREDICTION_LOG_URL)
    host: str = "127.0.0.1"
    port: int = 5005
    poll_seconds: float = 2.0
    admin_token: str | None = None
    feedback_token: str | None = None  # MLOPS_FEEDBACK_TOKEN: when set, POST /feedback requires it
    id_column: str | None = None  # the spec's business id: logged with the rows when sent; labels by it accepted
    timestamp_column: str | None = None  # the spec's event time: logged with the rows when sent (monitoring's day)
    max_request_bytes: int = 10 * 1024 * 1024
    lock_dir: str | None = None  # registry writes lock here, as the platform's runs do; None: the temp directory
    metrics_dir: str | None = None  # prometheus-client's multiprocess directory, set for `mlops serve --workers N`

    @classmethod
    def from_env(cls, host: str | None = None, port: int | None = None) -> GatewayConfig:
        lay = settings.layout()
        return cls(
            model_name=settings.model_name(),
            tracking_uri=settings.tracking_uri(lay),
            registry_uri=settings.registry_uri(lay),
            log_root=settings.prediction_log_url(lay),
            host=host or "127.0.0.1",
            port=5005 if port is None else port,
            poll_seconds=settings.gateway_poll_seconds(),
            admin_token=settings.admin_token(),
            feedback_token=settings.feedback_token(),
            id_column=_spec_column(settings.dataset_id_column, "labels by the data's id are refused"),
            timestamp_column=_spec_column(settings.dataset_timestamp_column, "rows are monitored by serving time"),
            lock_dir=str(lay.locks),
            metrics_dir=settings.metrics_multiprocess_dir(),
        )


def _spec_column(read: Callable[[], str | None], without: str) -> str | None:
    """A column the dataset spec names; a gateway whose spec cannot be read still serves, and says ``without`` it."""
    try:
        return read()
    except SpecError as exc:
        log.warning("%s until the dataset spec can be read: %s", without, exc)
        return None
