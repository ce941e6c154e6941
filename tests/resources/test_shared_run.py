"""The MLflow run a Dagster run's steps share, on a real SQLite MLflow store and a real Dagster instance: parallel
processes asking for it at once get one run, and the sensor ends only runs whose Dagster run has ended."""

import multiprocessing
from pathlib import Path

from dagster import DagsterRun, build_sensor_context, job, op
from dagster._core.utils import make_new_run_id
from mlflow.entities import ViewType

from mlops_assets.core import contracts as c
from resources import MlflowTracking
from sensors.mlflow_runs import mlflow_run_sensor

PROCESSES = 3


def _tracking(root: Path) -> MlflowTracking:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowTracking(
        tracking_uri=uri,
        registry_uri=uri,
        experiment="shared-runs",
        model_name="m",
        artifact_location=(root / "artifacts").as_uri(),
        lock_dir=str(root / "locks"),
    )


def _ask(root: str, dagster_run_id: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:
    tracking = _tracking(Path(root))
    tracking.activate()  # the experiment first, so the processes meet at the lookup
    start.wait(60)
    out.put(tracking.shared_run_id(DagsterRun(job_name="monitoring_job", run_id=dagster_run_id), c.RunKind.MONITORING))


def _runs_of(tracking: MlflowTracking, dagster_run_id: str) -> list:
    return tracking.client().search_runs(
        [tracking.activate()],
        run_view_type=ViewType.ALL,
        filter_string=f"tags.{c.DAGSTER_MLFLOW_RUN_TAG} = '{dagster_run_id}'",
    )


def test_processes_asking_at_once_share_one_run(tmp_path):
    dagster_run_id = make_new_run_id()
    # Forked before this process opens the store (no connection is shared), with the modules already imported.
    fork = multiprocessing.get_context("fork")
    start, out = fork.Event(), fork.Queue()
    procs = [fork.Process(target=_ask, args=(str(tmp_path), dagster_run_id, start, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    ids = {out.get(timeout=120) for _ in procs}
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    tracking = _tracking(tmp_path)
    runs = _runs_of(tracking, dagster_run_id)
    assert len(ids) == 1 and [r.info.run_id for r in runs] == list(ids)
    tags = runs[0].data.tags
    assert tags[c.LINEAGE_RUN_ID] == dagster_run_id and tags[c.MLFLOW_RUN_KIND] == c.RunKind.MONITORING
    assert tags[c.DAGSTER_JOB_TAG] == "monitoring_job" and tags[c.LINEAGE_TRIGGER] == c.Trigger.MANUAL
    assert runs[0].info.status == "RUNNING"


@op
def _noop() -> None:
    pass


@job
def _some_job() -> None:
    _noop()


def test_the_sensor_ends_only_runs_whose_dagster_run_ended(tmp_path, instance):
    tracking = _tracking(tmp_path)
    canceled = instance.create_run_for_job(_some_job)
    going = instance.create_run_for_job(_some_job)
    elsewhere = DagsterRun(job_name="monitoring_job", run_id=make_new_run_id())  # another instance's run
    ids = {run.run_id: tracking.shared_run_id(run, c.RunKind.MONITORING) for run in (canceled, going, elsewhere)}
    instance.report_run_canceled(canceled)

    skip = mlflow_run_sensor(build_sensor_context(instance=instance, resources={"tracking": tracking}))

    status = {dagster_id: tracking.client().get_run(run_id).info.status for dagster_id, run_id in ids.items()}
    assert status == {canceled.run_id: "KILLED", going.run_id: "RUNNING", elsewhere.run_id: "RUNNING"}
    message = skip.skip_message
    assert f"ended 1 MLflow run(s): {ids[canceled.run_id]} KILLED" in message
    assert "1 still open while their Dagster runs go on" in message
    assert f"their Dagster runs unknown to this instance: {ids[elsewhere.run_id]}" in message
