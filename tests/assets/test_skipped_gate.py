"""A retrain with nothing new to train still has the blocking gate answer, with the reason (issue 15, item 9):
no "Blocking asset check ... emitted no result" from Dagster, nothing registered or deployed."""

import logging

from dagster import AssetKey

from mlops_assets.core.demo import write_batches
from mlops_assets.headless.sensor_runner import Runner

QUICK_TRAINING = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "cv_folds": 2}}}}


def test_a_skipped_retrain_emits_the_gate_result_with_the_reason(defs, instance, lay, caplog):
    write_batches(lay.landing, batches=1, rows=600, seed=3)
    assert all(r.success for r in Runner(defs, instance, lay.io / "cursors.json").tick("new_data_sensor").runs)
    job = defs.resolve_job_def("training_job")
    first = job.execute_in_process(instance=instance, run_config=QUICK_TRAINING)
    assert [e.passed for e in first.get_asset_check_evaluations()] == [True]
    assert "skipped" not in first.get_asset_check_evaluations()[0].metadata

    with caplog.at_level(logging.WARNING):
        again = job.execute_in_process(instance=instance, run_config=QUICK_TRAINING)
    assert again.success
    (gate,) = again.get_asset_check_evaluations()
    reason = gate.metadata["skipped"].value
    assert gate.check_name == "quality_gate" and gate.passed
    assert reason.startswith("champion v1 was trained on dataset ") and reason.endswith("nothing to retrain")
    assert gate.description == f"Not evaluated: {reason}"
    materialized = {e.asset_key for e in again.get_asset_materialization_events()}
    assert AssetKey("registered_model") not in materialized and AssetKey("model_evaluation") not in materialized
    assert [v.version for v in defs.resources["tracking"].versions()] == ["1"]
    assert "emitted no result" not in caplog.text
