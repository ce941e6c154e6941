"""Shared fixtures: every test gets its own platform home, MLflow store and Dagster instance."""

import multiprocessing.forkserver
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, instance_for_test

from mlops_assets import settings


@pytest.fixture
def lay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[settings.Layout]:
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "0")
    monkeypatch.setenv("MLOPS_GATEWAY_URL", "http://127.0.0.1:9")  # nothing listens: deployment skips the wait
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLOPS_STORE_URL", "MLOPS_DATASET",
                "MLOPS_ARTIFACT_ROOT", "MLOPS_ALERT_WEBHOOK", "MLOPS_ADMIN_TOKEN", "MLOPS_PREDICTION_LOG_URL"):
        monkeypatch.delenv(var, raising=False)
    yield settings.layout()
    # Steps of a launched run fork from Python's forkserver, one per process, started with the environment (this
    # test's home) and the modules it preloaded: the next test's run must start its own.
    multiprocessing.forkserver._forkserver._stop()


@pytest.fixture
def defs(lay: settings.Layout) -> Definitions:
    from mlops_assets.definitions import build_definitions

    return build_definitions(lay)


@pytest.fixture
def instance(lay: settings.Layout) -> Iterator[DagsterInstance]:
    with instance_for_test(temp_dir=str(lay.dagster_home)) as inst:
        yield inst


TRAIN_SCRIPT = """
import json, sys
from dagster import DagsterInstance
from mlops_assets.definitions import build_definitions
config = json.loads(sys.argv[1])
with DagsterInstance.get() as instance:
    result = build_definitions().resolve_job_def("training_job").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


@pytest.fixture
def spawn_training(lay: settings.Layout):
    """Start a training run in a separate process against this test's home and Dagster instance."""
    import json
    import os
    import subprocess
    import sys

    def spawn(run_config: dict | None = None, **popen: object) -> subprocess.Popen:
        env = {**os.environ, "DAGSTER_HOME": str(lay.dagster_home)}
        return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, json.dumps(run_config or {})], env=env,
                                **popen)

    return spawn
