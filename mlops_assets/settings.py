"""Where the platform keeps its state, and every environment variable it reads: the one module that looks at
``os.environ`` (README's "Configuration" lists the same variables).

Everything on the embedded default lives under one home directory (``MLOPS_HOME``, default ``~/.mlops``):
deleting it resets the platform. Each path can be moved elsewhere by configuration, which is how the same
code scales out (an MLflow server, an object store, PostgreSQL for Dagster). A malformed number or switch fails
at once with the variable's name, never as a silent default.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlops_assets.core.mlflow_links import is_remote, ui_base_url

DEFAULT_HOME = "~/.mlops"
DEFAULT_MODEL_NAME = "mlops-model"
DEFAULT_EXPERIMENT = "mlops"


def mlops_home() -> Path:
    """The platform's home directory, created on first use."""
    home = Path(os.environ.get("MLOPS_HOME", DEFAULT_HOME)).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


class _Subdir:
    """A directory under the home, named after the attribute unless told otherwise."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.name = self.name or attr
        owner.SUBDIRS = (*getattr(owner, "SUBDIRS", ()), attr)

    def __get__(self, layout: Layout, owner: type | None = None) -> Path:
        return layout.home / self.name


@dataclass(frozen=True)
class Layout:
    """The directories of one platform home; a plain value so logic can be tested without Dagster."""

    SUBDIRS: ClassVar[tuple[str, ...]] = ()  # filled by _Subdir, in declaration order
    home: Path
    landing = _Subdir()
    labels_incoming = _Subdir("labels/incoming")  # label files (id + target) the labels sensor delivers
    labels_delivered = _Subdir("labels/delivered")  # delivered label files, kept with their report
    labels_rejected = _Subdir("labels/rejected")  # label files that could not be delivered, with the reason
    quarantine = _Subdir()
    store = _Subdir()
    predictions = _Subdir()
    mlflow_dir = _Subdir("mlflow")
    io = _Subdir()
    locks = _Subdir()
    dagster_home = _Subdir("dagster")
    # Batch scoring: files to score land in ``incoming``; scored Parquet goes to ``output``, reports of rejected
    # rows to ``reports`` (mlops score, the batch_predictions asset and its sensor).
    scoring_incoming = _Subdir("scoring/incoming")
    scoring_output = _Subdir("scoring/output")
    scoring_reports = _Subdir("scoring/reports")

    def ensure(self) -> Layout:
        for attr in self.SUBDIRS:
            getattr(self, attr).mkdir(parents=True, exist_ok=True)
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


def dagster_home(lay: Layout | None = None) -> Path:
    """Dagster's instance directory: ``DAGSTER_HOME`` when set, else the embedded one under the home."""
    return Path(os.environ.get("DAGSTER_HOME") or (lay or layout()).dagster_home)


def git_commit_override() -> str | None:
    """The commit to record when the code does not run from a checkout (``MLOPS_GIT_COMMIT``, e.g. in an image)."""
    return os.environ.get("MLOPS_GIT_COMMIT") or None


def store_url(lay: Layout | None = None) -> str:
    """The data store: ``MLOPS_STORE_URL`` (a path or an fsspec URL such as ``s3://bucket/store``)."""
    return os.environ.get("MLOPS_STORE_URL") or str((lay or layout()).store)


def dataset_spec_path() -> str | None:
    """The dataset spec file (``MLOPS_DATASET``); None: the built-in demo spec."""
    return os.environ.get("MLOPS_DATASET") or None


def settle_seconds() -> float:
    """How long a landed file must be unchanged before it is ingested (``MLOPS_SETTLE_SECONDS``)."""
    return _number("MLOPS_SETTLE_SECONDS", 1.0)


def gateway_timeout_seconds() -> float:
    """How long a deployment waits for the gateway to serve a new version (``MLOPS_GATEWAY_TIMEOUT``)."""
    return _number("MLOPS_GATEWAY_TIMEOUT", 60.0)


ALERT_WEBHOOK_VAR = "MLOPS_ALERT_WEBHOOK"  # a secret: resources read it through Dagster's EnvVar


def alert_webhook_configured() -> bool:
    return bool(os.environ.get(ALERT_WEBHOOK_VAR))


def gateway_poll_seconds() -> float:
    """How often the gateway re-reads the registry aliases (``MLOPS_GATEWAY_POLL_SECONDS``)."""
    return _number("MLOPS_GATEWAY_POLL_SECONDS", 2.0)


METRICS_MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name: it reads it at import


def metrics_multiprocess_dir() -> str | None:
    """Where the gateway's workers share their Prometheus counts (set by ``mlops serve --workers N``)."""
    return os.environ.get(METRICS_MULTIPROC_VAR) or None


def share_metrics_dir(path: str) -> None:
    """Hand ``path`` to the worker processes about to start: prometheus-client picks its multiprocess mode from
    the environment when a worker imports it."""
    os.environ[METRICS_MULTIPROC_VAR] = path


# MLflow's own variables that change how its client talks HTTP (TLS, an auth plugin): the platform's plain REST
# reader does not speak them, so with any of them set the listing commands use MLflow's client instead.
_MLFLOW_HTTP_CUSTOM = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                       "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH", "MLFLOW_WORKSPACE")


def mlflow_http_auth() -> tuple[str | None, str | None, str | None]:
    """MLflow's credentials as its client reads them: (``MLFLOW_TRACKING_USERNAME``, ``..._PASSWORD``,
    ``MLFLOW_TRACKING_TOKEN``), for the listing commands' REST reader."""
    return (os.environ.get("MLFLOW_TRACKING_USERNAME") or None, os.environ.get("MLFLOW_TRACKING_PASSWORD") or None,
            os.environ.get("MLFLOW_TRACKING_TOKEN") or None)


