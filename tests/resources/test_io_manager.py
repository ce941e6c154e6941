"""Two training runs finishing at once, in two real processes against one registry: one consistent champion."""

import subprocess

from mlops_assets.core.contracts import CHAMPION, PREVIOUS
from mlops_assets.core.demo import write_batches
from mlops_assets.headless.sensor_runner import Runner


def test_two_concurrent_trainings_leave_one_consistent_champion(defs, instance, lay, spawn_training):
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=1200, seed=21)
    runner.tick("new_data_sensor")
    assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    tracking = defs.resources["tracking"]
    assert tracking.version_by_alias(CHAMPION).version == "1"

    procs = [spawn_training({"ops": {"candidate_model": {"config": {"seed": seed}},
                                     "model_evaluation": {"config": {"max_regression": 0.05}}}},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for seed in (101, 202)]
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]

    versions = tracking.versions()
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert len({v.run_id for v in versions}) == 3, [(v.version, v.run_id, v.source, v.tags) for v in versions]
    champion, previous = tracking.version_by_alias(CHAMPION), tracking.version_by_alias(PREVIOUS)
    assert champion.version in {"2", "3"}
    assert previous is not None and previous.version != champion.version
    client = tracking.client()
    holders = [v.version for v in versions
               if CHAMPION in client.get_model_version(tracking.model_name, v.version).aliases]
    assert holders == [champion.version]


def test_a_run_reads_its_own_upstream_record_while_another_run_writes_the_same_asset(tmp_path):
    """Two training runs at once each hand their own candidate down the chain (the race behind one model being
    registered twice); an asset materialized by an earlier run is read as its latest record."""
    from dagster import AssetKey, build_input_context, build_output_context

    from resources import JsonRecordIOManager

    io = JsonRecordIOManager(base_dir=str(tmp_path))
    key = AssetKey("candidate_model")
    io.handle_output(build_output_context(asset_key=key, run_id="run-a"), {"run_id": "mlflow-a"})
    io.handle_output(build_output_context(asset_key=key, run_id="run-b"), {"run_id": "mlflow-b"})

    def load(run_id: str) -> dict:
        return io.load_input(build_input_context(asset_key=key, upstream_output=build_output_context(
            asset_key=key, run_id=run_id)))

    assert load("run-a") == {"run_id": "mlflow-a"}
    assert load("run-b") == {"run_id": "mlflow-b"}
    assert load("a-later-run") == {"run_id": "mlflow-b"}  # not produced in that run: the latest value
    assert not list(tmp_path.rglob("*.tmp"))
