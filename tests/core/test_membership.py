"""Which stored batches form a dataset version: pure decisions over batch records, verdicts and id arrays."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core import membership, versions
from mlops_assets.core.demo import make_batch
from mlops_assets.core.ingestion import ingest_file
from mlops_assets.core.spec import CategoricalColumn, demo_spec


def batch(partition: str, sha: str, rows: int, second: int) -> dict:
    return {"partition": partition, "sha256": sha * 64, "rows": rows,
            "accepted_at": f"2026-01-01T00:00:{second:02d}+00:00"}


IDS = {"a": np.arange(0, 10), "b": np.arange(10, 20), "c": np.arange(15, 25), "d": np.arange(5, 8)}


def ids_of(b: dict) -> np.ndarray:
    return IDS[b["partition"]].astype(np.int64)


def test_a_batch_failing_the_current_spec_is_left_out_with_its_reason():
    plan = membership.plan_version([batch("a", "1", 10, 1), batch("b", "2", 10, 2)],
                                   {"b": "column 'region' failed isin(...) in 3 row(s)"}, None)
    assert [b["partition"] for b in plan.joined] == ["a"]
    assert plan.left_out == [{"partition": "b", "sha256": "2" * 64, "rows": 10,
                              "reason": "column 'region' failed isin(...) in 3 row(s)"}]


def test_the_same_content_twice_joins_once_and_names_the_first_partition():
    plan = membership.plan_version([batch("late", "1", 10, 5), batch("early", "1", 10, 1)], {}, None)
    assert [b["partition"] for b in plan.joined] == ["early"]
    assert plan.left_out[0]["partition"] == "late"
    assert plan.left_out[0]["reason"].startswith("duplicate of partition early")


def test_ids_already_in_the_version_leave_the_newer_batch_out_with_count_and_sample():
    plan = membership.plan_version([batch("a", "1", 10, 1), batch("b", "2", 10, 2), batch("c", "3", 10, 3)],
                                   {}, ids_of, id_column="id")
    assert [b["partition"] for b in plan.joined] == ["a", "b"]
    (out,) = plan.left_out
    assert out["partition"] == "c"
    assert out["reason"].startswith("5 id(s) in column 'id' already in partition(s) b of the dataset version, "
                                    "e.g. 15, 16, 17, 18, 19")
    found = membership.conflict("9" * 64, np.arange(8, 12), plan.joined, plan.index, id_column="id",
                                id_policy="reject")
    (failure,) = found.failures
    assert failure["column"] == "id" and failure["check"] == membership.CROSS_BATCH_CHECK and failure["count"] == 4
    assert failure["rule"] == "4 id(s) already in partition(s) a, b of the dataset version, e.g. 8, 9, 10, 11"
    assert "id_policy: upsert" in failure["hint"]
    assert "partition(s) a, b" in found.reason


def test_upsert_lets_newer_rows_replace_older_ones_and_records_which():
    batches = [batch("a", "1", 10, 1), batch("b", "2", 10, 2), batch("c", "3", 10, 3), batch("d", "4", 3, 4)]
    plan = membership.plan_version(batches, {}, ids_of, id_column="id", id_policy="upsert")
    assert [b["partition"] for b in plan.joined] == ["a", "b", "c", "d"] and not plan.left_out
    taken = {(s["partition"], s["by"]): s["rows"] for s in plan.superseded}
    assert taken == {("b", "c"): 5, ("a", "d"): 3}
    assert np.array_equal(plan.index.ids, np.arange(0, 25))
    manifest = versions.build_manifest(plan.joined, spec_name="s", schema_digest="h", superseded=plan.superseded,
                                       id_column="id")
    assert manifest["rows"] == 33 - 8 and manifest["id_column"] == "id"
    assert membership.superseding(manifest, "a") == ["4" * 64] and membership.superseding(manifest, "d") == []
    chunk = pd.DataFrame({"id": np.arange(0, 10), "x": np.arange(10)})
    kept = membership.drop_superseded(chunk, "id", IDS["d"])
    assert kept["id"].tolist() == [0, 1, 2, 3, 4, 8, 9]


def test_what_is_left_out_is_part_of_the_version():
    kept = [{"partition": "a", "sha256": "1" * 64, "rows": 3}]
    plain = versions.build_manifest(kept, spec_name="s", schema_digest="h")
    assert plain["left_out"] == []
    out = versions.build_manifest(kept, spec_name="s", schema_digest="h",
                                  left_out=[{"partition": "b", "sha256": "2" * 64, "rows": 4, "reason": "r"}])
    assert out["id"] != plain["id"] and out["rows"] == 3
    assert versions.left_out_lines(out["left_out"]) == [f"b (4 rows, sha256 {'2' * 16}): r"]


def test_a_stored_batch_is_checked_again_against_a_new_spec(tmp_path: Path):
    spec = demo_spec()
    landed = tmp_path / "b.csv"
    make_batch(200, seed=1).to_csv(landed, index=False)
    stored = tmp_path / "stored.parquet"
    ingest_file(landed, spec, stored)
    assert membership.revalidate(stored, spec, tmp_path / "scratch.parquet") is None
    narrower = spec.model_copy(update={"categorical": [
        CategoricalColumn(name=c.name, categories=[x for x in c.categories if x != "west"]) if c.name == "region"
        else c for c in spec.categorical]})
    reason = membership.revalidate(stored, narrower, tmp_path / "scratch.parquet")
    assert reason is not None and reason.startswith("region: not one of the allowed categories") and "'west'" in reason
    assert not (tmp_path / "scratch.parquet").exists()


def test_schema_hash_sees_custom_check_limits():
    from mlops_assets.core.validation import raw_schema

    spec = demo_spec()
    nullable = spec.model_copy(update={"numeric": [
        c.model_copy(update={"nullable": True, "max_null_fraction": 0.1}) if c.name == "income" else c
        for c in spec.numeric]})
    looser = nullable.model_copy(update={"numeric": [
        c.model_copy(update={"max_null_fraction": 0.5}) if c.name == "income" else c for c in nullable.numeric]})
    assert versions.schema_hash(raw_schema(nullable)) != versions.schema_hash(raw_schema(looser))


@pytest.mark.parametrize("policy", ["reject", "upsert"])
def test_id_policy_is_a_spec_field(policy: str):
    assert demo_spec().id_policy == "reject"
    assert demo_spec().model_copy(update={"id_policy": policy}).id_policy == policy
