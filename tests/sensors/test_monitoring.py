"""Monitoring and continuous training through real Dagster runs: drift and decay launch exactly one retraining.

The prediction log is written here with the gateway's own writer (the gateway itself is exercised in
tests/serving/test_gateway.py and tests/cli/test_demo.py), from the real champion's predictions.
"""

import json
from datetime import UTC, datetime

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterRunStatus, RunsFilter

from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from tests.support.prediction_log import serve


@pytest.fixture
def manual_retraining(monkeypatch):
    """Only monitoring may launch training in these tests."""
    monkeypatch.setenv("MLOPS_RETRAIN_ON_NEW_DATA", "false")
    monkeypatch.setenv("MLOPS_DRIFT_EVERY_ROWS", "200")
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")


def training_runs(instance) -> list:
    return instance.get_runs(filters=RunsFilter(job_name="training_job", statuses=[DagsterRunStatus.SUCCESS]))


def bootstrap(defs, instance, lay) -> Runner:
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=3, rows=1500, seed=11)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    assert runner.tick("new_dataset_sensor").runs == []  # switched off by the policy
    assert defs.resolve_job_def("training_job").execute_in_process(instance=instance).success
    return runner


def drifted_labelled_world(defs, instance, lay, seed: int, start_id: int):
    """Champion v1, then drifted labelled batches ingested and 600 drifted requests served with their labels."""
    runner = bootstrap(defs, instance, lay)
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    v1 = tracking.version_by_alias(CHAMPION)
    write_batches(lay.landing, batches=2, rows=1500, drift=0.7, seed=seed)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    serve(lay, tracking, store.spec(), make_batch(600, seed=seed + 1, drift=0.7, start_id=start_id), with_labels=True)
    return runner, v1


def test_drift_launches_exactly_one_retraining_whose_model_serves(manual_retraining, defs, instance, lay):
    runner = bootstrap(defs, instance, lay)
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    spec = store.spec()
    v1 = tracking.version_by_alias(CHAMPION)

    serve(lay, tracking, spec, make_batch(300, seed=12, start_id=7_000_000), with_labels=False)
    tick = runner.tick("drift_sensor")
    assert [(r.job, r.success) for r in tick.runs] == [("monitoring_job", True)]
    assert runner.tick("drift_sensor").runs == []  # no drift on traffic like the training data

    # The world drifts: labelled drifted batches land (ingested, not trained on) and traffic shifts.
    write_batches(lay.landing, batches=2, rows=1500, drift=0.7, seed=13)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    serve(lay, tracking, spec, make_batch(400, seed=14, drift=0.7, start_id=8_000_000), with_labels=False)
    tick = runner.tick("drift_sensor")
    assert [(r.job, r.success) for r in tick.runs] == [("monitoring_job", True)]
    report = json.loads((lay.io / "drift_report" / f"{datetime.now(UTC).date()}.json").read_text())
    assert report["dataset_drift"] and report["champion_version"] == v1.version
    assert report["prediction_drift"]["status"] in {"drift", "no_drift"}
    assert report["target_drift"]["status"] == "insufficient_data"  # no labels delivered in this test
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(AssetKey("drift_report"), "no_dataset_drift")])
    assert check[AssetCheckKey(AssetKey("drift_report"), "no_dataset_drift")].evaluation.passed is False

    tick = runner.tick("drift_sensor")
    assert [(r.job, r.success, r.tags[contracts.TRIGGER]) for r in tick.runs] == [("training_job", True, "drift")]
    v2 = tracking.version_by_alias(CHAMPION)
    assert int(v2.version) == int(v1.version) + 1
    manifest = store.load_manifest(v2.tags[contracts.LINEAGE_DATASET])
    assert sum("_drift" in b["partition"] for b in manifest["batches"]) == 2
    assert v2.tags[contracts.LINEAGE_TRIGGER] == "drift"

    # The same drift episode never launches a second retraining.
    for _ in range(3):
        assert all(r.job != "training_job" for r in runner.tick("drift_sensor").runs)
    assert len(training_runs(instance)) == 2  # the bootstrap and the one drift retraining
    alerts = [a["kind"] for a in defs.resources["alerts"].history()]
    assert "drift" in alerts


