"""Registry stage: a model that passed the gate becomes an MLflow registry version with lineage tags."""

import mlflow
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from mlops_assets.core.contracts import CHALLENGER, TRIGGER, Trigger
from mlops_assets.core.registry import VersionInfo, lineage_tags, version_tags
from mlops_assets.records import EvaluationRecord, RegisteredModelRecord
from mlops_assets.retries import retry_transient
from resources import MlflowTracking


def describe_version(evaluation: EvaluationRecord) -> str:
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(evaluation["candidate_metrics"].items()))
    champ = evaluation["champion_version"]
    return (f"Trained on dataset version {evaluation['dataset_id']} (MLflow run {evaluation['run_id']}). "
            f"Holdout: {metrics}. Gate passed"
            + (f" against champion v{champ} on the same rows." if champ else " (first model)."))


@asset(
    group_name="registry",
    io_manager_key="records",
    description="The gated candidate as an MLflow Model Registry version, tagged with its dataset version, code "
                "version, Dagster run, metrics and gate verdict, and aliased `challenger`.",
)
@retry_transient
def registered_model(context: AssetExecutionContext, tracking: MlflowTracking,
                     model_evaluation: EvaluationRecord) -> Output[RegisteredModelRecord]:
    tracking.activate()
    client = tracking.client()
    run_id = model_evaluation["run_id"]
    lineage = version_tags(
        lineage_tags(dataset_id=model_evaluation["dataset_id"], dagster_run_id=context.run_id,
                     fingerprint=model_evaluation["fingerprint"],
                     trigger=context.run.tags.get(TRIGGER, Trigger.MANUAL)),
        mlflow_run_id=run_id, gate_passed=model_evaluation["gate"]["passed"],
        metrics=model_evaluation["candidate_metrics"])
    # A rerun after a crash finds the version it already created instead of registering a duplicate; the lock
    # makes that check and the registration one step for runs going at once.
    with tracking.registry_lock():
        existing = [v for v in tracking.versions() if v.run_id == run_id]
        if existing:
            version = existing[0]
            context.log.info(f"run {run_id} is already registered as v{version.version}")
        else:
            version = VersionInfo.of(mlflow.register_model(model_evaluation["model_uri"], tracking.model_name,
                                                            tags=lineage))
    for key, value in lineage.items():
        client.set_model_version_tag(tracking.model_name, version.version, key, value)
    client.update_model_version(tracking.model_name, version.version, description=describe_version(model_evaluation))
    client.set_registered_model_alias(tracking.model_name, CHALLENGER, version.version)
    record: RegisteredModelRecord = {"name": tracking.model_name, "version": version.version, "run_id": run_id,
              "dataset_id": model_evaluation["dataset_id"]}
    return Output(record, metadata={
        "model": tracking.model_name, "version": int(version.version), "alias": CHALLENGER,
        "dataset_version": model_evaluation["dataset_id"],
        "lineage": MetadataValue.json(lineage),
        "mlflow_model_version": MetadataValue.url(tracking.model_version_url(version.version)),
    })
