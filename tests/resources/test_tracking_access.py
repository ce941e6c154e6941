"""Registry access control with MLflow's basic-auth app: a real `mlflow server --app-name basic-auth` on loopback.

The platform takes its credentials only from the environment (MLFLOW_TRACKING_USERNAME / _PASSWORD, read by
MLflow itself). A read-only consumer can read the champion but cannot move it; the platform's user can.
"""

import os
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import write_batches
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from tests.support.servers import MlflowServer

ADMIN_PASSWORD = "admin-test-only-9f3"  # a loopback-only throwaway credential for this test server
PLATFORM_PASSWORD = "platform-test-only-4c1"
READER_PASSWORD = "reader-test-only-7a2"


@pytest.fixture
def auth_server(tmp_path: Path):
    ini = tmp_path / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                   f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex()}
    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts",
                          app_name="basic-auth", env=env).start()
    yield server.url
    server.stop()


def _as(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_a_reader_cannot_move_the_champion_but_the_platform_can(auth_server, lay, instance, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server)
    _as(monkeypatch, "admin", ADMIN_PASSWORD)
    admin = get_app_client("basic-auth", tracking_uri=auth_server)
    admin.create_user("platform", PLATFORM_PASSWORD)
    admin.create_user("reader", READER_PASSWORD)

    # The platform's service account runs the real lifecycle against the server; as creator it may MANAGE.
    _as(monkeypatch, "platform", PLATFORM_PASSWORD)
    defs = build_definitions(lay)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    for seed in (71, 72):
        write_batches(lay.landing, batches=1, rows=800, seed=seed)
        runner.tick("new_data_sensor")
        assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    tracking = defs.resources["tracking"]
    assert tracking.version_by_alias(CHAMPION).version == "2"

    _as(monkeypatch, "admin", ADMIN_PASSWORD)
    admin.grant_user_permission("reader", "registered_model", tracking.model_name, "READ")

    _as(monkeypatch, "reader", READER_PASSWORD)
    reader = MlflowClient(tracking_uri=auth_server)
    assert str(reader.get_model_version_by_alias(tracking.model_name, CHAMPION).version) == "2"
    with pytest.raises(MlflowException) as denied:
        reader.set_registered_model_alias(tracking.model_name, CHAMPION, "1")
    assert "PERMISSION_DENIED" in str(denied.value) or "403" in str(denied.value)
    with pytest.raises(MlflowException):
        tracking.rollback()

    _as(monkeypatch, "platform", PLATFORM_PASSWORD)
    assert tracking.version_by_alias(CHAMPION).version == "2"  # the reader moved nothing
    assert tracking.rollback() == ("2", "1")
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert tracking.version_by_alias(PREVIOUS).version == "2"

    _as(monkeypatch, "platform", "wrong-password")
    resp = httpx.get(f"{auth_server}/api/2.0/mlflow/registered-models/get", params={"name": tracking.model_name},
                     auth=("platform", "wrong-password"))
    assert resp.status_code == 401
