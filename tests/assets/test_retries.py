"""Retries of transient faults (issue 15, item 5): a real `mlflow server` on loopback, stopped for about ten
seconds in the middle of a training run and restarted on the same port and store; the run succeeds through
Dagster's retries and registers exactly one model version."""

import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import write_batches
from mlops_assets.core.waiting import wait_until
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
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
