"""The features and training stages stream a dataset version: chunked results equal whole-table results."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from dagster import AssetKey

from mlops_assets.core import training, validation, versions
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.core.features import FeatureProfile, build_features, describe, split
from mlops_assets.core.spec import demo_spec
from mlops_assets.core.validation import BatchRejected
from mlops_assets.headless.sensor_runner import Runner
from resources import DataStore


def chunked(frame: pd.DataFrame, size: int):
    """A reader over ``frame`` in chunks of ``size`` rows, as the store reads a feature table."""
    def read(columns):
        part = frame if columns is None else frame[columns]
        for start in range(0, len(part), size):
            yield part.iloc[start:start + size].reset_index(drop=True)
    return read


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_sample_drawn_chunk_by_chunk_equals_the_whole_table_sample(task):
    spec = demo_spec()
    if task == "regression":
        spec = spec.model_copy(update={"task": "regression", "classes": None})
    train = make_batch(12_000, seed=7)
    whole = training.fitting_rows(train, spec, 1500)
    sample, total = training.sample_rows(chunked(train, 1000), spec, 1500)
    assert total == 12_000
    pd.testing.assert_frame_equal(sample, whole)
    everything, total = training.sample_rows(chunked(train, 5000), spec, 0)
    assert total == 12_000
    pd.testing.assert_frame_equal(everything, train)


def test_a_table_known_to_fit_under_the_cap_is_read_in_one_pass():
    spec = demo_spec()
    train = make_batch(3000, seed=4)
    reads = []

    def read(columns):
        reads.append(columns)
        return chunked(train, 1000)(columns)

    sample, total = training.sample_rows(read, spec, 5000, total=3000)
    assert reads == [None] and total == 3000
    pd.testing.assert_frame_equal(sample, train)
    reads.clear()
    unknown, _ = training.sample_rows(read, spec, 5000)  # no row count: a pass over the keys comes first
    assert len(reads) == 2 and reads[0] is not None
    pd.testing.assert_frame_equal(unknown, sample)


def test_a_profile_gathered_chunk_by_chunk_equals_the_whole_table_summary():
    spec = demo_spec()
    frame = make_batch(5000, seed=3)
    frame.loc[frame.index % 7 == 0, "income"] = np.nan
    profile = FeatureProfile(spec)
    for start in range(0, len(frame), 600):
        profile.update(frame.iloc[start:start + 600])
    chunked_table, whole_table = profile.table(), describe(frame, spec)
    pd.testing.assert_frame_equal(chunked_table, whole_table)
    numeric = chunked_table.set_index("column").loc["income"]
    assert numeric["nulls"] == int(frame["income"].isna().sum())
    assert numeric["std"] == pytest.approx(round(frame["income"].std(), 4))
    assert profile.label_counts() == frame[spec.target].value_counts().to_dict()


def test_features_and_training_stream_in_chunks_through_dagster(defs, instance, lay):
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=3, rows=1000, seed=5)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    result = defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config={"ops": {
        "features": {"config": {"chunk_rows": 333}},
        "candidate_model": {"config": {"max_train_rows": 1000, "tuning_candidates": 0}}}})
    assert result.success
    store, spec = defs.resources["store"], defs.resources["store"].spec()
    dataset_id = result.output_for_node("dataset")["id"]

    whole = pd.concat(store.iter_dataset(dataset_id), ignore_index=True)  # the version in memory, as a reference
    parts = split(whole, spec)
    for name, part in (("train", parts.train), ("holdout", parts.holdout)):
        pd.testing.assert_frame_equal(store.sample_features(dataset_id, name, 0)[0], part, check_dtype=False)
    meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key == AssetKey("features"))
    assert meta["train_rows"].value == len(parts.train) and meta["holdout_rows"].value == len(parts.holdout)

    run = mlflow.MlflowClient(defs.resources["tracking"].tracking_uri).get_run(
        result.output_for_node("candidate_model")["run_id"])
    assert run.data.params["dataset.rows_train"] == str(len(parts.train))
    assert abs(int(run.data.params["dataset.rows_fit"]) - 1000) <= 2
    fitted = training.fitting_rows(parts.train, spec, 1000)
    assert int(run.data.params["dataset.rows_fit"]) == len(fitted)


def test_rules_over_the_whole_version_are_judged_after_the_last_chunk():
    spec = demo_spec()
    frame = make_batch(3000, seed=1)
    # Each chunk of 1000 rows alone stays under utilization's 20% share of nulls; the whole version does not.
    frame.loc[frame.index < 900, "utilization"] = np.nan
    written: list[str] = []
    with pytest.raises(BatchRejected) as caught:
        build_features(chunked(frame, 1000)(None), spec, lambda name, part: written.append(name))
    failure = caught.value.failures[0]
    assert (failure["column"], failure["check"]) == ("utilization", "share of nulls <= 0.2")
    assert failure["rule"].startswith("null share ") and "above the allowed 20% (" in failure["rule"]

    one_class = make_batch(2000, seed=2).assign(default=0)
    with pytest.raises(BatchRejected, match="single class"):
        build_features(chunked(one_class, 500)(None), spec, lambda name, part: None)


def test_models_are_scored_on_a_bounded_deterministic_holdout_sample(tmp_path):
    spec = demo_spec().model_copy(update={"max_holdout_rows": 150})
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json")), encoding="utf-8")
    store = DataStore(root=str(tmp_path / "store"), landing_dir=str(tmp_path / "landing"),
                      quarantine_dir=str(tmp_path / "quarantine"), spec_path=str(spec_path))
    frame = make_batch(4000, seed=9)
    with store.feature_tables("abc123", ("train", "holdout")) as write:
        profiles = build_features(chunked(frame, 700)(None), store.spec(), write)

    holdout = store.holdout("abc123")
    whole, rows = store.sample_features("abc123", "holdout", 0)
    assert rows == profiles["holdout"].rows == len(whole) > 150
    assert abs(len(holdout) - 150) <= 2
    assert set(holdout["application_id"]) <= set(whole["application_id"])
    assert abs(holdout["default"].mean() - whole["default"].mean()) < 0.02  # class shares kept
    pd.testing.assert_frame_equal(holdout, store.holdout("abc123"))  # the same rows every time


def test_a_corrupted_stored_batch_is_refused_before_any_row_is_used(tmp_path):
    store = DataStore(root=str(tmp_path / "store"), landing_dir=str(tmp_path / "landing"),
                      quarantine_dir=str(tmp_path / "quarantine"))
    spec = store.spec()
    path = tmp_path / "b1.csv"
    make_batch(500, seed=4).to_csv(path, index=False)
    digest = versions.schema_hash(validation.raw_schema(spec))
    record, _ = store.ingest("b1", path, source_sha256=versions.sha256_file(path), schema_hash=digest)
    manifest = store.save_dataset(versions.build_manifest([record], spec_name=spec.name, schema_digest=digest))
    assert len(pd.concat(store.iter_dataset(manifest["id"]))) == 500
    assert [p.name for p in store.checkout(manifest["id"], tmp_path / "good")] == ["b1.parquet"]

    obj = next((tmp_path / "store" / "objects").rglob(f"{record['sha256']}.parquet"))
    payload = bytearray(obj.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    obj.write_bytes(bytes(payload))
    with pytest.raises(OSError, match="corrupt"):
        next(store.iter_dataset(manifest["id"]))
    with pytest.raises(OSError, match="batch b1: .*corrupt"):
        store.checkout(manifest["id"], tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []
