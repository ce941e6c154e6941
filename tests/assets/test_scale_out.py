"""Scale-out on real servers: Dagster on PostgreSQL through docs/deploy/dagster.yaml, an `mlflow server` with a
PostgreSQL backend store and proxied artifacts, that server dying in the middle of a training run, and the other
deploy files (Docker instance, Helm values, the code location image's command).

PostgreSQL is a throwaway cluster started for the session (or the server at MLOPS_TEST_POSTGRES_URL), each test
on databases of its own. Without PostgreSQL installed these tests skip locally and fail in CI (CI=true), which
installs it (.ci/run).
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import psycopg2
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import ListRepositoriesResponse
from dagster._serdes import deserialize_value
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from mlflow import MlflowClient

from mlops_assets import settings
from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from tests.support.servers import MlflowServer, Postgres, free_port, postgres_server

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@contextlib.contextmanager
def _database(postgres: Postgres, prefix: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards (also on a long-lived MLOPS_TEST_POSTGRES_URL server)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    postgres.create_database(name)
    yield name
    conn = psycopg2.connect(postgres.url("postgres"))
    conn.autocommit = True  # DROP DATABASE cannot run in a transaction
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _point_dagster_at(postgres: Postgres, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment docs/deploy/dagster.yaml reads its connection from."""
    for var, value in zip(PG_VARS, (postgres.host, str(postgres.port), postgres.user, postgres.password, db),
                          strict=True):
        monkeypatch.setenv(var, value)


@pytest.fixture
def pg_instance(postgres: Postgres, lay: settings.Layout, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """The shipped dagster.yaml as this test's DAGSTER_HOME (also what a spawned run process loads)."""
    with _database(postgres, "dagster") as db:
        _point_dagster_at(postgres, db, monkeypatch)
        shutil.copy(DEPLOY / "dagster.yaml", lay.dagster_home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
        # Entered, so that Dagster's context-scoped state storage is this live instance's and not one left behind
        # by an earlier test's (already collected) instance.
        with DagsterInstance.from_config(str(lay.dagster_home)) as instance:
            yield instance


@pytest.fixture
def mlflow_db(postgres: Postgres) -> Iterator[str]:
    """The MLflow server's backend store: a PostgreSQL URL (libpq form; the server's needs the psycopg2 driver)."""
    with _database(postgres, "mlflow") as db:
        yield postgres.url(db)


@pytest.fixture
def mlflow_server(mlflow_db: str, lay: settings.Layout, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowServer]:
    """`mlflow server` on the PostgreSQL backend store; artifacts proxied by the server into a directory."""
    backend = mlflow_db.replace("postgresql://", "postgresql+psycopg2://", 1)  # SQLAlchemy 2.1 defaults to psycopg 3
    server = MlflowServer(backend, tmp_path / "artifacts").start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    try:
        yield server
    finally:
        server.stop()


def _train_on_new_batches(runner: Runner, *, batches: int, seed: int, lay: settings.Layout) -> None:
    write_batches(lay.landing, batches=batches, rows=800, seed=seed)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    training = runner.tick("new_dataset_sensor").runs
    assert len(training) == 1 and training[0].success


def test_the_lifecycle_runs_on_postgres_and_an_mlflow_server(pg_instance, mlflow_server, mlflow_db, lay, tmp_path):
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.run_coordinator, QueuedRunCoordinator)
    limits = pg_instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": contracts.RUN_KIND, "value": "training", "limit": 1} in limits

    defs = build_definitions(lay)
    runner = Runner(defs, pg_instance, lay.io / "cursors.json")
    _train_on_new_batches(runner, batches=2, seed=81, lay=lay)
    tracking = defs.resources["tracking"]
    champion = tracking.version_by_alias(CHAMPION)
    assert champion is not None and champion.version == "1"

    # The runs, with the tag the queue limits, are in PostgreSQL: a second instance from the same file (the
    # webserver's, the daemon's) sees them.
    with DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as other:
        (training,) = other.get_run_records(RunsFilter(tags={contracts.RUN_KIND: "training"}))
        assert len(other.get_run_records(RunsFilter(tags={contracts.RUN_KIND: "ingest"}))) == 2
    assert training.dagster_run.status == DagsterRunStatus.SUCCESS
    assert training.dagster_run.run_id == champion.tags[contracts.LINEAGE_RUN_ID]

    # MLflow's registry is in PostgreSQL and the model's files went through the server to its artifact store.
    with psycopg2.connect(mlflow_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (tracking.model_name,))
        assert dict(cur.fetchall()) == {CHAMPION: 1}
    run = MlflowClient(mlflow_server.url).get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list((tmp_path / "artifacts").rglob("MLmodel"))
    assert not (lay.mlflow_dir / "artifacts").exists()
    model = mlflow.pyfunc.load_model(f"models:/{tracking.model_name}@{CHAMPION}")
    assert set(model.predict(make_batch(20, seed=82)[defs.resources["store"].spec().feature_names])) <= {0, 1}

    _train_on_new_batches(runner, batches=1, seed=83, lay=lay)
    assert tracking.version_by_alias(CHAMPION).version == "2"
    assert tracking.version_by_alias(PREVIOUS).version == "1"


def _store_state(store, lay: settings.Layout) -> tuple:
    objects = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in lay.store.joinpath("objects").rglob("*")
               if p.is_file()}
    return store.batch_records(), store.manifests(), objects


