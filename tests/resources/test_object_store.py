"""The data store and the prediction log on an object-store URL (fsspec's in-memory filesystem stands in for
s3://): ingestion, dataset versions, checkout, training and monitoring run unchanged on it."""

import json
import uuid
from datetime import UTC, datetime

import fsspec
import pytest

from mlops_assets import settings
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.core.predictions import PREDICTIONS, JsonlLog, read_predictions
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from tests.support.prediction_log import serve


@pytest.fixture
def bucket(monkeypatch, lay):
    """A fresh in-memory 'bucket' for the store and the prediction log; nothing of either on local disk."""
    name = f"memory://bucket-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLOPS_STORE_URL", f"{name}/store")
    monkeypatch.setenv("MLOPS_PREDICTION_LOG_URL", f"{name}/logs")
    monkeypatch.setenv("MLOPS_RETRAIN_ON_NEW_DATA", "false")
    yield name
    fsspec.filesystem("memory").rm(name.removeprefix("memory://"), recursive=True)


def test_the_lifecycle_runs_on_an_object_store(bucket, lay, instance, tmp_path):
    defs = build_definitions(lay)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=1200, seed=61)
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    assert defs.resolve_job_def("training_job").execute_in_process(instance=instance).success
    tracking, store = defs.resources["tracking"], defs.resources["store"]
    assert tracking.version_by_alias(CHAMPION) is not None

    fs = fsspec.filesystem("memory")
    objects = fs.glob(f"{bucket.removeprefix('memory://')}/store/objects/*/*.parquet")
    assert len(objects) == 2
    assert not any(lay.store.rglob("*.parquet"))  # nothing went to the local default
    (manifest,) = store.manifests()
    written = store.checkout(manifest["id"], tmp_path / "checkout")
    assert sorted(p.read_bytes() for p in written) == sorted(fs.cat_file(o) for o in objects)

    serve(lay, tracking, store.spec(), make_batch(400, seed=62, drift=0.8, start_id=5_000_000), with_labels=True)
    day = datetime.now(UTC).date()
    assert len(read_predictions(settings.prediction_log_url(lay), day)) == 400
    assert not (lay.home / PREDICTIONS).exists() or not any((lay.home / PREDICTIONS).rglob("*.jsonl"))
    result = defs.resolve_job_def("monitoring_job").execute_in_process(instance=instance,
                                                                        partition_key=day.isoformat())
    assert result.success
    live = json.loads((lay.io / "live_performance" / f"{day}.json").read_text())
    assert live["labeled_rows"] == 400
    report = json.loads((lay.io / "drift_report" / f"{day}.json").read_text())
    assert report["dataset_drift"]


def test_the_log_writes_immutable_segments_on_an_object_store(bucket):
    root = f"{bucket}/logs"
    log = JsonlLog(root, PREDICTIONS, flush_every=0.05)
    for i in range(3):
        log.write({"request_id": f"r{i}", "model_version": "1", "columns": ["x"], "data": [[i]], "outputs": [i]})
        log.flush()
    log.close()
    day = datetime.now(UTC).date()
    segments = fsspec.filesystem("memory").glob(f"{root.removeprefix('memory://')}/{PREDICTIONS}/date={day}/*.jsonl")
    assert len(segments) == 3  # one per flush, never appended to
    assert read_predictions(root, day)["request_id"].tolist() == ["r0", "r1", "r2"]


def test_a_failed_log_write_is_retried_and_loses_nothing(tmp_path):
    blocker = tmp_path / PREDICTIONS
    blocker.write_text("not a directory")  # every write fails, as on a full or broken disk
    log = JsonlLog(tmp_path, PREDICTIONS, flush_every=0.05)
    log.write({"request_id": "kept", "model_version": "1", "columns": ["x"], "data": [[1]], "outputs": [0]})
    log.flush()
    blocker.unlink()
    log.close()
    assert read_predictions(tmp_path, datetime.now(UTC).date())["request_id"].tolist() == ["kept"]
