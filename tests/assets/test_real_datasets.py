"""The whole lifecycle on data nobody on the project wrote: scikit-learn's bundled wine, iris, diabetes and
breast-cancer sets (files inside the package, no download), each landed in three CSV batches under its own
spec, ingested by the sensor, trained with tuning, gated, registered, deployed and served through the gateway."""

import math
import re
from dataclasses import dataclass

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, Definitions
from sklearn import datasets

from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.serving.client import _records
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread

BATCHES = 3
# The default estimator with fewer boosting rounds, and an unreachable target (below) so the tuning loop runs on
# every data set, with a budget and a search space small enough to keep the four runs to a few minutes.
TRAINING = {"tuning_candidates": 3, "cv_folds": 3, "params": {"max_iter": 50},
            "search_space": {"max_iter": [20, 50], "learning_rate": [0.1, 0.3]}}


def _frame(name: str) -> tuple[pd.DataFrame, str, list | None]:
    """The data set as a user would land it: an id column, feature names usable as column names, the label."""
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: re.sub(r"[^0-9a-zA-Z]+", "_", c).strip("_"))
    if name == "diabetes":
        return frame.rename(columns={"target": "progression"}), "progression", None
    if name == "iris":  # string labels
        frame["target"] = np.asarray(bunch.target_names)[frame["target"]]
        return frame.rename(columns={"target": "species"}), "species", [str(c) for c in bunch.target_names]
    return frame.rename(columns={"target": "label"}), "label", sorted(int(c) for c in frame["target"].unique())


def _spec(name: str, frame: pd.DataFrame, target: str, classes: list | None) -> dict:
    features = [c for c in frame.columns if c not in ("row_id", target)]
    spec = {"name": name, "task": "classification" if classes else "regression", "target": target,
            "id_column": "row_id", "numeric": [{"name": c} for c in features], "holdout_fraction": 0.25}
    return {**spec, "classes": classes} if classes else spec


@dataclass(frozen=True)
class Landed:
    name: str
    frame: pd.DataFrame
    classes: list | None


@pytest.fixture(params=["wine", "iris", "diabetes", "breast_cancer"])
def dataset(request, lay, monkeypatch, tmp_path) -> Landed:
    """The data set's spec as ``MLOPS_DATASET`` and its rows in the landing zone, in ``BATCHES`` CSV files."""
    name = request.param
    frame, target, classes = _frame(name)
    frame.insert(0, "row_id", np.arange(len(frame)))
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(name, frame, target, classes), sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    lay.landing.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(frame.sample(frac=1, random_state=0), BATCHES)):
        part.to_csv(lay.landing / f"{name}_{i}.csv", index=False)
    return Landed(name, frame, classes)


@pytest.fixture
def defs(dataset: Landed, lay) -> Definitions:
    """The platform built after the data set's spec is in place (the conftest's ``defs`` would use the demo)."""
    from mlops_assets.definitions import build_definitions

    return build_definitions(lay)


def test_lifecycle_on_scikit_learn_data(dataset: Landed, defs: Definitions, instance: DagsterInstance, lay):
    classes = dataset.classes
    runner = Runner(defs, instance, lay.io / "cursors.json")
    ingested = runner.tick("new_data_sensor").runs
    assert len(ingested) == BATCHES and all(r.success for r in ingested)
    requests, job, _ = runner.evaluate("new_dataset_sensor")
    assert len(requests) == 1
    target_value = 1.01 if classes else 1.0  # beyond reach: tuning always runs
    config = {"ops": {"candidate_model": {"config": {**TRAINING, "target_value": target_value}}}}
    assert runner.execute("new_dataset_sensor", requests[0].with_replaced_attrs(run_config=config), job).success
    evaluation = instance.get_latest_materialization_event(AssetKey("model_evaluation")).asset_materialization
    assert evaluation.metadata["gate"].value == "PASSED"

    store, tracking = defs.resources["store"], defs.resources["tracking"]
    champion = tracking.version_by_alias(CHAMPION)
    assert champion is not None and champion.version == "1"
    manifest = store.load_manifest(champion.tags[contracts.LINEAGE_DATASET])
    assert len(manifest["batches"]) == BATCHES
    run = tracking.client().get_run(champion.run_id)
    assert run.data.tags[contracts.TUNED_TAG] == "true"
    assert int(run.data.params["dataset.rows_train"]) + int(run.data.params["dataset.rows_holdout"]) == len(
        dataset.frame)
    _assert_metrics(run.data.metrics, champion.tags, classes, evaluation.metadata)

    spec = store.spec()
    row = store.holdout(manifest["id"]).head(1)[spec.feature_names]
    expected = mlflow.sklearn.load_model(f"models:/{tracking.model_name}@{CHAMPION}").predict(row).tolist()
    gateway = GatewayThread(GatewayConfig.from_env(port=0)).start()
    try:
        assert gateway.wait_for_version("1", timeout=60), httpx.get(f"{gateway.url}/health").json()
        answer = httpx.post(f"{gateway.url}/invocations", timeout=30,
                            json={"dataframe_split": {"columns": spec.feature_names, "data": _records(row)}})
    finally:
        gateway.stop()
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
    predicted = answer.json()["predictions"]
    if classes:
        assert predicted == expected and predicted[0] in classes
    else:
        assert math.isfinite(predicted[0]) and predicted == pytest.approx(expected, rel=1e-9)


def _assert_metrics(logged: dict, tags: dict, classes: list | None, evaluation: dict) -> None:
    """The metric names each task logs to MLflow and tags on the registry version."""
    if not classes:
        assert {"holdout_rmse", "holdout_mae", "holdout_r2", "cv_rmse"} <= set(logged)
        assert float(tags["metric.r2"]) >= 0
        return
    assert "cv_roc_auc" in logged and logged["holdout_roc_auc"] > 0.8 and float(tags["metric.roc_auc"]) > 0.8
    assert "confusion_matrix.png" in evaluation["plots"].value
    if len(classes) == 2:
        assert {"holdout_accuracy", "holdout_f1", "holdout_log_loss"} <= set(logged)
        assert "holdout_f1_macro" not in logged
        return
    assert {"holdout_accuracy", "holdout_f1_macro", "holdout_f1_weighted", "holdout_log_loss"} <= set(logged)
    assert {f"holdout_{c}_{m}" for c in classes for m in ("precision", "recall", "f1")} <= set(logged)
    per_class = evaluation["per_class"].value
    assert all(f"| {c} |" in per_class for c in classes)
