"""Jobs: what sensors, schedules and the CLI launch."""

from dagster import (
    AssetObservation,
    AssetSelection,
    MetadataValue,
    OpExecutionContext,
    define_asset_job,
    job,
    multiprocess_executor,
    op,
)

from mlops_assets.core.contracts import RUN_KIND, TRIGGER, RunKind, Trigger
from mlops_assets.data import dataset, raw_batches
from mlops_assets.deployment import approved_release, canary_release, deployment
from mlops_assets.estimation import estimated_performance
from mlops_assets.evaluation import model_evaluation
from mlops_assets.features import features
from mlops_assets.monitoring import drift_report, live_performance
from mlops_assets.partitions import batch_partitions, daily_partitions, scoring_partitions
from mlops_assets.registry import registered_model
from mlops_assets.retention import prediction_log_retention
from mlops_assets.scoring import batch_predictions
from mlops_assets.training import candidate_model
from resources import MlflowTracking, ServingGateway

ingest_job = define_asset_job(
    "ingest_job", selection=AssetSelection.assets(raw_batches), partitions_def=batch_partitions,
    description="Validate one landed batch and store it content-addressed (or quarantine it).",
    tags={RUN_KIND: RunKind.INGEST},
)

# Launched runs (sensors, `dg launch`, the UI) still give every step its own process, so a step's memory goes back
# when it ends, but forked from a server that imported the platform once per run: a step starts in a fraction of a
# second instead of a fresh Python importing Dagster, pandas, scikit-learn and MLflow again (seconds, six times a
# retrain). `mlops train` executes in process and never starts one.
TRAINING_EXECUTOR = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["mlops_assets.definitions"]}}}, name="training_executor")

training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.assets(dataset, features, candidate_model, model_evaluation, registered_model,
                                    deployment),
    description="Continuous training: new dataset version -> features -> train (tune if below target) -> "
                "evaluate and gate -> register -> deploy.",
    tags={RUN_KIND: RunKind.TRAINING},
    executor_def=TRAINING_EXECUTOR,
)

monitoring_job = define_asset_job(
    "monitoring_job", selection=AssetSelection.assets(drift_report, live_performance, estimated_performance),
    partitions_def=daily_partitions,
    description="Drift report, live performance and estimated performance for one day of served traffic.",
    tags={RUN_KIND: RunKind.MONITORING},
)

scoring_job = define_asset_job(
    "scoring_job", selection=AssetSelection.assets(batch_predictions), partitions_def=scoring_partitions,
    description="Score files of the scoring zone in batch (launched by the scoring sensor, or a backfill).",
    tags={RUN_KIND: RunKind.SCORING},
)

canary_job = define_asset_job(
    "canary_job", selection=AssetSelection.assets(canary_release),
    description="Promote or withdraw the model in the canary slot (launched by the canary sensor).",
    tags={RUN_KIND: RunKind.DEPLOYMENT},
)

approved_release_job = define_asset_job(
    "approved_release_job", selection=AssetSelection.assets(approved_release),
    description="Release a version a person approved (launched by the approval sensor when require_approval is on).",
    tags={RUN_KIND: RunKind.DEPLOYMENT},
)


@op(description="Point `champion` back at `previous` in one step; the gateway follows within seconds.")
def rollback_champion(context: OpExecutionContext, tracking: MlflowTracking, gateway: ServingGateway) -> None:
    tracking.activate()
    from_version, to_version = tracking.rollback(
        why={"dagster_run_id": context.run_id, "trigger": context.run.tags.get(TRIGGER, Trigger.MANUAL)})
    context.log.info(f"champion rolled back: v{from_version} -> v{to_version}")
    context.log_event(AssetObservation(asset_key=deployment.key, metadata={
        "champion": int(to_version), "rolled_back_from": int(from_version),
        "audit_entries": MetadataValue.json(tracking.audit_for_run(context.run_id))}))
    if gateway.is_up() and not gateway.wait_for_version(to_version):
        context.log.warning(f"the gateway at {gateway.url} has not switched to v{to_version} yet")


@job(description="Roll the serving model back to the previous champion.", tags={RUN_KIND: RunKind.ROLLBACK})
def rollback_job() -> None:
    rollback_champion()


retention_job = define_asset_job(
    "retention_job", selection=AssetSelection.assets(prediction_log_retention),
    description="Delete served days of the prediction and feedback logs beyond MLOPS_PREDICTION_RETENTION_DAYS.",
    tags={RUN_KIND: RunKind.RETENTION},
)

JOBS = [ingest_job, training_job, monitoring_job, scoring_job, canary_job, approved_release_job, rollback_job,
        retention_job]