def test_decay_in_delivered_labels_triggers_the_performance_sensor(manual_retraining, defs, instance, lay,
                                                                   monkeypatch):
    runner, v1 = drifted_labelled_world(defs, instance, lay, seed=15, start_id=9_000_000)
    tracking = defs.resources["tracking"]
    assert runner.tick("performance_sensor").runs == []  # no evaluation yet: no evidence
    tick = runner.tick("drift_sensor")
    assert ("monitoring_job", True) in [(r.job, r.success) for r in tick.runs]
    live = json.loads((lay.io / "live_performance" / f"{datetime.now(UTC).date()}.json").read_text())
    assert live["labeled_rows"] == 600 and live["decayed"], live
    assert live["ci_high"] < live["baseline"]
    report = json.loads((lay.io / "drift_report" / f"{datetime.now(UTC).date()}.json").read_text())
    # With labels delivered, the label distribution is tested too (tested, whatever its verdict).
    assert report["target_drift"]["current_size"] == 600 and report["target_drift"]["statistic"] is not None
    key = AssetCheckKey(AssetKey("live_performance"), "no_performance_decay")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert check.evaluation.passed is False and check.evaluation.severity.value == "ERROR"

    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_SECONDS", "3600")  # the bootstrap trained seconds ago
    cooling = Runner(build_definitions(lay), instance, lay.io / "cooling-cursors.json").tick("performance_sensor")
    assert cooling.runs == [] and "cooldown" in cooling.skip_message

    tick = runner.tick("performance_sensor")
    assert [(r.job, r.success, r.tags[contracts.TRIGGER]) for r in tick.runs] == [("training_job", True, "decay")]
    assert int(tracking.version_by_alias(CHAMPION).version) == int(v1.version) + 1
    assert runner.tick("performance_sensor").runs == []
    assert "performance_decay" in [a["kind"] for a in defs.resources["alerts"].history()]


def test_drift_and_decay_firing_together_start_one_retraining(manual_retraining, defs, instance, lay):
    """Both sensors see evidence in the same daemon tick and both request a retraining; the run queue runs them
    one after the other (one training run at a time), and the second finds the champion already trained on the
    same data, config and code: one new model, not two."""
    runner, v1 = drifted_labelled_world(defs, instance, lay, seed=17, start_id=9_500_000)
    tracking = defs.resources["tracking"]
    assert ("monitoring_job", True) in [(r.job, r.success) for r in runner.tick("drift_sensor").runs]

    drift_requests, drift_job, _ = runner.evaluate("drift_sensor")
    decay_requests, decay_job, _ = runner.evaluate("performance_sensor")
    requested = [r for r in drift_requests if r.job_name == "training_job"] + decay_requests
    assert [r.tags[contracts.TRIGGER] for r in requested] == ["drift", "decay"]

    first = runner.execute("drift_sensor", requested[0], drift_job)
    second = runner.execute("performance_sensor", requested[1], decay_job)
    assert first.success and second.success
    assert int(tracking.version_by_alias(CHAMPION).version) == int(v1.version) + 1
    assert len(tracking.versions()) == 2  # the second run trained nothing
    messages = [r.event_log_entry.user_message or "" for r in instance.get_records_for_run(second.run_id).records]
    assert any("downstream stages are skipped" in m for m in messages)
    latest = instance.fetch_materializations(AssetKey("candidate_model"), limit=10).records  # newest first
    trained = [e.run_id for e in latest if "skipped" not in e.asset_materialization.metadata]
    assert trained[0] == first.run_id  # the second run's candidate is the champion, marked skipped
    assert latest[0].run_id == second.run_id and "skipped" in latest[0].asset_materialization.metadata
