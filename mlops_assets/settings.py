"""Where the platform keeps its state, and how the environment overrides it.

Everything on the embedded default lives under one home directory (``MLOPS_HOME``, default ``~/.mlops``):
deleting it resets the platform. Each path can be moved elsewhere by configuration, which is how the same
code scales out (an MLflow server, an object store, PostgreSQL for Dagster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.mlops"
DEFAULT_MODEL_NAME = "mlops-model"
DEFAULT_EXPERIMENT = "mlops"


def mlops_home() -> Path:
    """The platform's home directory, created on first use."""
    home = Path(os.environ.get("MLOPS_HOME", DEFAULT_HOME)).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


@dataclass(frozen=True)
class Layout:
    """The directories of one platform home; a plain value so logic can be tested without Dagster."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def predictions(self) -> Path:
        return self.home / "predictions"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def io(self) -> Path:
        return self.home / "io"

    @property
    def locks(self) -> Path:
        return self.home / "locks"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def ensure(self) -> Layout:
        for path in (self.landing, self.quarantine, self.store, self.predictions, self.mlflow_dir, self.io,
                     self.locks, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)
        return self


def layout() -> Layout:
    return Layout(mlops_home()).ensure()


def tracking_uri(lay: Layout | None = None) -> str:
    """MLflow's tracking URI: the standard environment variable wins, else a SQLite store under the home."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    lay = lay or layout()
    return f"sqlite:///{lay.mlflow_dir / 'mlflow.db'}"


def registry_uri(lay: Layout | None = None) -> str:
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri(lay)


def artifact_location(lay: Layout | None = None) -> str | None:
    """Artifact root for the platform's experiment (ignored when the experiment already exists). With a tracking
    server, None: the server's own artifact root, so runs on other machines never write to a local disk."""
    override = os.environ.get("MLOPS_ARTIFACT_ROOT")
    if override:
        return override
    if tracking_uri(lay).startswith(("http://", "https://")):
        return None
    lay = lay or layout()
    return (lay.mlflow_dir / "artifacts").as_uri()


def prediction_log_url(lay: Layout | None = None) -> str:
    """Where the gateway logs predictions and feedback and monitoring reads them: a path or an fsspec URL."""
    return os.environ.get("MLOPS_PREDICTION_LOG_URL") or str((lay or layout()).home)


def model_name() -> str:
    return os.environ.get("MLOPS_MODEL_NAME", DEFAULT_MODEL_NAME)


def experiment_name() -> str:
    return os.environ.get("MLOPS_EXPERIMENT", DEFAULT_EXPERIMENT)


def gateway_url() -> str:
    return os.environ.get("MLOPS_GATEWAY_URL", "http://127.0.0.1:5005")


def gateway_poll_seconds() -> float:
    """How often the gateway re-reads the registry aliases."""
    return float(os.environ.get("MLOPS_GATEWAY_POLL_SECONDS", "2.0"))


def admin_token() -> str | None:
    """The bearer token of the gateway's admin endpoints; None (unset or empty) disables them."""
    return os.environ.get("MLOPS_ADMIN_TOKEN") or None
