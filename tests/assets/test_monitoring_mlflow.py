"""Monitoring logs into one MLflow run per Dagster run, through a real Dagster instance and MLflow store on
scikit-learn's breast-cancer data: the drift and live-performance steps, each in a process of its own, share one
run tagged with the Dagster run and the environment; the run stays open until the Dagster run has ended and the
``mlflow_run_sensor`` ends it FINISHED (FAILED when a step failed); the champion's training run gets nothing."""

from datetime import date
from pathlib import Path

import mlflow
from dagster import (
    AssetKey,
    DagsterEventType,
    Definitions,
    JobDefinition,
    build_sensor_context,
    define_asset_job,
    execute_job,
    reconstructable,
)
from mlflow.entities import ViewType

from mlops_assets.core import contracts as c
from mlops_assets.core import training
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.registry import VersionInfo
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.monitoring import drift_report, live_performance
from mlops_assets.partitions import daily_partitions
from sensors.mlflow_runs import mlflow_run_sensor
from tests.assets.test_estimated_performance import _log_day, platform  # noqa: F401

DAY, BAD_DAY = date(2026, 3, 1), date(2026, 3, 2)
# Step processes forked from one server that imported the code location once (spawning each costs an import).
FORKSERVER = {
    "execution": {
        "config": {"multiprocess": {"start_method": {"forkserver": {"preload_modules": ["mlops_assets.definitions"]}}}}
    }
}


def monitoring_steps() -> JobDefinition:
    """The two monitoring assets of this change as one partitioned job, loaded again by each step process.
    (``estimated_performance``, the job's third asset, still logs into the champion's run: estimation.py.)"""
    from mlops_assets.definitions import build_resources

    job = define_asset_job(
        "monitoring_steps",
        selection=[drift_report, live_performance],
        partitions_def=daily_partitions,
        tags={c.RUN_KIND: c.RunKind.MONITORING},
    )
    return Definitions(
        assets=[drift_report, live_performance], jobs=[job], resources=build_resources()
    ).resolve_job_def("monitoring_steps")


def _champion(defs, instance) -> VersionInfo:
    """The platform's own ingestion, dataset and features; then its pipeline fitted and registered as champion with
    the lineage training writes (dataset version, holdout accuracy), without the tuning and evaluation plots a
    full training run spends most of its time on (not what this test is about)."""
    runner = Runner(defs, instance, Path(instance.root_directory) / "cursors.json")
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    prepared = defs.resolve_job_def("training_job").execute_in_process(
        instance=instance, asset_selection=[AssetKey("dataset"), AssetKey("features")]
    )
    dataset_id = prepared.output_for_node("features")["dataset_id"]
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    spec = store.spec()
    train, _ = store.sample_features(dataset_id, "train", None)
    model = training.fit(train, spec, "hist_gradient_boosting", {"max_iter": 20}, 0).model
    holdout = store.holdout(dataset_id)
    with mlflow.start_run(experiment_id=tracking.activate()) as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            pip_requirements=[],
            skops_trusted_types=training.skops_trusted_types(model),
        )
    accuracy = float((model.predict(holdout[spec.feature_names]) == holdout[spec.target]).mean())
    version = mlflow.register_model(
        info.model_uri,
        tracking.model_name,
        tags={c.LINEAGE_DATASET: dataset_id, f"{c.METRIC_TAG_PREFIX}accuracy": f"{accuracy:.6f}"},
    ).version
    tracking.promote(str(version))
    assert tracking.version_by_alias(CHAMPION).run_id == run.info.run_id
    return tracking.version_by_alias(CHAMPION)