def mlflow_http_customised() -> bool:
    """Whether MLflow's client is configured beyond URI and credentials (TLS, auth plugin, workspace)."""
    return any(os.environ.get(var) for var in _MLFLOW_HTTP_CUSTOM)


def step_retries() -> tuple[int, float]:
    """How often a step retries a transient fault (``MLOPS_STEP_RETRIES``, default 5) and the base delay of its
    exponential backoff (``MLOPS_STEP_RETRY_DELAY_SECONDS``, default 2: about 2, 6, 14, 30, 62 s, with jitter)."""
    return _number("MLOPS_STEP_RETRIES", 5, int), _number("MLOPS_STEP_RETRY_DELAY_SECONDS", 2.0)


def registry_user() -> str:
    """Who moves a release, for the audit trail: the MLflow user the registry authenticates
    (``MLFLOW_TRACKING_USERNAME``, when access control is on), else the operating-system user."""
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def admin_token() -> str | None:
    """The gateway's admin token (``MLOPS_ADMIN_TOKEN``); None disables the admin endpoints."""
    return os.environ.get("MLOPS_ADMIN_TOKEN") or None


def feedback_token() -> str | None:
    """The token ``POST /feedback`` requires (``MLOPS_FEEDBACK_TOKEN``); None: feedback is open to anyone who
    reaches the gateway (recommended only on a private network)."""
    return os.environ.get("MLOPS_FEEDBACK_TOKEN") or None


def _configured_spec():
    from mlops_assets.core.spec import demo_spec, load_spec

    path = dataset_spec_path()
    return load_spec(path) if path else demo_spec()


def dataset_id_column() -> str | None:
    """The business id column of the configured dataset spec (the gateway accepts labels by that id)."""
    return _configured_spec().id_column


def dataset_timestamp_column() -> str | None:
    """The event-time column of the configured dataset spec (the gateway logs it with the rows when sent)."""
    return _configured_spec().timestamp_column


# ContinuousTraining fields that the environment may override: field -> (variable, type).
_POLICY_ENV: dict[str, tuple[str, type]] = {
    "retrain_on_new_data": ("MLOPS_RETRAIN_ON_NEW_DATA", bool),
    "retrain_on_drift": ("MLOPS_RETRAIN_ON_DRIFT", bool),
    "retrain_on_decay": ("MLOPS_RETRAIN_ON_DECAY", bool),
    "drift_every_rows": ("MLOPS_DRIFT_EVERY_ROWS", int),
    "retrain_cooldown_seconds": ("MLOPS_RETRAIN_COOLDOWN_SECONDS", float),
    "canary_min_requests": ("MLOPS_CANARY_MIN_REQUESTS", int),
    "canary_min_labeled": ("MLOPS_CANARY_MIN_LABELED", int),
    "require_approval": ("MLOPS_REQUIRE_APPROVAL", bool),
}


def continuous_training_overrides() -> dict[str, Any]:
    """The continuous-training policy fields set in the environment (the resource keeps its defaults for the
    rest, so each default is written once)."""
    out: dict[str, Any] = {}
    for name, (var, kind) in _POLICY_ENV.items():
        if os.environ.get(var) is not None:
            out[name] = _flag(var) if kind is bool else _number(var, 0, kind)
    return out


def _flag(var: str) -> bool:
    value = os.environ[var].strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{var}={os.environ[var]!r} is not a switch: use true or false")


def _number(var: str, default: float, kind: type = float) -> Any:
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None


# -- operations: the MLflow UI `mlops up` starts, prediction-log retention (issue 15) --------------------------

MLFLOW_UI_URL_VAR = "MLOPS_MLFLOW_UI_URL"  # `mlops up` sets it for its children to the UI it started


def mlflow_ui_url(lay: Layout | None = None) -> str:
    """Base URL of the MLflow UI every link in Dagster points to: ``MLOPS_MLFLOW_UI_URL`` (e.g. behind a proxy),
    else the tracking server of an http(s) ``MLFLOW_TRACKING_URI``, else the local UI on 127.0.0.1:5000."""
    return ui_base_url(tracking_uri(lay), os.environ.get(MLFLOW_UI_URL_VAR))


def mlflow_ui_url_overridden() -> bool:
    return bool(os.environ.get(MLFLOW_UI_URL_VAR))


def mlflow_env_tags() -> list[str]:
    """Environment variables tagged on the MLflow run a Dagster run's steps share (dagster-mlflow's ``env_to_tag``):
    the comma-separated names in ``MLOPS_MLFLOW_ENV_TAGS``, only those set, so no tag ever reads "None"."""
    names = [n.strip() for n in os.environ.get("MLOPS_MLFLOW_ENV_TAGS", "").split(",") if n.strip()]
    return [n for n in names if os.environ.get(n) is not None]


def local_mlflow_ui(lay: Layout | None = None) -> bool:
    """Whether `mlops up` starts an MLflow UI: only on a local store; a tracking server has its own UI."""
    return not is_remote(tracking_uri(lay))


def prediction_retention_days() -> int | None:
    """Served days of prediction and feedback logs to keep (``MLOPS_PREDICTION_RETENTION_DAYS``); None keeps all."""
    raw = os.environ.get("MLOPS_PREDICTION_RETENTION_DAYS")
    if raw is None or not raw.strip():
        return None
    days = _number("MLOPS_PREDICTION_RETENTION_DAYS", 0, int)
    if days < 1:
        raise ValueError(f"MLOPS_PREDICTION_RETENTION_DAYS={raw!r} must be at least 1 (unset it to keep every day)")
    return days
