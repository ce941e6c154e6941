"""Data that never disappears: through real Dagster runs, sensors and the store.

A spec change keeps the batches accepted before (checked again, or left out with the rule they now fail); a
file that failed is tried again once the spec is corrected; ids are unique across a dataset version unless the
spec says ``id_policy: upsert``, and then the newer rows replace the older ones.
"""

import json

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from mlops_assets.asset_metadata import latest_metadata
from mlops_assets.core import membership
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.core.spec import CategoricalColumn, DatasetSpec, demo_spec, dump_spec
from mlops_assets.headless.sensor_runner import Runner


def use_spec(lay, monkeypatch: pytest.MonkeyPatch, spec: DatasetSpec) -> Definitions:
    """Point the platform at a spec file (rewritten in place later: the store reads it on every use)."""
    from mlops_assets.definitions import build_definitions

    path = lay.home / "spec.yaml"
    path.write_text(dump_spec(spec), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET", str(path))
    return build_definitions(lay)


def with_regions(spec: DatasetSpec, regions: list[str]) -> DatasetSpec:
    return spec.model_copy(update={"categorical": [
        CategoricalColumn(name="region", categories=regions) if c.name == "region" else c for c in spec.categorical]})


def land(lay, name: str, frame: pd.DataFrame) -> None:
    tmp = lay.landing / f".{name}.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(lay.landing / name)


def materialize_dataset(defs: Definitions, instance: DagsterInstance) -> dict:
    result = defs.resolve_job_def("training_job").execute_in_process(instance=instance, op_selection=["dataset"],
                                                                     raise_on_error=False)
    assert result.success
    return defs.resources["store"].load_manifest(result.output_for_node("dataset")["id"])


REGIONS = ["east", "north", "south", "west"]


def test_a_spec_change_keeps_accepted_batches_or_says_why_not(lay, instance, monkeypatch):
    defs = use_spec(lay, monkeypatch, with_regions(demo_spec(), REGIONS))
    runner = Runner(defs, instance, lay.io / "cursors.json")
    write_batches(lay.landing, batches=2, rows=300, seed=1)
    assert [r.success for r in runner.tick("new_data_sensor").runs] == [True, True]

    mars = make_batch(300, seed=5, start_id=900_000)
    mars.loc[:2, "region"] = "mars"
    land(lay, "batch_mars.csv", mars)
    assert [r.success for r in runner.tick("new_data_sensor").runs] == [False]  # quarantined

    # The user adds the category and lands the very same file again: it is tried again, and accepted.
    use_spec(lay, monkeypatch, with_regions(demo_spec(), [*REGIONS, "mars"]))
    land(lay, "batch_mars.csv", mars)
    (rerun,) = runner.tick("new_data_sensor").runs
    assert rerun.success and not rerun.deduplicated

    store = defs.resources["store"]
    manifest = materialize_dataset(defs, instance)
    assert len(manifest["batches"]) == 3 and manifest["rows"] == 900 and manifest["left_out"] == []
    assert len(list((lay.store / "checks").rglob("*.json"))) == 2  # the two older batches, checked once

    # Back to a spec without 'mars': the batch accepted under the wider spec is left out, with the rule.
    use_spec(lay, monkeypatch, with_regions(demo_spec(), REGIONS))
    manifest = materialize_dataset(defs, instance)
    assert len(manifest["batches"]) == 2 and manifest["rows"] == 600
    (left,) = manifest["left_out"]
    assert left["partition"] == "batch_mars" and left["rows"] == 300
    assert left["reason"].startswith("region: not one of the allowed categories") and "'mars'" in left["reason"]
    meta = latest_metadata(instance, "dataset")
    assert meta["left_out"] == 1 and meta["spec"] == "loans" and meta["schema_hash"] == manifest["schema_hash"]
    assert "batch_mars" in meta["left_out_batches"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a verdict cached for this batch and spec was computed again")

    monkeypatch.setattr(membership, "revalidate", must_not_run)
    assert store.current_dataset()["id"] == manifest["id"]


def test_ids_already_in_the_version_quarantine_the_batch(defs, instance, lay):
    runner = Runner(defs, instance, lay.io / "cursors.json")
    first = make_batch(300, seed=1)
    land(lay, "a.csv", first)
    land(lay, "b.csv", make_batch(300, seed=2, start_id=250))  # ids 250..299 are a's too
    land(lay, "c.csv", first)  # the same bytes under another name
    runs = runner.tick("new_data_sensor").runs
    assert [(r.partition, r.success) for r in runs] == [("a", True), ("b", False), ("c", False)]
    reports = {r["file"]: r for r in defs.resources["store"].quarantine_reports()}
    (ids,) = reports["b.csv"]["failures"]
    assert ids["column"] == "application_id" and ids["count"] == 50
    assert ids["rule"].endswith("already in partition(s) a of the dataset version, e.g. 250, 251, 252, 253, 254")
    assert "50 id(s) in column 'application_id' already in partition(s) a" in reports["b.csv"]["reason"]
    assert reports["c.csv"]["reason"].startswith("duplicate of partition a: the same content")
    manifest = materialize_dataset(defs, instance)
    assert [b["partition"] for b in manifest["batches"]] == ["a"] and manifest["left_out"] == []


def test_upsert_replaces_older_rows_and_the_version_reads_the_newer_ones(lay, instance, monkeypatch):
    defs = use_spec(lay, monkeypatch, demo_spec().model_copy(update={"id_policy": "upsert"}))
    runner = Runner(defs, instance, lay.io / "cursors.json")
    land(lay, "a.csv", make_batch(300, seed=1))
    assert runner.tick("new_data_sensor").runs[0].success
    newer = make_batch(300, seed=2, start_id=250)
    land(lay, "b.csv", newer)
    assert runner.tick("new_data_sensor").runs[0].success

    manifest = materialize_dataset(defs, instance)
    assert len(manifest["batches"]) == 2 and manifest["rows"] == 550
    assert manifest["superseded"] == [{"partition": "a", "sha256": manifest["batches"][0]["sha256"], "by": "b",
                                       "by_sha256": manifest["batches"][1]["sha256"], "rows": 50}]
    store = defs.resources["store"]
    rows = pd.concat(store.iter_dataset(manifest["id"], chunk_rows=64), ignore_index=True)
    assert len(rows) == 550 and rows["application_id"].is_unique
    replaced = rows.set_index("application_id").loc[250:299, "income"].sort_index()
    assert np.allclose(replaced.to_numpy(), newer.set_index("application_id").loc[250:299, "income"].to_numpy())
    saved = json.loads((lay.store / "datasets" / f"{manifest['id']}.json").read_text())
    assert saved["id_column"] == "application_id"
