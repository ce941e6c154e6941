"""Performance estimated before labels arrive, through a real Dagster instance and MLflow store on scikit-learn's
breast-cancer data: a day of ordinary traffic is estimated close to its (later) realized accuracy, a day shifted
toward the champion's hard cases is flagged ``estimated_decay`` while no label exists, the performance sensor asks
for a retraining tagged ``estimated``, and the labels, once delivered, confirm it."""

import argparse
import json
from datetime import date

import mlflow
import numpy as np
import pytest
import yaml
from dagster import AssetCheckKey, AssetKey, materialize

from mlops_assets.cli.monitor import cmd_monitor_show
from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog
from mlops_assets.estimation import estimated_performance
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.monitoring import live_performance
from tests.assets.test_real_datasets import _frame, _spec

ORDINARY, SHIFTED = date(2026, 3, 1), date(2026, 3, 2)
TRAINING = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "params": {"max_iter": 50}}}}}


@pytest.fixture
def platform(lay, monkeypatch, tmp_path):
    """Breast cancer landed in two batches and trained once: champion v1 with its holdout metrics."""
    frame, target, classes = _frame("breast_cancer")
    frame.insert(0, "row_id", np.arange(len(frame)))
    spec_path = tmp_path / "breast_cancer.yaml"
    spec_path.write_text(yaml.safe_dump(_spec("breast_cancer", frame, target, classes), sort_keys=False))
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")
    lay.landing.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(frame.sample(frac=1, random_state=0), 2)):
        part.to_csv(lay.landing / f"bc_{i}.csv", index=False)
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(lay)
    return defs, frame, target


def _log_day(lay, tracking, spec, rows, day: date, *, labels: bool) -> None:
    """Play the gateway for one day: the champion's predictions (and, when asked, the labels) in its format."""
    from mlops_assets import settings

    champion = tracking.version_by_alias(CHAMPION)
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{champion.version}")
    root = settings.prediction_log_url(lay)
    log = JsonlLog(root, FEEDBACK if labels else PREDICTIONS)
    for start in range(0, len(rows), 50):
        part = rows.iloc[start : start + 50]
        x, rid, ts = part[spec.feature_names], f"{day}-{start}", f"{day}T12:00:{start % 60:02d}+00:00"
        if labels:
            log.write({"request_id": rid, "labels": part[spec.target].tolist(), "ts": ts})
        else:
            log.write(
                {
                    "request_id": rid,
                    "model_name": tracking.model_name,
                    "model_version": champion.version,
                    "slot": "champion",
                    "columns": list(x.columns),
                    "data": x.to_numpy().tolist(),
                    "outputs": model.predict(x).tolist(),
                    "latency_ms": 1.0,
                    "ts": ts,
                }
            )
    log.close()


def test_a_shifted_day_is_flagged_before_any_label_and_labels_confirm_it(platform, instance, lay, capsys):
    defs, frame, target = platform
    runner = Runner(defs, instance, lay.io / "cursors.json")
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    assert defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config=TRAINING).success
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    spec, v1 = store.spec(), tracking.version_by_alias(CHAMPION)
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{v1.version}")

    # Ordinary traffic: the whole data set. The shifted day: only the champion's least certain rows (a covariate
    # shift: which patients come, not what their tumours are), drawn 500 times.
    confidence = model.predict_proba(frame[spec.feature_names]).max(axis=1)
    hard = frame[confidence < np.quantile(confidence, 0.08)]
    shifted = hard.sample(500, replace=True, random_state=1)
    _log_day(lay, tracking, spec, frame, ORDINARY, labels=False)
    _log_day(lay, tracking, spec, shifted, SHIFTED, labels=False)

    resources = {k: defs.resources[k] for k in ("store", "tracking", "prediction_log", "alerts", "records")}
    for day in (ORDINARY, SHIFTED):
        assert materialize(
            [estimated_performance], instance=instance, resources=resources, partition_key=day.isoformat()
        ).success
    ordinary = json.loads((lay.io / "estimated_performance" / f"{ORDINARY}.json").read_text())
    record = json.loads((lay.io / "estimated_performance" / f"{SHIFTED}.json").read_text())

    realized_ordinary = float(np.mean(model.predict(frame[spec.feature_names]) == frame[target]))
    assert ordinary["method"] == "cbpe" and not ordinary["estimated_decay"], ordinary
    assert abs(ordinary["day_estimate"]["estimated"]["accuracy"]["value"] - realized_ordinary) < 0.05

    day = record["day_estimate"]
    assert record["estimated_decay"] and day["estimated_decay"], record
    assert day["labeled_rows"] == 0 and day["realized"] is None  # flagged with no label at all
    assert day["estimated"]["accuracy"]["band_high"] < record["baseline"] - record["tolerance"]
    assert record["chunk"]["rows"] == len(frame) + len(shifted)  # the rolling chunk reaches back a day
    assert "entirely below" in day["why"]

    key = AssetCheckKey(AssetKey("estimated_performance"), "no_estimated_decay")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert check.evaluation.passed is False
    metadata = instance.get_latest_materialization_event(AssetKey("estimated_performance")).asset_materialization
    assert metadata.metadata["estimated_vs_realized"].value.startswith("![estimated vs realized](data:image/png")
    run_id = metadata.metadata["mlflow_run_id"].value  # the monitoring run's own MLflow run, not the model's
    assert run_id != v1.run_id
    logged = {a.path for a in tracking.client().list_artifacts(run_id, "estimated_performance")}
    assert f"estimated_performance/{SHIFTED}.png" in logged and f"estimated_performance/{SHIFTED}.json" in logged
    assert not tracking.client().list_artifacts(v1.run_id, "estimated_performance")
    assert tracking.client().list_artifacts(v1.run_id, f"estimation/v{v1.version}")  # calibration cached

    # The performance sensor acts on the estimate: one retraining request tagged `estimated`.
    requests, _, _ = runner.evaluate("performance_sensor")
    assert [r.tags[contracts.TRIGGER] for r in requests] == ["estimated"]
    assert requests[0].run_key == f"decay:v{v1.version}"

    # Labels land later; the realized accuracy confirms the estimate.
    _log_day(lay, tracking, spec, shifted, SHIFTED, labels=True)
    assert materialize(
        [live_performance], instance=instance, resources=resources, partition_key=SHIFTED.isoformat()
    ).success
    requests, _, _ = runner.evaluate("performance_sensor")
    assert [r.tags[contracts.TRIGGER] for r in requests] == ["decay"]  # same episode key: one retraining
    assert "estimate_confirmed" in [a["kind"] for a in defs.resources["alerts"].history()]

    assert materialize(
        [estimated_performance], instance=instance, resources=resources, partition_key=SHIFTED.isoformat()
    ).success
    capsys.readouterr()
    assert cmd_monitor_show(argparse.Namespace(day=SHIFTED.isoformat(), json=True)) == 0
    shown = json.loads(capsys.readouterr().out)["estimated"]
    assert shown["estimated_decay"] and shown["day_estimate"]["label_coverage"] == 1.0
    estimated, realized = (
        shown["day_estimate"]["estimated"]["accuracy"]["value"],
        shown["day_estimate"]["realized"]["accuracy"],
    )
    assert abs(estimated - realized) < 0.15  # 500 draws of a few dozen hard rows: a rough check only
