"""The Dagster code location: every lifecycle stage as assets, checks, jobs, sensors and a schedule.

Resources are built from the environment (``MLOPS_HOME``, ``MLFLOW_TRACKING_URI``, ...) at load time, so
the same definitions run on the embedded default and at scale; secrets come only from ``EnvVar``.
"""

from dagster import Definitions, EnvVar

from mlops_assets import settings
from mlops_assets.data import dataset, raw_batches
from mlops_assets.deployment import approved_release, canary_release, deployment
from mlops_assets.estimation import estimated_performance
from mlops_assets.evaluation import model_evaluation
from mlops_assets.features import features
from mlops_assets.jobs import JOBS
from mlops_assets.monitoring import drift_report, live_performance
from mlops_assets.registry import registered_model
from mlops_assets.retention import prediction_log_retention
from mlops_assets.scoring import batch_predictions
from mlops_assets.training import candidate_model
from resources import (
    Alerter,
    ContinuousTraining,
    DataStore,
    JsonRecordIOManager,
    MlflowTracking,
    PredictionLog,
    ScoringZone,
    ServingGateway,
)
from sensors import SCHEDULES, SENSORS

ASSETS = [raw_batches, dataset, features, candidate_model, model_evaluation, registered_model, deployment,
          canary_release, approved_release, drift_report, live_performance, prediction_log_retention,
          estimated_performance, batch_predictions]


def build_resources(lay: settings.Layout | None = None) -> dict[str, object]:
    lay = lay or settings.layout()
    return {
        "store": DataStore(
            root=settings.store_url(lay),
            landing_dir=str(lay.landing),
            quarantine_dir=str(lay.quarantine),
            spec_path=settings.dataset_spec_path(),
            settle_seconds=settings.settle_seconds(),
        ),
        "tracking": MlflowTracking(
            tracking_uri=settings.tracking_uri(lay),
            registry_uri=settings.registry_uri(lay),
            experiment=settings.experiment_name(),
            model_name=settings.model_name(),
            artifact_location=settings.artifact_location(lay),
            lock_dir=str(lay.locks),
            ui_url=settings.mlflow_ui_url(lay),
            env_to_tag=settings.mlflow_env_tags(),
        ),
        "gateway": ServingGateway(url=settings.gateway_url(),
                                  timeout_seconds=settings.gateway_timeout_seconds()),
        "alerts": Alerter(
            log_path=str(lay.home / "alerts.jsonl"),
            webhook_url=EnvVar(settings.ALERT_WEBHOOK_VAR) if settings.alert_webhook_configured() else None,
        ),
        "prediction_log": PredictionLog(root=settings.prediction_log_url(lay),
                                        retention_days=settings.prediction_retention_days()),
        "scoring": ScoringZone(incoming_dir=str(lay.scoring_incoming), output_dir=str(lay.scoring_output),
                               reports_dir=str(lay.scoring_reports), settle_seconds=settings.settle_seconds()),
        "continuous_training": ContinuousTraining(**settings.continuous_training_overrides()),
        "records": JsonRecordIOManager(base_dir=str(lay.io)),
    }


def build_definitions(lay: settings.Layout | None = None) -> Definitions:
    return Definitions(
        assets=ASSETS,
        jobs=JOBS,
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources=build_resources(lay),
    )


defs = build_definitions()
