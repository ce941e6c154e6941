"""Ingestion: unreadable files get a clear reason, and a batch read in many chunks is validated and stored
exactly as if read whole, in canonical bytes."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core import contracts, ingestion, validation, versions
from mlops_assets.core.demo import make_batch
from mlops_assets.core.spec import demo_spec


@pytest.fixture
def spec():
    return demo_spec()


def whole_file_bytes(frame: pd.DataFrame, spec, **kw) -> bytes:
    """The canonical bytes of a batch validated in one piece, as ingestion did before it streamed."""
    valid = validation.validate(frame, validation.raw_schema(spec), file="whole")
    return ingestion.to_parquet_bytes(ingestion.canonical_frame(valid, spec), **kw)


def rejected(path: Path, spec, tmp_path: Path, chunk_rows: int) -> dict:
    with pytest.raises(validation.BatchRejected) as err:
        ingestion.ingest_file(path, spec, tmp_path / "out.parquet", chunk_rows=chunk_rows)
    return {(f["column"], f["check"]): f for f in err.value.failures}


def test_partition_keys_must_be_safe():
    assert ingestion.partition_key_for(Path("batch_2026-01-01.csv")) == "batch_2026-01-01"
    with pytest.raises(validation.BatchRejected):
        ingestion.partition_key_for(Path("bad name;rm.csv"))


@pytest.mark.parametrize("content,reason", [
    (b"", "file is empty"),
    (b"application_id,age,income\n", "header but no rows"),
    (b"\xff\xfe\x00garbage\x00\xff" * 50, "not UTF-8"),
    (b"application_id;age;income\n1;2;3\n", "another delimiter"),
])
def test_unreadable_csv_files_get_a_clear_reason(tmp_path: Path, spec, content: bytes, reason: str):
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    with pytest.raises(validation.BatchRejected) as err:
        ingestion.ingest_file(path, spec, tmp_path / "out.parquet")
    assert reason in err.value.reason
    assert err.value.file == "batch.csv"
    assert not (tmp_path / "out.parquet").exists()


def test_truncated_parquet_is_rejected(tmp_path: Path, spec):
    good = tmp_path / "good.parquet"
    make_batch(100, seed=4).to_parquet(good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(validation.BatchRejected, match="unreadable Parquet"):
        ingestion.ingest_file(bad, spec, tmp_path / "out.parquet")
    assert ingestion.ingest_file(good, spec, tmp_path / "out.parquet").rows == 100


def test_canonical_bytes_do_not_depend_on_row_or_column_order(spec):
    frame = validation.validate(make_batch(300, seed=5), validation.raw_schema(spec), file="a")
    shuffled = frame.sample(frac=1, random_state=1)[list(reversed(frame.columns))]
    a = ingestion.to_parquet_bytes(ingestion.canonical_frame(frame, spec))
    b = ingestion.to_parquet_bytes(ingestion.canonical_frame(shuffled, spec))
    assert versions.sha256_bytes(a) == versions.sha256_bytes(b)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_many_chunks_store_the_bytes_of_one(tmp_path: Path, spec, suffix: str):
    frame = make_batch(5000, seed=1).sample(frac=1, random_state=2)  # ids out of order: the merge must sort
    path = tmp_path / f"batch{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    expected = whole_file_bytes(frame, spec)
    for chunk_rows in (333, 5000, 1_000_000):
        out = tmp_path / f"out_{chunk_rows}.parquet"
        batch = ingestion.ingest_file(path, spec, out, chunk_rows=chunk_rows)
        assert out.read_bytes() == expected
        assert batch.sha256 == versions.sha256_bytes(expected) and batch.rows == 5000
        assert batch.preview["application_id"].tolist() == [0, 1, 2, 3, 4]
    # Several row groups, each merged from slices of many sorted chunks, still give the whole-file bytes.
    small_groups = ingestion.ingest_file(path, spec, tmp_path / "groups.parquet", chunk_rows=333, row_group_rows=1024)
    assert small_groups.path.read_bytes() == whole_file_bytes(frame, spec, row_group_rows=1024)
    assert sorted(p.name for p in tmp_path.iterdir() if "spill" in p.name) == []


def test_a_duplicate_id_in_two_chunks_is_caught_with_its_rows(tmp_path: Path, spec):
    frame = make_batch(1000, seed=3)
    frame.loc[917, "application_id"] = frame.loc[42, "application_id"]
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)
    failures = rejected(path, spec, tmp_path, chunk_rows=100)
    assert failures == {("application_id", "field_uniqueness"): {
        "column": "application_id", "check": "field_uniqueness", "count": 2, "sample_rows": [42, 917],
        "sample_values": ["42", "42"]}}
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_errors_in_later_chunks_name_the_files_rows(tmp_path: Path, spec, suffix: str):
    frame = make_batch(1000, seed=4).fillna({"utilization": 0.5})
    frame.loc[777, "region"] = "mars"
    frame.loc[[5, 934], "age"] = -1
    frame.loc[:149, "utilization"] = np.nan  # 15% nulls overall (limit 20%), though chunks 0 and 1 are all null
    path = tmp_path / f"bad{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    failures = rejected(path, spec, tmp_path, chunk_rows=100)
    assert set(failures) == {("region", "isin(['north', 'south', 'east', 'west'])"),
                             ("age", "greater_than_or_equal_to(18.0)")}
    assert failures[("region", "isin(['north', 'south', 'east', 'west'])")]["sample_rows"] == [777]
    assert failures[("age", "greater_than_or_equal_to(18.0)")]["sample_rows"] == [5, 934]
    assert failures[("age", "greater_than_or_equal_to(18.0)")]["count"] == 2


def test_the_share_of_nulls_is_counted_over_the_whole_file(tmp_path: Path, spec):
    frame = make_batch(1000, seed=5).fillna({"utilization": 0.5})
    frame.loc[frame.index % 4 == 0, "utilization"] = np.nan  # 25% in every chunk and overall: over 20%
    path = tmp_path / "nulls.csv"
    frame.to_csv(path, index=False)
    failures = rejected(path, spec, tmp_path, chunk_rows=100)
    assert failures[("utilization", "share of nulls <= 0.2")]["sample_values"] == ["250 of 1000 rows null"]


def test_a_missing_column_is_reported_once_for_the_file(tmp_path: Path, spec):
    path = tmp_path / "missing.parquet"
    make_batch(1000, seed=6).drop(columns="income").to_parquet(path)
    failures = rejected(path, spec, tmp_path, chunk_rows=100)
    assert failures[("income", "missing column")]["count"] == 1


def test_the_asset_stores_the_same_object_whatever_its_chunk_size(defs, instance, lay):
    """Through real Dagster runs of the ingest job: the chunk size is run config and never changes the hash.
    (One partition ingested twice: the same content under a second name would be quarantined as a duplicate.)"""
    store = defs.resources["store"]
    frame = make_batch(3000, seed=7).sample(frac=1, random_state=8)
    digests = []
    for key, chunk_rows in (("batch", 1_000_000), ("batch", 128)):
        frame.to_csv(lay.landing / f"{key}.csv", index=False)
        instance.add_dynamic_partitions("batches", [key])
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, partition_key=key, tags={contracts.SOURCE_FILE: f"{key}.csv"},
            run_config={"ops": {"raw_batches": {"config": {"chunk_rows": chunk_rows}}}})
        assert result.success
        digests.append(store.batch_record(key)["sha256"])
    assert digests[0] == digests[1] == versions.sha256_bytes(whole_file_bytes(frame, store.spec()))
    assert list((lay.store / "tmp").iterdir()) == []  # no staging or spill files left behind
