"""The asset graph through real Dagster runs, a real MLflow SQLite store and real files.

Sensors are evaluated against the instance and their run requests executed in-process by the same
Runner that `mlops demo` and `mlops ingest` use.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
from dagster import AssetCheckKey, AssetKey, DagsterInstance, Definitions

from mlops_assets import settings
from mlops_assets.core import contracts
from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.headless.sensor_runner import Runner


def runner_for(defs: Definitions, instance: DagsterInstance, lay) -> Runner:
    return Runner(defs, instance, lay.io / "cursors.json")


def ingest_and_train(runner: Runner) -> list:
    ingest = runner.tick("new_data_sensor").runs
    train = runner.tick("new_dataset_sensor").runs
    return ingest + train


def test_definitions_cover_the_lifecycle(defs: Definitions):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_batches", "dataset", "features", "candidate_model", "model_evaluation",
                    "registered_model", "deployment", "canary_release", "approved_release", "drift_report",
                    "live_performance",
                    "prediction_log_retention", "estimated_performance",
                    "batch_predictions"}
    groups = {graph.get(AssetKey(k)).group_name for k in keys}
    assert groups == {"data", "features", "training", "evaluation", "registry", "deployment", "monitoring"}
    for name in ("new_data_sensor", "new_dataset_sensor", "drift_sensor", "performance_sensor", "canary_sensor",
                 "scoring_sensor", "approval_sensor"):
        assert defs.get_repository_def().get_sensor_def(name)
    assert defs.resolve_job_def("rollback_job") and defs.resolve_job_def("approved_release_job")


def test_ingestion_is_idempotent_and_versioned(defs, instance, lay):
    runner = runner_for(defs, instance, lay)
    files = write_batches(lay.landing, batches=2, rows=500, seed=1)
    runs = runner.tick("new_data_sensor").runs
    assert [r.success for r in runs] == [True, True]
    store = defs.resources["store"]
    records = store.batch_records()
    assert {r["partition"] for r in records} == {f.stem for f in files}
    objects = list((lay.store / "objects").rglob("*.parquet"))
    assert len(objects) == 2

    assert runner.tick("new_data_sensor").runs == []  # nothing new
    os.utime(files[0])  # touched, same bytes: the run key dedups it
    rerun = runner.tick("new_data_sensor").runs
    assert len(rerun) == 1 and rerun[0].deduplicated

    corrected = make_batch(500, seed=99, start_id=10_000)
    tmp = lay.landing / ".tmp.csv"
    corrected.to_csv(tmp, index=False)
    tmp.replace(files[0])
    fixed = runner.tick("new_data_sensor").runs
    assert len(fixed) == 1 and fixed[0].success and not fixed[0].deduplicated
    before = {r["partition"]: r["sha256"] for r in records}
    assert store.batch_record(files[0].stem)["sha256"] != before[files[0].stem]
    assert store.batch_record(files[1].stem)["sha256"] == before[files[1].stem]


def test_full_chain_registers_and_deploys_with_lineage(defs, instance, lay):
    runner = runner_for(defs, instance, lay)
    write_batches(lay.landing, batches=3, rows=1000, seed=2)
    runs = ingest_and_train(runner)
    assert all(r.success for r in runs) and len(runs) == 4
    tracking = defs.resources["tracking"]
    champion = tracking.version_by_alias(CHAMPION)
    assert champion is not None and champion.version == "1"
    dataset_id = champion.tags[contracts.LINEAGE_DATASET]
    manifest = defs.resources["store"].load_manifest(dataset_id)
    assert len(manifest["batches"]) == 3
    assert champion.tags[contracts.LINEAGE_RUN_ID] == runs[-1].run_id
    assert float(champion.tags["metric.roc_auc"]) > 0.7

    run = tracking.client().get_run(champion.run_id)
    assert run.data.params["config.estimator"] == "hist_gradient_boosting"
    assert run.data.params["pipeline.model__learning_rate"] == "0.1"
    assert "holdout_roc_auc" in run.data.metrics and "eval_roc_auc" in run.data.metrics
    assert run.data.tags[contracts.LINEAGE_DATASET] == dataset_id
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [dataset_id, dataset_id]
    artifacts = {a.path for a in tracking.client().list_artifacts(champion.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/roc_curve.png", "plots/feature_importance.png"} <= artifacts

    # The MLflow links in the Dagster UI open this run and this version at the configured MLflow UI.
    def link(asset: str, key: str) -> str:
        return instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization.metadata[key].value

    ui = settings.mlflow_ui_url(lay)
    run_url = f"{ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert link("candidate_model", "mlflow_run") == run_url
    version_url = f"{ui}/#/models/{tracking.model_name}/versions/1"
    assert link("registered_model", "mlflow_model_version") == version_url
    assert link("deployment", "mlflow_model_version") == version_url

    model = mlflow.pyfunc.load_model(f"models:/{tracking.model_name}@champion")
    sample = make_batch(20, seed=5)[defs.resources["store"].spec().feature_names]
    assert set(model.predict(sample)) <= {0, 1}

    # Same data, same config, same code: the new-data sensor asks for nothing and a forced rerun skips.
    assert runner.tick("new_dataset_sensor").runs == []
    again = defs.resolve_job_def("training_job").execute_in_process(instance=instance)
    assert again.success
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert len(tracking.versions()) == 1

    # New data: version 2 becomes champion, version 1 stays as previous; rollback is one step.
    write_batches(lay.landing, batches=1, rows=1000, seed=3)
    assert all(r.success for r in ingest_and_train(runner))
    assert tracking.version_by_alias(CHAMPION).version == "2"
    assert tracking.version_by_alias(PREVIOUS).version == "1"
    assert defs.resolve_job_def("rollback_job").execute_in_process(instance=instance).success
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert tracking.version_by_alias(PREVIOUS).version == "2"


def _land(lay, name: str, content: bytes) -> Path:
    path = lay.landing / name
    path.write_bytes(content)
    return path


def test_bad_batches_are_quarantined_and_the_champion_stays(defs, instance, lay, tmp_path):
    runner = runner_for(defs, instance, lay)
    write_batches(lay.landing, batches=2, rows=800, seed=4)
    assert all(r.success for r in ingest_and_train(runner))
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    champion = tracking.version_by_alias(CHAMPION).version
    versions_before = [m["id"] for m in store.manifests()]

    good = make_batch(200, seed=50, start_id=900_000)
    _land(lay, "missing_column.csv", good.drop(columns="income").to_csv(index=False).encode())
    _land(lay, "wrong_type.csv", good.assign(age="old").to_csv(index=False).encode())
    _land(lay, "empty.csv", b"")
    _land(lay, "header_only.csv", (",".join(good.columns) + "\n").encode())
    _land(lay, "garbage.parquet", os.urandom(2048))
    _land(lay, "bad_label.csv", good.assign(default=3).to_csv(index=False).encode())
    outside = tmp_path / "secret.csv"
    good.to_csv(outside, index=False)
    (lay.landing / "link.csv").symlink_to(outside)

    runs = runner.tick("new_data_sensor").runs
    assert runs and not any(r.success for r in runs)
    reports = {r["file"]: r for r in store.quarantine_reports()}
    assert set(reports) == {"missing_column.csv", "wrong_type.csv", "empty.csv", "header_only.csv",
                            "garbage.parquet", "bad_label.csv", "link.csv"}
    assert reports["missing_column.csv"]["failures"][0]["column"] == "income"
    assert "symbolic link" in reports["link.csv"]["reason"]
    assert outside.exists()  # the link's target is never touched
    assert reports["empty.csv"]["reason"] == "file is empty"
    assert not [p for p in lay.landing.iterdir() if not p.name.startswith("batch_")]

    # Nothing downstream moved: no new dataset version, no training, same champion.
    assert runner.tick("new_dataset_sensor").runs == []
    assert [m["id"] for m in store.manifests()] == versions_before
    assert tracking.version_by_alias(CHAMPION).version == champion

    # The failed check carries the failure cases for the UI.
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [next(iter(defs.resolve_asset_graph().asset_check_keys))])
    assert check is not None

    # A corrected file of the same name is accepted on the next tick.
    _land(lay, "bad_label.csv", good.to_csv(index=False).encode())
    fixed = runner.tick("new_data_sensor").runs
    assert len(fixed) == 1 and fixed[0].success


def test_gate_blocks_a_model_trained_on_corrupted_labels(defs, instance, lay):
    runner = runner_for(defs, instance, lay)
    for i in range(2):
        frame = make_batch(1000, seed=60 + i, start_id=i * 1000)
        frame["default"] = frame["default"].sample(frac=1, random_state=i).to_numpy()  # labels scrambled
        frame.to_csv(lay.landing / f"batch_scrambled_{i}.csv", index=False)
    runs = ingest_and_train(runner)
    assert [r.success for r in runs] == [True, True, False]
    tracking = defs.resources["tracking"]
    assert tracking.versions() == []
    assert tracking.version_by_alias(CHAMPION) is None
    record = json.loads((lay.io / "model_evaluation" / "__all__.json").read_text())
    assert record["gate"]["passed"] is False and "roc_auc" in record["gate"]["reasons"][0]
    assert [a["kind"] for a in defs.resources["alerts"].history()] == ["gate_failed"]


def test_gate_blocks_a_challenger_worse_than_the_champion(defs, instance, lay):
    runner = runner_for(defs, instance, lay)
    write_batches(lay.landing, batches=2, rows=1000, seed=7)
    assert all(r.success for r in ingest_and_train(runner))
    tracking = defs.resources["tracking"]
    # A deliberately weak model that clears the absolute threshold but not the champion.
    weak = {"ops": {"candidate_model": {"config": {"estimator": "random_forest",
                                                     "params": {"max_depth": 1, "n_estimators": 3},
                                                     "tuning_candidates": 0, "target_value": 0.0}},
                    "model_evaluation": {"config": {"thresholds": {"roc_auc": 0.5}}}}}
    result = defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config=weak,
                                                                      raise_on_error=False)
    assert not result.success
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert len(tracking.versions()) == 1
    record = json.loads((lay.io / "model_evaluation" / "__all__.json").read_text())
    assert [r.split(":")[0] for r in record["gate"]["reasons"]] == ["no regression vs champion"]


def test_dagster_cli_validates_the_workspace(lay):
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DAGSTER_HOME": str(lay.dagster_home)}
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stderr + out.stdout


def test_a_candidate_below_target_is_tuned_with_nested_runs(defs, instance, lay):
    runner = runner_for(defs, instance, lay)
    write_batches(lay.landing, batches=2, rows=1000, seed=8)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    config = {"ops": {"candidate_model": {"config": {"estimator": "logistic_regression", "target_value": 0.99,
                                                      "tuning_candidates": 3,
                                                      "search_space": {"C": [0.05, 0.5, 5.0]}}}}}
    result = defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config=config)
    assert result.success
    record = json.loads((lay.io / "candidate_model" / "__all__.json").read_text())
    assert record["tuned"] is True and record["params"]["C"] in (0.05, 0.5, 5.0)
    tracking = defs.resources["tracking"]
    trials = tracking.client().search_runs([record["experiment_id"]],
                                           filter_string=f"tags.`mlflow.parentRunId` = '{record['run_id']}'")
    assert len(trials) >= 3
    assert all("cv_score" in t.data.metrics and t.data.params["C"] in ("0.05", "0.5", "5.0") for t in trials)
    parent = tracking.client().get_run(record["run_id"])
    assert parent.data.tags["mlops.tuned"] == "true"
    assert tracking.version_by_alias(CHAMPION) is not None


def test_a_regression_data_set_runs_the_same_lifecycle(lay, monkeypatch, tmp_path):
    """A user's own regression task: spec inferred from a sample, then ingest, train, gate, register, serve."""
    from dagster import instance_for_test

    from mlops_assets.core.spec import dump_spec, infer_spec
    from mlops_assets.definitions import build_definitions

    def batch(seed: int):
        frame = make_batch(800, seed=seed, start_id=seed * 800).drop(columns="default")
        noise = np.random.default_rng(seed).normal(0, 0.1, len(frame))
        return frame.assign(loss=2 * frame["debt_ratio"] + 3 * frame["utilization"].fillna(0.3) + noise)

    spec = infer_spec(batch(40), name="losses", target="loss", id_column="application_id")
    assert spec.task == "regression"
    spec_path = tmp_path / "losses.yaml"
    spec_path.write_text(dump_spec(spec))
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    defs = build_definitions(lay)
    for seed in (41, 42):
        batch(seed).to_csv(lay.landing / f"losses_{seed}.csv", index=False)
    with instance_for_test(temp_dir=str(lay.dagster_home)) as instance:
        runs = ingest_and_train(runner_for(defs, instance, lay))
    assert all(r.success for r in runs) and len(runs) == 3
    champion = defs.resources["tracking"].version_by_alias(CHAMPION)
    assert champion is not None and float(champion.tags["metric.r2"]) > 0.8
    run = defs.resources["tracking"].client().get_run(champion.run_id)
    assert {"holdout_rmse", "holdout_mae", "holdout_r2"} <= set(run.data.metrics)
    artifacts = {a.path for a in defs.resources["tracking"].client().list_artifacts(champion.run_id, "plots")}
    assert "plots/residuals.png" in artifacts


