"""Data stage: raw batches (one partition per landed file), validated and stored content-addressed,
and the dataset: a versioned manifest of every accepted batch."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from dagster_pandera import pandera_schema_to_dagster_type

from mlops_assets.core import contracts, ingestion, validation, versions
from mlops_assets.core.tables import markdown_table
from mlops_assets.partitions import batch_partitions
from mlops_assets.records import DatasetRecord
from mlops_assets.retries import retry_transient
from resources import Alerter, DataStore, LandingFileError

RAW_CHECK = "schema"


class IngestConfig(Config):
    """How a batch is read: ``chunk_rows`` rows at a time, which bounds ingestion's memory for any file size."""

    chunk_rows: int = ingestion.DEFAULT_CHUNK_ROWS


def _landing_file(context: AssetExecutionContext, store: DataStore, key: str):
    """The file behind this partition: named by the sensor's run tag, else found by its stem (backfills)."""
    name = context.run.tags.get(contracts.SOURCE_FILE)
    if name:
        return store.resolve_landing(name)
    for candidate in store.settled_landing_files(now=float("inf")):
        if candidate.stem == key or candidate.name == key:
            return store.resolve_landing(candidate.name)
    return None


@asset(
    partitions_def=batch_partitions,
    group_name="data",
    io_manager_key="records",
    check_specs=[AssetCheckSpec(RAW_CHECK, asset="raw_batches", blocking=True,
                                description="pandera schema of the data set (types, ranges, categories, "
                                            "nulls, unique ids, known labels)")],
    description="One landed file per partition, validated with pandera and stored immutably by content "
                "hash. A failing file is moved to quarantine with a report; nothing downstream changes.",
)
@retry_transient
def raw_batches(context: AssetExecutionContext, config: IngestConfig, store: DataStore, alerts: Alerter):
    key = context.partition_key
    spec = store.spec()
    schema = validation.raw_schema(spec)
    digest = versions.schema_hash(schema)
    try:
        path = _landing_file(context, store, key)
    except LandingFileError as exc:
        raise Failure(description=f"batch {key}: {exc}") from exc
    if path is None:
        record = store.batch_record(key)
        if record is None:
            raise Failure(description=f"batch {key}: no file named {key}.csv or {key}.parquet in the landing "
                                      f"zone {store.landing} and nothing stored for it; land the file first")
        context.log.info(f"batch {key}: source no longer in the landing zone, keeping stored {record['sha256']}")
        yield AssetCheckResult(check_name=RAW_CHECK, passed=True, metadata={"rows": record["rows"]})
        yield Output(record, data_version=DataVersion(record["sha256"]), metadata={"sha256": record["sha256"]})
        return

    source_sha = versions.sha256_file(path)
    try:
        record, preview = store.ingest(key, path, source_sha256=source_sha, schema_hash=digest,
                                       chunk_rows=config.chunk_rows)
    except validation.BatchRejected as rejected:
        report = {**rejected.report(), "partition": key, "source_sha256": source_sha, "schema": schema.name}
        moved = store.quarantine_file(path, report)
        alerts.alert("batch_quarantined", f"batch {key} quarantined: {rejected.reason}", file=path.name,
                     quarantined_as=moved.name)
        yield AssetCheckResult(
            check_name=RAW_CHECK, passed=False, severity=AssetCheckSeverity.ERROR,
            metadata={"file": path.name, "reason": rejected.reason, "quarantined_as": str(moved),
                      "failures": MetadataValue.md(markdown_table(rejected.table())) if rejected.failures
                      else MetadataValue.text("(file could not be read)"),
                      "failed_rules": len(rejected.failures)},
        )
        raise Failure(
            description=f"{rejected}\n\nThe file was moved to {moved} with a report beside it "
                        f"({moved.name}.report.json). Fix the data (or the dataset spec) and land the "
                        "corrected file again; the current dataset and champion are unchanged.",
            metadata={"quarantined_as": str(moved)},
        ) from rejected

    context.log.info(f"batch {key}: accepted {record['rows']} rows as {record['sha256']}")
    yield AssetCheckResult(check_name=RAW_CHECK, passed=True, metadata={"rows": record["rows"]})
    yield Output(
        record,
        data_version=DataVersion(record["sha256"]),
        metadata={
            "rows": record["rows"],
            "sha256": record["sha256"],
            "source": path.name,
            "stored_bytes": record["bytes"],
            "schema_hash": digest,
            "dagster/row_count": record["rows"],
            "dagster/column_schema": pandera_schema_to_dagster_type(schema).metadata["schema"].schema,
            "preview": MetadataValue.md(markdown_table(preview)),
            "unseen_categories": MetadataValue.json(record.get("unseen_categories", {})),
        },
    )


@asset(
    deps=[raw_batches],
    group_name="data",
    io_manager_key="records",
    description="The versioned data set: a manifest of every accepted batch's content hash. Its id is the "
                "manifest's hash, so the same batches always give the same version.",
)
@retry_transient
def dataset(context: AssetExecutionContext, store: DataStore) -> Output[DatasetRecord]:
    current = store.current_dataset()
    if current is None:
        raise Failure(description=f"no accepted batches yet: land CSV or Parquet files in {store.landing} "
                                  "(or run `mlops simulate`) and let the new-data sensor ingest them")
    left_out = current["left_out"]
    if not current["batches"]:
        raise Failure(description=f"none of the {len(left_out)} stored batches passes the current spec "
                                  f"{current['spec']!r}:\n" + "\n".join(versions.left_out_lines(left_out)))
    manifest = store.save_dataset(current)
    context.log.info(f"dataset version {manifest['id']}: {len(manifest['batches'])} batches, {manifest['rows']} rows, "
                     f"spec {manifest['spec']} ({manifest['schema_hash']})")
    for line in versions.left_out_lines(manifest["left_out"]):
        context.log.warning(f"dataset version {manifest['id']} leaves out {line}")
    table = markdown_table({"batch": b["partition"], "rows": b["rows"], "sha256": b["sha256"][:16]}
                           for b in manifest["batches"])
    summary: DatasetRecord = {k: manifest[k] for k in ("id", "digest", "created", "rows", "spec", "schema_hash")}
    summary["batches"] = len(manifest["batches"])
    summary["left_out"] = len(manifest["left_out"])
    metadata = {
        "dataset_version": manifest["id"], "rows": manifest["rows"], "batches": len(manifest["batches"]),
        "spec": manifest["spec"], "schema_hash": manifest["schema_hash"],
        "left_out": len(manifest["left_out"]), "superseded_rows": sum(s["rows"] for s in manifest["superseded"]),
        "dagster/row_count": manifest["rows"], "manifest": MetadataValue.md(table),
    }
    if manifest["left_out"]:
        metadata["left_out_batches"] = MetadataValue.md(markdown_table(
            {"batch": b["partition"], "rows": b["rows"], "sha256": b["sha256"][:16], "reason": b["reason"]}
            for b in manifest["left_out"]))
    return Output(summary, data_version=DataVersion(manifest["id"]), metadata=metadata)
