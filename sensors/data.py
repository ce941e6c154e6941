"""Sensors of the data stage: new files in the landing zone, and new dataset versions to train on."""

import functools

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from mlops_assets.core import contracts, triggers, validation, versions
from mlops_assets.core.contracts import CHAMPION, RunKind, Trigger
from mlops_assets.jobs import ingest_job, training_job
from mlops_assets.partitions import batch_partitions
from resources import Alerter, ContinuousTraining, DataStore, MlflowTracking
from sensors.common import folder_run_requests, runs_in_flight


@sensor(job=ingest_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Turns each new (or corrected) file in the landing zone into an ingestion run of its "
                    "partition. Idempotent: the same bytes under the same spec never ingest twice; a file "
                    "that failed is tried again once its bytes or the spec changed.")
def new_data_sensor(context: SensorEvaluationContext, store: DataStore, alerts: Alerter):
    # the spec is read once a tick, and only when a file is there to ingest
    spec_digest = functools.cache(lambda: versions.schema_hash(validation.raw_schema(store.spec())))

    def quarantine(name: str, exc: Exception) -> None:
        moved = store.quarantine_file(store.landing / name, {"file": name, "reason": str(exc), "failures": []})
        alerts.alert("batch_quarantined", f"{name} quarantined before ingestion: {exc}", file=name,
                     quarantined_as=moved.name)

    def ingest(name: str, key: str, sha: str) -> RunRequest:
        return RunRequest(
            partition_key=key, run_key=triggers.ingest_run_key(name, sha, spec_digest()),
            tags={contracts.SOURCE_FILE: name, contracts.SOURCE_SHA256: sha, contracts.TRIGGER: Trigger.NEW_DATA})

    # a quarantined file is moved away, so it is forgotten: a corrected file of that name counts as new
    return folder_run_requests(context, store.landing, store.settled_landing_files(), batch_partitions,
                               store.resolve_landing, quarantine, ingest, remember_refused=False)


@sensor(job=training_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Starts continuous training when the accepted batches form a dataset version the champion "
                    "was not trained on (waits for ingestion in flight, so a burst of files trains once).")
def new_dataset_sensor(context: SensorEvaluationContext, store: DataStore, tracking: MlflowTracking,
                       continuous_training: ContinuousTraining):
    if not continuous_training.retrain_on_new_data:
        return SkipReason("retraining on new data is switched off (ContinuousTraining.retrain_on_new_data)")
    if runs_in_flight(context.instance, RunKind.INGEST):
        return SkipReason("ingestion runs in flight: waiting for them to finish")
    if runs_in_flight(context.instance, RunKind.TRAINING):
        return SkipReason("a training run is in flight")
    current = store.current_dataset()
    if current is None or not current["batches"]:
        return SkipReason("no accepted batches yet" if current is None else
                          f"no stored batch passes the current spec ({len(current['left_out'])} left out)")
    dataset_id = current["id"]
    if context.cursor == dataset_id:
        return SkipReason(f"training for dataset {dataset_id} already requested")
    champion = tracking.version_by_alias(CHAMPION)
    if champion is not None and champion.tags.get(contracts.LINEAGE_DATASET) == dataset_id:
        return SensorResult(skip_reason=f"champion v{champion.version} already trained on {dataset_id}",
                            cursor=dataset_id)
    return SensorResult(
        run_requests=[RunRequest(
            run_key=f"data:{dataset_id}",
            tags={contracts.TRIGGER: Trigger.NEW_DATA, contracts.DATASET_VERSION: dataset_id})],
        cursor=dataset_id)
