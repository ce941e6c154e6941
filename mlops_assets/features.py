"""Features stage: the stable train/holdout split of a dataset version, validated against the feature schema."""

from dagster import AssetExecutionContext, Config, DataVersion, Failure, MetadataValue, Output, asset
from dagster_pandera import pandera_schema_to_dagster_type

from mlops_assets.core import features as logic
from mlops_assets.core import validation
from mlops_assets.core.tables import markdown_table
from mlops_assets.records import DatasetRecord, FeaturesRecord
from mlops_assets.retries import retry_transient
from resources import DataStore


class FeaturesConfig(Config):
    chunk_rows: int = logic.CHUNK_ROWS  # rows split, validated and written at a time: bounds the stage's memory


@asset(
    group_name="features",
    io_manager_key="records",
    description="Train and holdout tables of the current dataset version. Rows are split by a hash of their id, "
                "so a row never moves between sides across versions and every model is judged on unseen rows.",
)
@retry_transient
def features(context: AssetExecutionContext, config: FeaturesConfig, store: DataStore,
             dataset: DatasetRecord) -> Output[FeaturesRecord]:
    spec = store.spec()
    total = max(int(dataset.get("rows", 0)), 1)
    try:
        # A chunk at a time: split, validate, profile and write, so no stage holds the whole version.
        with store.feature_tables(dataset["id"], ("train", "holdout")) as write:
            profiles = logic.build_features(
                store.iter_dataset(dataset["id"], config.chunk_rows), spec, write,
                progress=lambda done: context.log.debug(f"features for {dataset['id']}: {done} of {total} rows "
                                                        f"({done / total:.0%})"))
    except validation.BatchRejected as rejected:
        raise Failure(description=f"feature validation failed for dataset {dataset['id']}: {rejected}") \
            from rejected
    train, holdout = profiles["train"], profiles["holdout"]
    record: FeaturesRecord = {"dataset_id": dataset["id"], "train_rows": train.rows, "holdout_rows": holdout.rows}
    context.log.info(f"features for {dataset['id']}: {train.rows} train / {holdout.rows} holdout")
    return Output(record, data_version=DataVersion(dataset["id"]), metadata={
        "dataset_version": dataset["id"],
        "train_rows": train.rows,
        "holdout_rows": holdout.rows,
        "summary": MetadataValue.md(markdown_table(train.table())),
        "dagster/column_schema": pandera_schema_to_dagster_type(validation.feature_schema(spec))
        .metadata["schema"].schema,
    })
