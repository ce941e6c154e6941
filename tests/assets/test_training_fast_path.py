"""A retrain without its orchestration tax (issue 14): cross-validation can be turned off when nothing is tuned,
the tracked datasets carry MLflow's own schema without its row-by-row scan, the evaluation step of an in-process
run takes the candidate the training step logged instead of loading it back, and launched runs start their steps
from a forkserver that imported the platform once."""

import json
import multiprocessing.forkserver
import warnings

import mlflow
import numpy as np
from dagster import execute_job, reconstructable
from mlflow.types.utils import _infer_schema
from sklearn.datasets import load_wine

from mlops_assets.core.demo import write_batches
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.training import _tracked_dataset, fitted_in_process

ONE_FIT = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "cv_folds": 0}}}}


def _ingest(defs, instance, lay) -> None:
    write_batches(lay.landing, batches=1, rows=600, seed=5)
    assert all(r.success for r in Runner(defs, instance, lay.io / "cursors.json").tick("new_data_sensor").runs)


def test_cv_off_fits_once_and_evaluation_takes_the_logged_candidate_in_process(defs, instance, lay):
    _ingest(defs, instance, lay)
    job = defs.resolve_job_def("training_job")
    result = job.execute_in_process(instance=instance, run_config=ONE_FIT)
    assert result.success
    candidate = result.output_for_node("candidate_model")
    evaluation = result.output_for_node("model_evaluation")
    run = mlflow.MlflowClient(defs.resources["tracking"].tracking_uri).get_run(candidate["run_id"])
    assert run.data.params["cv.folds"] == "0" and "cross-validation off" in run.data.params["cv.note"]
    assert not [k for k in run.data.metrics if k.startswith("cv_")]
    assert np.isnan(candidate["cv_score"]) and run.data.metrics["holdout_roc_auc"] == candidate["metrics"]["roc_auc"]

    # The handed-over pipeline is the logged one: the same predictions as the artifact loaded back from MLflow.
    handed, metrics = fitted_in_process(candidate["model_uri"])
    assert evaluation["candidate_metrics"] == metrics == candidate["metrics"]
    holdout = defs.resources["store"].holdout(candidate["dataset_id"])
    x = holdout.drop(columns=["default"])
    loaded = mlflow.sklearn.load_model(candidate["model_uri"])
    np.testing.assert_array_equal(handed.predict_proba(x), loaded.predict_proba(x))
    assert [v.item() for v in loaded.predict(x.head(50))] == evaluation["smoke_predictions"]
    assert defs.resources["tracking"].version_by_alias("champion").run_id == candidate["run_id"]

    # The tracked holdout's schema is the one MLflow itself infers from the rows.
    (logged,) = [d.dataset for d in run.inputs.dataset_inputs if d.dataset.name.endswith("-holdout")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert json.loads(logged.schema)["mlflow_colspec"] == _infer_schema(holdout).to_dict()

    tuning_without_cv = {"ops": {"candidate_model": {"config": {"tuning_candidates": 3, "cv_folds": 0}}}}
    refused = job.execute_in_process(instance=instance, run_config=tuning_without_cv, raise_on_error=False)
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "cv_folds: 0 turns cross-validation off" in failure.step_failure_data.error.message
    assert "tuning_candidates: 0" in failure.step_failure_data.error.message


def test_the_tracked_dataset_schema_is_mlflows_own():
    wine = load_wine(as_frame=True).frame
    frame = wine.assign(label=wine["target"].map({0: "a", 1: "b", 2: "c"}), note=None)
    frame.loc[3, "label"] = None
    frame.loc[5, "alcohol"] = np.nan
    for table in (frame, frame.head(0), frame.drop(columns="note").dropna()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = _tracked_dataset(table, "wine", "target", "abc").schema
            assert ours == _infer_schema(table), table.columns


def _training_job():
    from mlops_assets.definitions import build_definitions

    return build_definitions().resolve_job_def("training_job")


def test_a_launched_training_run_starts_its_steps_from_the_forkserver(defs, instance, lay):
    _ingest(defs, instance, lay)
    with execute_job(reconstructable(_training_job), instance=instance, run_config=ONE_FIT) as result:
        assert result.success
        steps = {e.step_key for e in result.all_events if e.is_step_start}
        assert steps >= {"candidate_model", "model_evaluation", "registered_model", "deployment"}
        engine = " ".join(e.message for e in result.all_events if e.event_type_value == "ENGINE_EVENT")
    assert "Executing steps using multiprocess executor" in engine
    assert defs.resources["tracking"].version_by_alias("champion") is not None
    # The steps were forked from the server this run started, which imported the platform first.
    assert "mlops_assets.definitions" in multiprocessing.forkserver._forkserver._preload_modules
