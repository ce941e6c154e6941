"""No stage unpickles: a pickled version registered by hand under the platform's name, aliased champion, stops
the quality gate loudly with the reason (the step's error, an alert) and nothing new is registered or released;
the monitoring of that champion fails with the reason too; its code never runs."""

import mlflow
from dagster import materialize

from mlops_assets.core.contracts import CHAMPION, LINEAGE_DATASET
from mlops_assets.core.demo import write_batches
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.monitoring import drift_report
from tests.support.tiny_models import Trap, log_model

ONE_FIT = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "cv_folds": 0}}}}


def test_a_pickled_champion_fails_the_gate_and_monitoring_with_the_reason_and_never_runs(defs, instance, lay, tmp_path):
    write_batches(lay.landing, batches=1, rows=600, seed=5)
    assert all(r.success for r in Runner(defs, instance, lay.io / "cursors.json").tick("new_data_sensor").runs)
    tracking, alerts = defs.resources["tracking"], defs.resources["alerts"]
    marker = tmp_path / "the-pickle-ran"
    mlflow.set_experiment(experiment_id=tracking.activate())
    _, version = log_model(Trap(marker), tracking.model_name, serialization_format="pickle")
    tracking.promote(version)

    result = defs.resolve_job_def("training_job").execute_in_process(
        instance=instance, run_config=ONE_FIT, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "model_evaluation"
    message = failure.step_failure_data.error.message
    assert f"quality gate not evaluated, nothing registered: the champion v{version} cannot be loaded" in message
    assert f"models:/{tracking.model_name}/{version}: the model is saved as 'pickle'" in message
    assert "serialization_format='skops'" in message
    assert not marker.exists(), "a stage ran the pickle's code"
    assert [v.version for v in tracking.versions()] == [version]
    assert tracking.version_by_alias(CHAMPION).version == version
    (alert,) = alerts.history()
    assert alert["kind"] == "gate_failed" and "saved as 'pickle'" in alert["message"]

    # Monitoring the same champion (tagged with the dataset it would have been trained on) fails with the reason.
    dataset_id = result.output_for_node("features")["dataset_id"]
    tracking.client().set_model_version_tag(tracking.model_name, version, LINEAGE_DATASET, dataset_id)
    resources = {k: defs.resources[k] for k in ("store", "tracking", "prediction_log", "alerts", "records")}
    drift = materialize(
        [drift_report], instance=instance, resources=resources, partition_key="2026-03-01", raise_on_error=False
    )
    (failure,) = [e for e in drift.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "drift_report for 2026-03-01 not computed: the champion cannot be loaded" in message
    assert "saved as 'pickle'" in message
    assert not marker.exists(), "a stage ran the pickle's code"
