"""Links into the MLflow UI: the one place that knows its URL routes, so every run, model version and experiment
the platform shows in Dagster opens at the UI that holds it (the local one `mlops up` starts, or a tracking server).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

LOCAL_UI_HOST = "127.0.0.1"
LOCAL_UI_PORT = 5000


def is_remote(tracking_uri: str) -> bool:
    """A tracking server (http/https) has its own UI; any other store (SQLite, a database) needs a local one."""
    return urlsplit(tracking_uri).scheme in {"http", "https"}


def ui_base_url(tracking_uri: str, override: str | None = None, local_port: int = LOCAL_UI_PORT) -> str:
    """The UI's base URL: an explicit override, else the tracking server itself (credentials in the URL removed:
    links are shown to everyone who opens Dagster), else the local UI that `mlops up` starts."""
    if override:
        return override.rstrip("/")
    if is_remote(tracking_uri):
        parts = urlsplit(tracking_uri)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"http://{LOCAL_UI_HOST}:{local_port}"


@dataclass(frozen=True)
class MlflowLinks:
    """The MLflow UI's routes (its single-page app reads them after ``#``) under one base URL."""

    base: str

    def experiment(self, experiment_id: str) -> str:
        return f"{self.base.rstrip('/')}/#/experiments/{quote(str(experiment_id), safe='')}"

    def run(self, experiment_id: str, run_id: str) -> str:
        return f"{self.experiment(experiment_id)}/runs/{quote(str(run_id), safe='')}"

    def model_version(self, model_name: str, version: str | int) -> str:
        return f"{self.base.rstrip('/')}/#/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"
