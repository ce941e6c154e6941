"""Registry stage: a model that passed the gate becomes an MLflow registry version with lineage tags."""

import json

import mlflow
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from mlops_assets import tags
from mlops_assets.version import code_version, git_commit
from resources import CHALLENGER, MlflowTracking
from resources.tracking import VersionInfo


def describe_version(evaluation: dict) -> str:
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
def registered_model(context: AssetExecutionContext, tracking: MlflowTracking, model_evaluation: dict) -> Output[dict]:
    tracking.activate()
    client = tracking.client()
    run_id = model_evaluation["run_id"]
    lineage = {
        tags.LINEAGE_DATASET: model_evaluation["dataset_id"],
        tags.LINEAGE_RUN_ID: context.run_id,
        tags.LINEAGE_CODE: code_version(),
        tags.LINEAGE_COMMIT: git_commit() or "unknown",
        tags.LINEAGE_FINGERPRINT: model_evaluation["fingerprint"],
        tags.LINEAGE_GATE: json.dumps(model_evaluation["gate"]["passed"]),
        tags.LINEAGE_TRIGGER: context.run.tags.get(tags.TRIGGER, "manual"),
        "mlops.mlflow_run_id": run_id,
        **{f"metric.{k}": f"{v:.6f}" for k, v in model_evaluation["candidate_metrics"].items()},
    }
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
    record = {"name": tracking.model_name, "version": version.version, "run_id": run_id,
              "dataset_id": model_evaluation["dataset_id"]}
    return Output(record, metadata={
        "model": tracking.model_name, "version": int(version.version), "alias": CHALLENGER,
        "dataset_version": model_evaluation["dataset_id"],
        "lineage": MetadataValue.json(lineage),
    })