def _artifacts(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _shared_runs(tracking, dagster_run_id: str) -> list:
    return tracking.client().search_runs(
        [tracking.activate()],
        run_view_type=ViewType.ALL,
        filter_string=f"tags.{c.DAGSTER_MLFLOW_RUN_TAG} = '{dagster_run_id}'",
    )


def test_the_steps_of_a_monitoring_run_share_one_mlflow_run_ended_with_it(
    platform,  # noqa: F811 (the fixture imported above)
    instance,
    lay,
    monkeypatch,
):
    defs, frame, _ = platform
    monkeypatch.setenv("MLOPS_MLFLOW_ENV_TAGS", "MLOPS_TEST_DEPLOYMENT,MLOPS_TEST_UNSET")
    monkeypatch.setenv("MLOPS_TEST_DEPLOYMENT", "staging-eu")
    monkeypatch.delenv("MLOPS_TEST_UNSET", raising=False)
    champion = _champion(defs, instance)
    tracking, spec = defs.resources["tracking"], defs.resources["store"].spec()
    client = tracking.client()
    trained = _artifacts(client, champion.run_id)
    _log_day(lay, tracking, spec, frame, DAY, labels=False)
    _log_day(lay, tracking, spec, frame, DAY, labels=True)

    # Multiprocess executor: each step in a process of its own, both asking for the run at once.
    with execute_job(
        reconstructable(monitoring_steps),
        instance=instance,
        run_config=FORKSERVER,
        tags={"dagster/partition": DAY.isoformat(), c.TRIGGER: c.Trigger.TRAFFIC},
    ) as result:
        assert result.success
        run_id = result.run_id
    pids = {e.dagster_event.pid for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)}
    assert len(pids) == 2  # two step processes

    runs = _shared_runs(tracking, run_id)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    assert run.info.status == "RUNNING"  # left open by both steps: the Dagster run decides how it ends
    tags = run.data.tags
    assert tags[c.LINEAGE_RUN_ID] == run_id and tags[c.MLFLOW_RUN_KIND] == c.RunKind.MONITORING
    assert tags[c.PARTITION_TAG] == DAY.isoformat() and tags[c.LINEAGE_TRIGGER] == c.Trigger.TRAFFIC
    assert tags[c.DAGSTER_JOB_TAG] == "monitoring_steps" and tags[c.MONITORED_VERSION_TAG] == champion.version
    assert tags["MLOPS_TEST_DEPLOYMENT"] == "staging-eu" and "MLOPS_TEST_UNSET" not in tags
    assert tags[f"{c.STEP_TAG_PREFIX}drift_report"] == tags[f"{c.STEP_TAG_PREFIX}live_performance"] == "succeeded"
    assert {"drift_report.share_drifted", "live_performance.value", "live_performance.labeled_rows"} <= set(
        run.data.metrics
    )
    assert run.data.metrics["live_performance.labeled_rows"] == len(frame)
    logged = _artifacts(client, run.info.run_id)
    assert {f"drift_report/{DAY}.json", f"live_performance/{DAY}.json"} <= logged

    for asset in ("drift_report", "live_performance"):  # Dagster links the run and the version it watched
        metadata = instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization.metadata
        assert metadata["mlflow_run"].value == tracking.run_url(run.info.experiment_id, run.info.run_id)
        assert metadata["monitored_model_version"].value == tracking.model_version_url(champion.version)

    context = build_sensor_context(instance=instance, resources={"tracking": tracking})
    assert f"{run.info.run_id} FINISHED" in mlflow_run_sensor(context).skip_message
    assert client.get_run(run.info.run_id).info.status == "FINISHED"

    # In-process this time (steps one after the other in this process), one step failing on its configuration.
    _log_day(lay, tracking, spec, frame.head(200), BAD_DAY, labels=False)
    failed = monitoring_steps().execute_in_process(
        instance=instance,
        partition_key=BAD_DAY.isoformat(),
        raise_on_error=False,
        run_config={"ops": {"live_performance": {"config": {"max_lookback_days": 0}}}},
    )
    assert not failed.success and mlflow.active_run() is None  # nothing left active in this process
    bad = _shared_runs(tracking, failed.run_id)
    assert len(bad) == 1 and bad[0].info.run_id != run.info.run_id
    assert bad[0].data.tags[f"{c.STEP_TAG_PREFIX}drift_report"] == "succeeded"
    assert bad[0].data.tags[f"{c.STEP_TAG_PREFIX}live_performance"] == "failed: ValueError"
    assert f"{bad[0].info.run_id} FAILED" in mlflow_run_sensor(context).skip_message
    assert client.get_run(bad[0].info.run_id).info.status == "FAILED"

    assert _artifacts(client, champion.run_id) == trained  # the training run stays the model's lineage only
    assert c.MONITORED_VERSION_TAG not in client.get_run(champion.run_id).data.tags
