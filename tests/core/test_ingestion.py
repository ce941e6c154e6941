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
        "column": "application_id", "check": "field_uniqueness", "rule": "duplicate id", "count": 2,
        "samples": [{"line": 44, "value": "42"}, {"line": 919, "value": "42"}]}}
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
    # CSV rows are named by the file's line (line 1 is the header), Parquet rows by their number from 0.
    where, offset = ("line", 2) if suffix == ".csv" else ("row", 0)
    region = failures[("region", "isin(['north', 'south', 'east', 'west'])")]
    assert region["samples"] == [{where: 777 + offset, "value": "mars"}]
    assert [s[where] for s in failures[("age", "greater_than_or_equal_to(18.0)")]["samples"]] == [5 + offset,
                                                                                               934 + offset]
    assert failures[("age", "greater_than_or_equal_to(18.0)")]["count"] == 2


def test_the_share_of_nulls_is_counted_over_the_whole_file(tmp_path: Path, spec):
    frame = make_batch(1000, seed=5).fillna({"utilization": 0.5})
    frame.loc[frame.index % 4 == 0, "utilization"] = np.nan  # 25% in every chunk and overall: over 20%
    path = tmp_path / "nulls.csv"
    frame.to_csv(path, index=False)
    failures = rejected(path, spec, tmp_path, chunk_rows=100)
    assert failures[("utilization", "share of nulls <= 0.2")]["rule"] == \
        "null share 25% above the allowed 20% (250 of 1000 rows)"


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


def test_a_report_names_each_rule_once_with_each_line_and_its_own_raw_text(tmp_path: Path, spec):
    """Issue 12 item 7: thousands separators, 'n/a' in a required number, an id beyond int64, a missing label."""
    frame = make_batch(300, seed=5).astype({"income": object, "age": object, "application_id": object})
    frame["income"] = [f"{v:,.0f}" if v >= 1000 else f"{v:.0f}" for v in frame["income"]]
    frame.loc[5, "age"] = "n/a"
    frame.loc[7, "application_id"] = "99999999999999999999"
    path = tmp_path / "thousands.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(validation.BatchRejected) as err:
        ingestion.ingest_file(path, spec, tmp_path / "out.parquet", chunk_rows=100)
    failures = {(f["column"], f["check"]): f for f in err.value.failures}
    assert set(failures) == {("income", "dtype('float64')"), ("age", "not_nullable"),
                             ("application_id", "dtype('int64')")}
    income = failures[("income", "dtype('float64')")]
    bad = [i for i, v in enumerate(frame["income"]) if "," in v]
    assert income["rule"] == "not a number" and income["count"] == len(bad)
    assert income["samples"] == [{"line": i + 2, "value": frame.at[i, "income"]} for i in bad[:5]]
    assert "thousands separator" in income["hint"] and "`thousands: ','`" in income["hint"]
    assert failures[("age", "not_nullable")]["samples"] == [{"line": 7, "value": "n/a"}]
    ids = failures[("application_id", "dtype('int64')")]
    assert ids["rule"] == "out of int64 range" and ids["samples"] == [{"line": 9, "value": "99999999999999999999"}]
    text = str(err.value)
    assert "3 rule(s) broken" in text and "line 1 is the header" in text and "Error" not in text
    assert "- income: not a number in " in text and "line 2 " in text

    fixed = tmp_path / "fixed.csv"
    frame.assign(age=frame["age"].replace("n/a", 40), application_id=range(300)).to_csv(fixed, index=False)
    batch = ingestion.ingest_file(fixed, spec.model_copy(update={"thousands": ","}), tmp_path / "ok.parquet")
    assert batch.rows == 300 and batch.preview["income"].dtype == np.float64


def test_a_missing_label_is_a_missing_required_column(tmp_path: Path, spec):
    path = tmp_path / "nolabel.csv"
    make_batch(50, seed=6).drop(columns="default").to_csv(path, index=False)
    with pytest.raises(validation.BatchRejected) as err:
        ingestion.ingest_file(path, spec, tmp_path / "out.parquet")
    assert [f["rule"] for f in err.value.failures] == ["missing required column (the label)"]
    assert "- default: missing required column (the label)" in str(err.value) and "row(s)" not in str(err.value)


def test_unseen_categories_are_accepted_and_counted_up_to_the_stated_share(tmp_path: Path, spec):
    """Issue 12 item 4: a rare value a column accepts keeps its batch, counted; beyond the share it quarantines."""
    region = spec.categorical[0].model_copy(update={"unseen": "accept", "max_unseen_fraction": 0.01})
    accepting = spec.model_copy(update={"categorical": [region, *spec.categorical[1:]]})
    frame = make_batch(1000, seed=7)
    frame.loc[[3, 640], "region"] = "atlantis"
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(validation.BatchRejected):
        ingestion.ingest_file(path, spec, tmp_path / "strict.parquet", chunk_rows=300)  # default: quarantine
    batch = ingestion.ingest_file(path, accepting, tmp_path / "out.parquet", chunk_rows=300)
    assert batch.rows == 1000 and batch.unseen == {"region": {"atlantis": 2}}

    frame.loc[:19, "region"] = "mu"  # 2% of the rows, above the stated 1%
    frame.to_csv(path, index=False)
    failures = rejected(path, accepting, tmp_path, chunk_rows=300)
    share = failures[("region", "share of unseen categories <= 0.01")]
    assert share["count"] == 21 and share["rule"].startswith("values outside the categories in 2% of rows")
    assert share["samples"][0] == {"line": 2, "value": "mu"}
