"""Faults: a training run killed with SIGKILL mid-way (training, after registering, while deploying) leaves
registry, aliases, data and the gateway consistent; a rerun converges. A batch whose store write fails leaves
no partial object or version visible."""

import os
import signal
import subprocess
import time

import pytest

from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from mlops_assets.serving.config import GatewayConfig
from mlops_assets.serving.server import GatewayThread


def _consistent(tracking) -> None:
    champion, previous = tracking.version_by_alias(CHAMPION), tracking.version_by_alias(PREVIOUS)
    versions = tracking.versions()
    assert len({v.run_id for v in versions}) == len(versions)  # no run registered twice
    if champion and previous:
        assert champion.version != previous.version


@pytest.mark.parametrize("kill_when", ["training", "registered", "deploying"])
def test_a_killed_training_run_leaves_things_consistent_and_a_rerun_converges(defs, instance, lay, kill_when,
                                                                              spawn_training, monkeypatch, request):
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=1500, seed=51)
    runner.tick("new_data_sensor")
    assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    tracking = defs.resources["tracking"]
    write_batches(lay.landing, batches=1, rows=1500, seed=52)
    runner.tick("new_data_sensor")
    gateway = None
    if kill_when == "deploying":  # a live gateway that follows slowly keeps the run waiting after the alias move
        monkeypatch.setenv("MLOPS_GATEWAY_POLL_SECONDS", "3")
        gateway = GatewayThread(GatewayConfig.from_env(port=0)).start()
        request.addfinalizer(gateway.stop)
        assert gateway.wait_for_version("1", timeout=30)
        monkeypatch.setenv("MLOPS_GATEWAY_URL", gateway.url)

    proc = spawn_training(start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    io_dir = lay.io / ("candidate_model" if kill_when == "training" else "registered_model")
    before = io_dir.joinpath("__all__.json").stat().st_mtime if io_dir.joinpath("__all__.json").exists() else 0
    while time.monotonic() < deadline and proc.poll() is None:
        if kill_when == "training" and any(lay.store.joinpath("features").glob("*/holdout.parquet")) and \
                len(list(lay.store.joinpath("features").iterdir())) == 2:
            break
        if kill_when == "registered" and len(tracking.versions()) == 2:
            break
        if kill_when == "deploying" and tracking.version_by_alias(CHAMPION).version == "2":
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert io_dir.joinpath("__all__.json").stat().st_mtime >= before

    _consistent(tracking)
    if kill_when == "deploying":  # the alias move is atomic and done: the gateway follows the registry
        assert tracking.version_by_alias(PREVIOUS).version == "1"
        assert gateway.wait_for_version("2", timeout=30)
    else:
        assert tracking.version_by_alias(CHAMPION).version == "1"  # the old champion still serves

    rerun = build_definitions(lay).resolve_job_def("training_job").execute_in_process(instance=instance)
    assert rerun.success
    _consistent(tracking)
    assert tracking.version_by_alias(CHAMPION).version == "2"
    assert tracking.version_by_alias(PREVIOUS).version == "1"
    assert len(tracking.versions()) == 2  # the killed run's registration was reused, not duplicated
    if gateway:
        assert gateway.wait_for_version("2", timeout=30)


def test_a_failed_store_write_leaves_no_partial_batch(defs, lay, tmp_path):
    store = defs.resources["store"]
    path = tmp_path / "b1.csv"
    make_batch(200, seed=53).to_csv(path, index=False)
    blocker = lay.store / "objects"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a directory")  # every object write now fails, as on a full or broken disk
    with pytest.raises(OSError):
        store.ingest("b1", path, source_sha256="0" * 64, schema_hash="h")
    assert store.batch_record("b1") is None
    assert store.batch_records() == [] and store.manifests() == []
    blocker.unlink()
    record, _ = store.ingest("b1", path, source_sha256="0" * 64, schema_hash="h")
    assert store.batch_record("b1") == record
    assert not [p for p in lay.store.rglob("*.tmp")]
