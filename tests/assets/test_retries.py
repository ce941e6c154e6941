"""Retries of transient faults (issue 15, item 5): a real `mlflow server` on loopback, stopped for about ten
seconds in the middle of a training run and restarted on the same port and store; the run succeeds through
Dagster's retries and registers exactly one model version. A monitoring step meets an MLflow that is not up yet
the same way, and a broken dataset spec fails it at once."""

import threading
import time
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterEventType, DagsterInstance, asset, materialize

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import write_batches
from mlops_assets.core.waiting import wait_until
from mlops_assets.definitions import build_definitions
from mlops_assets.estimation import estimated_performance
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.retries import FinalFailure, retry_transient
from tests.support.servers import MlflowServer

QUICK_TRAINING = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "cv_folds": 2}}}}


def started_steps(instance: DagsterInstance) -> set[str]:
    runs = instance.get_runs(limit=1)
    if not runs:
        return set()
    return {e.step_key for e in instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_START)}


def retried_steps(instance: DagsterInstance, run_id: str) -> set[str]:
    return {e.step_key for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)}


@pytest.fixture
def server(tmp_path: Path):
    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts").start()
    yield server
    server.crash()


def test_a_training_run_survives_an_mlflow_outage_and_registers_one_version(lay, instance, server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries would hide the outage
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLOPS_STEP_RETRIES", "8")
    monkeypatch.setenv("MLOPS_STEP_RETRY_DELAY_SECONDS", "1")
    defs = build_definitions(lay)
    write_batches(lay.landing, batches=1, rows=600, seed=5)
    assert all(r.success for r in Runner(defs, instance, lay.io / "cursors.json").tick("new_data_sensor").runs)

    result = {}
    job = defs.resolve_job_def("training_job")
    worker = threading.Thread(
        target=lambda: result.update(
            run=job.execute_in_process(instance=instance, run_config=QUICK_TRAINING, raise_on_error=False)
        )
    )
    worker.start()
    assert wait_until(lambda: "candidate_model" in started_steps(instance), timeout=240, interval=0.2)
    server.crash()  # mid-run: the candidate is training or being logged, evaluation and registration are ahead
    time.sleep(10)
    server.start()
    worker.join(timeout=600)

    run = result["run"]
    assert run.success
    assert retried_steps(instance, run.run_id), "the outage should have been met by at least one retry"
    tracking = defs.resources["tracking"]
    versions = tracking.versions()
    assert [v.version for v in versions] == ["1"]
    assert tracking.version_by_alias(CHAMPION).version == "1"


def test_estimation_waits_out_an_mlflow_outage_and_never_retries_a_broken_spec(lay, instance, tmp_path, monkeypatch):
    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")  # down until a retry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLOPS_STEP_RETRIES", "8")
    monkeypatch.setenv("MLOPS_STEP_RETRY_DELAY_SECONDS", "0.5")

    def estimate():
        return materialize([estimated_performance], partition_key="2026-03-01", instance=instance,
                           resources=build_definitions(lay).resources, raise_on_error=False)

    def retrying() -> bool:
        runs = instance.get_runs(limit=1)
        return bool(runs and retried_steps(instance, runs[0].run_id))

    result = {}
    worker = threading.Thread(target=lambda: result.update(run=estimate()))
    worker.start()
    try:
        assert wait_until(retrying, timeout=240, interval=0.2)
        server.start()
        worker.join(timeout=600)
    finally:
        server.crash()
    run = result["run"]
    assert run.success and retried_steps(instance, run.run_id) == {"estimated_performance"}
    record = run.output_for_node("estimated_performance")
    assert record["status"] == "insufficient_data" and record["detail"] == "no champion serving yet"

    spec = tmp_path / "broken.yaml"
    spec.write_text("task: classification\n", encoding="utf-8")  # no features, no target: a SpecError
    monkeypatch.setenv("MLOPS_DATASET", str(spec))
    broken = estimate()
    assert not broken.success and retried_steps(instance, broken.run_id) == set()
    failure = broken.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "SpecError" in failure and "broken.yaml" in failure


def test_a_step_that_declares_its_failure_final_is_not_retried(instance, monkeypatch):
    """Batch scoring's case: rows may already be logged, so even a transient cause must not log them twice."""
    monkeypatch.setenv("MLOPS_STEP_RETRIES", "3")
    monkeypatch.setenv("MLOPS_STEP_RETRY_DELAY_SECONDS", "0")

    @asset
    @retry_transient
    def scored(context: AssetExecutionContext) -> None:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise FinalFailure(description="rows may already be logged") from exc

    result = materialize([scored], instance=instance, raise_on_error=False)
    assert not result.success and retried_steps(instance, result.run_id) == set()