def test_the_tracking_server_dying_mid_run_fails_it_clearly_and_loses_nothing(pg_instance, mlflow_server, lay,
                                                                             spawn_training, monkeypatch, tmp_path):
    # MLflow retries a refused connection for minutes by default, and each step once more for a couple of minutes
    # (MLOPS_STEP_RETRIES); here the server stays down and the run should fail within seconds.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLOPS_STEP_RETRIES", "1")
    monkeypatch.setenv("MLOPS_STEP_RETRY_DELAY_SECONDS", "0")
    defs = build_definitions(lay)
    runner = Runner(defs, pg_instance, lay.io / "cursors.json")
    _train_on_new_batches(runner, batches=2, seed=84, lay=lay)
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    write_batches(lay.landing, batches=1, rows=800, seed=85)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    before = _store_state(store, lay)

    client = MlflowClient(mlflow_server.url)
    experiment_id = client.get_experiment_by_name(tracking.experiment).experiment_id
    runs_before = len(client.search_runs([experiment_id]))
    proc = spawn_training(start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if len(client.search_runs([experiment_id])) > runs_before:  # the retraining's MLflow run has started
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the training run finished (or died) before the tracking server could be killed"
    mlflow_server.crash()  # SIGKILL: gone at once, as in a crash or a lost node
    assert proc.wait(timeout=180) != 0

    (failed,) = pg_instance.get_run_records(RunsFilter(tags={contracts.RUN_KIND: "training"},
                                                       statuses=[DagsterRunStatus.FAILURE]))
    errors = [e.dagster_event.step_failure_data.error.to_string()
              for e in pg_instance.all_logs(failed.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE)]
    assert errors and all(mlflow_server.url in error for error in errors), errors
    assert any("Connection refused" in error for error in errors), errors

    mlflow_server.start()
    assert tracking.version_by_alias(CHAMPION).version == "1"  # the champion never moved
    assert tracking.version_by_alias(PREVIOUS) is None and len(tracking.versions()) == 1
    records, manifests, objects = _store_state(store, lay)
    assert (records, objects) == (before[0], before[2])  # batches and their objects untouched
    assert manifests[:-1] == before[1]  # earlier versions untouched; the run had written the new one
    latest = manifests[-1]["id"]
    assert len(store.checkout(latest, tmp_path / "checkout")) == 3  # every object still matches its hash

    rerun = build_definitions(lay).resolve_job_def("training_job").execute_in_process(instance=pg_instance)
    assert rerun.success
    champion = tracking.version_by_alias(CHAMPION)
    assert champion.version == "2" and champion.tags[contracts.LINEAGE_DATASET] == latest
    assert tracking.version_by_alias(PREVIOUS).version == "1" and len(tracking.versions()) == 2


def test_the_docker_instance_and_helm_values_match_the_tested_instance(postgres, tmp_path, monkeypatch):
    tested = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    docker = yaml.safe_load((DEPLOY / "dagster-docker.yaml").read_text())
    shared = ("storage", "run_coordinator", "run_retries")
    assert {k: docker[k] for k in shared} == {k: tested[k] for k in shared}

    launcher = docker["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    forwarded = launcher["config"]["env_vars"]
    assert all("=" not in name for name in forwarded)  # names only: values come from the daemon's environment
    assert set(PG_VARS) <= set(forwarded)  # a run container can open the instance the storage block describes
    # Everything but the launcher (which needs dagster-docker, an image dependency) builds a working instance.
    with _database(postgres, "dagster") as db:
        _point_dagster_at(postgres, db, monkeypatch)
        checked = process_config(dagster_instance_config_schema(), docker)  # resolves the env: sources too
        assert checked.success, checked.errors
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({k: v for k, v in docker.items() if k != "run_launcher"}))
        with DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert instance.run_monitoring_enabled
            assert instance.get_run_records() == []

    helm = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"].endswith("/mlops-assets")
    assert deployment["codeServerArgs"] == ["-m", "mlops_assets.definitions"]
    queue = helm["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["tagConcurrencyLimits"] == tested["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert queue["maxConcurrentRuns"] == tested["run_coordinator"]["config"]["max_concurrent_runs"]
    retries = helm["dagsterDaemon"]["runRetries"]
    assert (retries["enabled"], retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        True, tested["run_retries"]["max_retries"], tested["run_retries"]["retry_on_asset_or_op_failure"])
    assert "postgresqlPassword" not in helm["postgresql"] and helm["generatePostgresqlPasswordSecret"] is False


def test_the_image_command_serves_the_code_location(lay, tmp_path):
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE).group(1))
    assert cmd[:3] == ["dagster", "code-server", "start"]
    port = free_port()
    cmd[cmd.index("-p") + 1] = str(port)
    cmd[cmd.index("-h") + 1] = "127.0.0.1"
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "DAGSTER_HOME": str(lay.dagster_home)}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([f"{venv_bin}/dagster", "api", "grpc-health-check", "-p", str(port)], env=env,
                             capture_output=True).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, "the code server did not come up"
            time.sleep(1)
        listed = deserialize_value(DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
        assert isinstance(listed, ListRepositoriesResponse), listed  # an error here: the location failed to load
        assert [s.attribute for s in listed.repository_symbols] == ["defs"]  # mlops_assets.definitions.defs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