def test_cli_backfill_of_a_partition_range_runs_in_one_run(lay):
    """The README's backfill: `dg launch --partition-range` over the daily monitoring assets, without the
    deprecation notices of the commands Dagster 1.13 superseded."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DAGSTER_HOME": str(lay.dagster_home)}
    dg = Path(sys.executable).parent / "dg"
    out = subprocess.run([str(dg), "launch", "-m", "mlops_assets.definitions", "--assets",
                          "drift_report,live_performance", "--partition-range", "2026-11-01...2026-11-03"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "superseded" not in out.stderr.lower() and "deprecat" not in out.stderr.lower(), out.stderr[-3000:]
    for asset in ("drift_report", "live_performance"):
        days = sorted(p.stem for p in (lay.io / asset).glob("*.json"))
        assert days == ["2026-11-01", "2026-11-02", "2026-11-03"]
    record = json.loads((lay.io / "drift_report" / "2026-11-02.json").read_text())
    assert record["status"] == "insufficient_data" and record["detail"] == "no champion serving yet"


def test_files_still_being_written_wait_for_a_later_tick(lay, instance, monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "30")
    defs = build_definitions(lay)
    runner = runner_for(defs, instance, lay)
    growing = lay.landing / "batch_growing.csv"
    make_batch(200, seed=9).to_csv(growing, index=False)  # modified just now: maybe still being written
    (lay.landing / "batch_upload.csv.part").write_text("half a file")
    (lay.landing / ".batch_hidden.csv").write_text("editor swap file")
    assert runner.tick("new_data_sensor").runs == []
    old = time.time() - 60
    os.utime(growing, (old, old))
    runs = runner.tick("new_data_sensor").runs
    assert [(r.partition, r.success) for r in runs] == [("batch_growing", True)]
    assert (lay.landing / "batch_upload.csv.part").exists() and not list(lay.quarantine.iterdir())


def test_a_quarantine_report_reads_the_same_in_the_ui_the_json_and_the_terminal(defs, instance, lay):
    """Issue 12 item 7 through a real run: the `schema` check's metadata and the report JSON use the same words
    (rule, file line, raw text, hint) as `mlops ingest`."""
    frame = make_batch(300, seed=51)
    frame["income"] = frame["income"].map(lambda v: f"{v:,.0f}")
    _land(lay, "thousands.csv", frame.to_csv(index=False).encode())
    runs = runner_for(defs, instance, lay).tick("new_data_sensor").runs
    assert len(runs) == 1 and not runs[0].success
    report = defs.resources["store"].quarantine_reports()[0]
    (income,) = report["failures"]
    assert income["rule"] == "not a number" and income["count"] == 300
    assert income["samples"][0] == {"line": 2, "value": frame.at[0, "income"]}
    assert "thousands: ','" in income["hint"]

    key = AssetCheckKey(AssetKey("raw_batches"), "schema")
    execution = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    metadata = execution.event.dagster_event.event_specific_data.metadata
    table = metadata["failures"].value
    assert "not a number" in table and f"line 2 '{frame.at[0, 'income']}'" in table and "thousands" in table
