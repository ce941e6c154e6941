"""The Dagster code location: every lifecycle stage as assets, checks, jobs, sensors and a schedule.

Resources are built from the environment (``MLOPS_HOME``, ``MLFLOW_TRACKING_URI``, ...) at load time, so
the same definitions run on the embedded default and at scale; secrets come only from ``EnvVar``.
"""

import os

from dagster import Definitions, EnvVar

from mlops_assets import settings
from mlops_assets.data import dataset, raw_batches
from mlops_assets.deployment import canary_release, deployment
from mlops_assets.evaluation import model_evaluation, quality_gate
from mlops_assets.features import features
from mlops_assets.jobs import JOBS
from mlops_assets.monitoring import drift_report, live_performance
from mlops_assets.registry import registered_model
from mlops_assets.training import candidate_model
from resources import (
    Alerter,
    ContinuousTraining,
    DataStore,
    JsonRecordIOManager,
    MlflowTracking,
    PredictionLog,
    ServingGateway,
)
from sensors import SCHEDULES, SENSORS

ASSETS = [raw_batches, dataset, features, candidate_model, model_evaluation, registered_model, deployment,
          canary_release, drift_report, live_performance]


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def build_resources(lay: settings.Layout | None = None) -> dict[str, object]:
    lay = lay or settings.layout()
    return {
        "store": DataStore(
            root=os.environ.get("MLOPS_STORE_URL", str(lay.store)),
            landing_dir=str(lay.landing),
            quarantine_dir=str(lay.quarantine),
            spec_path=os.environ.get("MLOPS_DATASET"),
            settle_seconds=float(os.environ.get("MLOPS_SETTLE_SECONDS", "1.0")),
        ),
        "tracking": MlflowTracking(
            tracking_uri=settings.tracking_uri(lay),
            registry_uri=settings.registry_uri(lay),
            experiment=settings.experiment_name(),
            model_name=settings.model_name(),
            artifact_location=settings.artifact_location(lay),
            lock_dir=str(lay.locks),
            ui_url=os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        ),
        "gateway": ServingGateway(url=settings.gateway_url(),
                                  timeout_seconds=float(os.environ.get("MLOPS_GATEWAY_TIMEOUT", "60"))),
        "alerts": Alerter(
            log_path=str(lay.home / "alerts.jsonl"),
            webhook_url=EnvVar("MLOPS_ALERT_WEBHOOK") if os.environ.get("MLOPS_ALERT_WEBHOOK") else None,
        ),
        "prediction_log": PredictionLog(root=settings.prediction_log_url(lay)),
        "policy": ContinuousTraining(
            retrain_on_new_data=_env_flag("MLOPS_RETRAIN_ON_NEW_DATA", True),
            retrain_on_drift=_env_flag("MLOPS_RETRAIN_ON_DRIFT", True),
            retrain_on_decay=_env_flag("MLOPS_RETRAIN_ON_DECAY", True),
            drift_every_rows=int(os.environ.get("MLOPS_DRIFT_EVERY_ROWS", "200")),
            retrain_cooldown_seconds=float(os.environ.get("MLOPS_RETRAIN_COOLDOWN_SECONDS", "600")),
            canary_min_requests=int(os.environ.get("MLOPS_CANARY_MIN_REQUESTS", "200")),
            canary_min_labeled=int(os.environ.get("MLOPS_CANARY_MIN_LABELED", "100")),
        ),
        "records": JsonRecordIOManager(base_dir=str(lay.io)),
    }


def build_definitions(lay: settings.Layout | None = None) -> Definitions:
    return Definitions(
        assets=ASSETS,
        asset_checks=[quality_gate],
        jobs=JOBS,
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources=build_resources(lay),
    )


defs = build_definitions()
