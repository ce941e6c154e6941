"""Shared fixtures: every test gets its own platform home, MLflow store and Dagster instance."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, instance_for_test

from mlops_assets import settings


@pytest.fixture
def lay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> settings.Layout:
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "0")
    monkeypatch.setenv("MLOPS_GATEWAY_URL", "http://127.0.0.1:9")  # nothing listens: deployment skips the wait
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLOPS_STORE_URL", "MLOPS_DATASET",
                "MLOPS_ARTIFACT_ROOT", "MLOPS_ALERT_WEBHOOK", "MLOPS_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return settings.layout()


@pytest.fixture
def defs(lay: settings.Layout) -> Definitions:
    from mlops_assets.definitions import build_definitions

    return build_definitions(lay)


@pytest.fixture
def instance(lay: settings.Layout) -> Iterator[DagsterInstance]:
    with instance_for_test(temp_dir=str(lay.dagster_home)) as inst:
        yield inst
