"""The data layer's pure logic: specs, validation reports, canonical bytes, manifests, the stable split."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core import data
from mlops_assets.core.demo import make_batch
from mlops_assets.core.features import split
from mlops_assets.core.spec import SpecError, demo_spec, load_spec


@pytest.fixture
def spec():
    return demo_spec()


def test_valid_batch_passes_and_is_coerced(spec):
    frame = make_batch(500, seed=1)
    frame["age"] = frame["age"].astype(int)  # whole numbers read from CSV as ints still pass
    out = data.validate(frame, data.raw_schema(spec), file="ok.csv")
    assert out["age"].dtype == np.float64
    assert len(out) == 500


def test_every_broken_rule_is_named_with_rows(spec):
    frame = make_batch(300, seed=2)
    frame.loc[3, "age"] = -5
    frame.loc[7, "region"] = "mars"
    frame.loc[[10, 11], "application_id"] = frame.loc[12, "application_id"]
    frame.loc[20, "default"] = 7
    frame = frame.drop(columns="income").assign(extra=1)
    with pytest.raises(data.BatchRejected) as err:
        data.validate(frame, data.raw_schema(spec), file="bad.csv")
    failures = {(f["column"], f["check"]): f for f in err.value.failures}
    assert failures[("income", "missing column")]["count"] == 1
    assert failures[("extra", "unexpected column")]["count"] == 1
    assert failures[("age", "greater_than_or_equal_to(18.0)")]["sample_rows"] == [3]
    assert failures[("region", "isin(['north', 'south', 'east', 'west'])")]["sample_values"] == ["mars"]
    assert ("application_id", "field_uniqueness") in failures
    assert ("default", "isin([0, 1])") in failures
    text = str(err.value)
    assert text.startswith("bad.csv: failed validation") and "'income' failed missing column" in text


def test_inf_and_too_many_nulls_are_rejected(spec):
    frame = make_batch(200, seed=3)
    frame.loc[5, "debt_ratio"] = np.inf
    frame.loc[: 100, "utilization"] = np.nan  # half the column null, limit is 20%
    with pytest.raises(data.BatchRejected) as err:
        data.validate(frame, data.raw_schema(spec), file="x.csv")
    checks = {(f["column"], f["check"]) for f in err.value.failures}
    assert ("debt_ratio", "finite (no +/-inf)") in checks
    assert ("utilization", "share of nulls <= 0.2") in checks


@pytest.mark.parametrize("content,reason", [
    (b"", "file is empty"),
    (b"application_id,age,income\n", "header but no rows"),
    (b"\xff\xfe\x00garbage\x00\xff" * 50, "not UTF-8"),
    (b"application_id;age;income\n1;2;3\n", "another delimiter"),
])
def test_unreadable_csv_files_get_a_clear_reason(tmp_path: Path, spec, content: bytes, reason: str):
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    with pytest.raises(data.BatchRejected) as err:
        data.ingest_file(path, spec, tmp_path / "out.parquet")
    assert reason in err.value.reason
    assert err.value.file == "batch.csv"
    assert not (tmp_path / "out.parquet").exists()


def test_truncated_parquet_is_rejected(tmp_path: Path, spec):
    good = tmp_path / "good.parquet"
    make_batch(100, seed=4).to_parquet(good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(data.BatchRejected, match="unreadable Parquet"):
        data.ingest_file(bad, spec, tmp_path / "out.parquet")
    assert data.ingest_file(good, spec, tmp_path / "out.parquet").rows == 100


def test_partition_keys_must_be_safe():
    assert data.partition_key_for(Path("batch_2026-01-01.csv")) == "batch_2026-01-01"
    with pytest.raises(data.BatchRejected):
        data.partition_key_for(Path("bad name;rm.csv"))


def test_canonical_bytes_do_not_depend_on_row_or_column_order(spec):
    frame = data.validate(make_batch(300, seed=5), data.raw_schema(spec), file="a")
    shuffled = frame.sample(frac=1, random_state=1)[list(reversed(frame.columns))]
    a = data.to_parquet_bytes(data.canonical_frame(frame, spec))
    b = data.to_parquet_bytes(data.canonical_frame(shuffled, spec))
    assert data.sha256_bytes(a) == data.sha256_bytes(b)


def test_manifest_id_is_content_only():
    batches = [{"partition": "b", "sha256": "2" * 64, "rows": 5}, {"partition": "a", "sha256": "1" * 64, "rows": 3}]
    m1 = data.build_manifest(batches, spec_name="s", schema_digest="h")
    m2 = data.build_manifest(list(reversed(batches)), spec_name="s", schema_digest="h")
    assert m1["id"] == m2["id"] and m1["rows"] == 8
    assert [b["partition"] for b in m1["batches"]] == ["a", "b"]
    changed = data.build_manifest([{**batches[0], "sha256": "3" * 64}, batches[1]], spec_name="s", schema_digest="h")
    assert changed["id"] != m1["id"]


def test_holdout_is_stable_across_dataset_versions(spec):
    first = make_batch(2000, seed=6)
    later = pd.concat([first, make_batch(2000, seed=7, start_id=5000)], ignore_index=True)
    a, b = split(first, spec), split(later, spec)
    assert set(a.holdout["application_id"]) <= set(b.holdout["application_id"])
    assert not set(a.train["application_id"]) & set(b.holdout["application_id"])
    assert 0.15 < len(b.holdout) / len(later) < 0.25


def test_spec_errors_name_the_key(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ntask: classification\ntarget: y\nnumeric: [{name: a, mn: 1}]\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "numeric.0.mn" in str(err.value)
    path.write_text("name: x\ntask: classification\ntarget: y\nnumeric: [{name: a}]\n")
    with pytest.raises(SpecError, match="classes"):
        load_spec(path)
