"""Batch scoring through a real Dagster instance and a real MLflow store, on scikit-learn's wine data: a file
landed in the scoring zone is picked up by the sensor, scored by the champion (bad rows reported, not scored),
and its rows enter the prediction log with slot ``batch``; a pinned version re-scores a range of partitions in
one run, as `dagster asset materialize --partition-range` does."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetKey
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from sklearn import datasets

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.predictions import read_predictions, utc_now
from mlops_assets.headless.sensor_runner import Runner

FAST_TRAINING = {"ops": {"candidate_model": {"config": {"estimator": "logistic_regression", "cv_folds": 2,
                                                        "tuning_candidates": 0}}}}


def wine_frame() -> pd.DataFrame:
    frame = datasets.load_wine(as_frame=True).frame.rename(columns={"od280/od315_of_diluted_wines": "od280",
                                                                     "target": "label"})
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.insert(1, "event_ts", pd.date_range("2026-03-01", periods=len(frame), freq="2h").strftime("%Y-%m-%dT%H:%M"))
    return frame


@pytest.fixture
def platform(lay, monkeypatch, tmp_path, instance):
    """Wine as the data set, ingested and trained: champion v1 (a multiclass LogisticRegression pipeline)."""
    frame = wine_frame()
    features = [c for c in frame.columns if c not in ("row_id", "event_ts", "label")]
    spec = {"name": "wine", "task": "classification", "target": "label", "id_column": "row_id",
            "timestamp_column": "event_ts", "numeric": [{"name": c, "min": 0} for c in features],
            "classes": [0, 1, 2]}
    (tmp_path / "wine.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET", str(tmp_path / "wine.yaml"))
    frame.to_csv(lay.landing / "wine_0.csv", index=False)
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(lay)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    requests, job, _ = runner.evaluate("new_dataset_sensor")
    assert runner.execute("new_dataset_sensor", requests[0].with_replaced_attrs(run_config=FAST_TRAINING),
                          job).success
    assert defs.resources["tracking"].version_by_alias(CHAMPION).version == "1"
    return defs, runner, frame


def test_landed_files_are_scored_reported_logged_and_rescored_with_a_pinned_version(platform, lay, instance):
    """One trained platform for both halves: training is what costs time here."""
    defs, runner, frame = platform
    inputs = frame.drop(columns="label").astype(object)
    inputs.loc[3, "alcohol"] = "n/a"  # file line 5: not a number
    inputs.loc[10, "event_ts"] = ""  # file line 12: no event time
    inputs.to_csv(lay.scoring_incoming / "night-01.csv", index=False)

    runs = runner.tick("scoring_sensor").runs
    assert [(r.partition, r.success) for r in runs] == [("night-01", True)]
    assert runner.tick("scoring_sensor").runs == []  # scored once
    event = instance.get_latest_materialization_event(AssetKey("batch_predictions")).asset_materialization
    assert event.partition == "night-01"
    meta = {k: v.value for k, v in event.metadata.items()}
    assert (meta["model_version"], meta["scored"], meta["rejected"]) == ("1", 176, 2)
    assert "not scored" in meta["rejected_rows_policy"]

    out = pd.read_parquet(lay.scoring_output / "night-01.parquet")
    model = __import__("mlflow").sklearn.load_model(f"models:/{defs.resources['tracking'].model_name}/1")
    good = frame.drop(index=[3, 10])
    assert out["row_id"].tolist() == good["row_id"].tolist()
    assert out["prediction"].tolist() == model.predict(good[model.feature_names_in_]).tolist()
    np.testing.assert_allclose(out[["proba_0", "proba_1", "proba_2"]].sum(axis=1), 1.0)
    assert str(out["event_ts"].iloc[0]) == "2026-03-01 00:00:00"
    report = json.loads((lay.scoring_reports / "night-01.report.json").read_text())
    lines = {f["column"]: f["samples"][0]["line"] for f in report["failures"]}
    assert lines == {"alcohol": 5, "event_ts": 12}

    logged = read_predictions(lay.home, utc_now().date())
    batch = logged[logged["slot"] == "batch"]
    assert len(batch) == 176 and set(batch["model_version"]) == {"1"}
    assert batch["request_id"].str.startswith("night-01:").all()
    np.testing.assert_allclose(batch[["proba_0", "proba_1", "proba_2"]].to_numpy(),
                               out[["proba_0", "proba_1", "proba_2"]].to_numpy())
    assert batch["prediction"].tolist() == out["prediction"].tolist()
    _rescore_a_range(defs, runner, frame, lay, instance)


def _rescore_a_range(defs, runner, frame, lay, instance):
    for i in range(3):
        frame.iloc[i * 50:(i + 1) * 50].drop(columns="label").to_csv(lay.scoring_incoming / f"day-{i}.csv",
                                                                     index=False)
    assert all(r.success for r in runner.tick("scoring_sensor").runs)
    job = defs.resolve_job_def("scoring_job")

    def rescore(version: str):
        return job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"batch_predictions": {"config": {"model_version": version}}}},
            tags={ASSET_PARTITION_RANGE_START_TAG: "day-0", ASSET_PARTITION_RANGE_END_TAG: "day-2"})

    wrong = rescore("7")
    assert not wrong.success
    failure = next(e for e in wrong.all_events if e.is_step_failure).step_failure_data.error.message
    assert "has no version 7; it has 1" in failure

    assert rescore("1").success
    event = instance.get_latest_materialization_event(AssetKey("batch_predictions")).asset_materialization
    assert event.metadata["batches"].value == 3 and event.metadata["pinned"].value is True
    logged = read_predictions(lay.home, utc_now().date())
    assert (logged["slot"] == "batch").sum() == 176 + 2 * 150  # night-01, the sensor's runs, the backfill's
