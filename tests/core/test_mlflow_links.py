"""Every MLflow link in Dagster is built in one place and opens the UI that holds the run (issue 15, item 1)."""

import pytest

from mlops_assets import settings
from mlops_assets.core.mlflow_links import MlflowLinks, ui_base_url
from resources.tracking import MlflowTracking


def test_a_local_store_links_to_the_local_ui_and_mlops_up_starts_one(lay, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    assert settings.tracking_uri(lay).startswith("sqlite:///")
    assert settings.mlflow_ui_url(lay) == "http://127.0.0.1:5000"
    assert settings.local_mlflow_ui(lay)
    # `mlops up --mlflow-port 5123` hands its children the UI it started.
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5123/")
    assert settings.mlflow_ui_url(lay) == "http://127.0.0.1:5123"


def test_a_tracking_server_is_its_own_ui_and_no_local_one_is_started(lay, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://bot:s3cret@mlflow.example.com:8443/team/")
    assert not settings.local_mlflow_ui(lay)
    assert settings.mlflow_ui_url(lay) == "https://mlflow.example.com:8443/team"  # no credentials in links
    assert ui_base_url("http://mlflow.internal") == "http://mlflow.internal"


def test_runs_model_versions_and_experiments_use_the_uis_routes():
    links = MlflowLinks("https://mlflow.example.com/team/")
    assert links.experiment("3") == "https://mlflow.example.com/team/#/experiments/3"
    assert links.run("3", "ab12") == "https://mlflow.example.com/team/#/experiments/3/runs/ab12"
    assert links.model_version("loan model/v2", 7) == \
        "https://mlflow.example.com/team/#/models/loan%20model%2Fv2/versions/7"


def test_the_tracking_resource_builds_its_links_from_the_configured_ui(lay):
    from mlops_assets.definitions import build_resources

    tracking: MlflowTracking = build_resources(lay)["tracking"]
    assert tracking.ui_url == settings.mlflow_ui_url(lay)
    assert tracking.run_url("1", "r") == f"{settings.mlflow_ui_url(lay)}/#/experiments/1/runs/r"
    assert tracking.model_version_url(4) == f"{settings.mlflow_ui_url(lay)}/#/models/{tracking.model_name}/versions/4"

