"""Features stage: the stable train/holdout split of a dataset version, validated against the feature schema."""

from dagster import AssetExecutionContext, DataVersion, Failure, MetadataValue, Output, asset
from dagster_pandera import pandera_schema_to_dagster_type

from mlops_assets.core import data as data_logic
from mlops_assets.core import features as logic
from mlops_assets.core.tables import markdown_table
from resources import DataStore


@asset(
    group_name="features",
    io_manager_key="records",
    description="Train and holdout tables of the current dataset version. Rows are split by a hash of their id, "
                "so a row never moves between sides across versions and every model is judged on unseen rows.",
)
def features(context: AssetExecutionContext, store: DataStore, dataset: dict) -> Output[dict]:
    spec = store.spec()
    schema = data_logic.feature_schema(spec)
    frame = store.load_dataset(dataset["id"])
    parts = logic.split(frame, spec)
    for name, part in (("train", parts.train), ("holdout", parts.holdout)):
        try:
            data_logic.validate(part[spec.feature_names + [spec.target]], schema, file=f"{name} features")
        except data_logic.BatchRejected as rejected:
            raise Failure(description=f"feature validation failed for dataset {dataset['id']}: {rejected}") \
                from rejected
        store.put_features(dataset["id"], name, part)
    if spec.task == "classification" and parts.train[spec.target].nunique() < 2:
        raise Failure(description=f"dataset {dataset['id']} has a single class in its training rows; "
                                  "land batches with both labels before training")
    record = {"dataset_id": dataset["id"], "train_rows": len(parts.train), "holdout_rows": len(parts.holdout)}
    context.log.info(f"features for {dataset['id']}: {record['train_rows']} train / {record['holdout_rows']} holdout")
    return Output(record, data_version=DataVersion(dataset["id"]), metadata={
        "dataset_version": dataset["id"],
        "train_rows": record["train_rows"],
        "holdout_rows": record["holdout_rows"],
        "summary": MetadataValue.md(markdown_table(logic.describe(parts.train, spec))),
        "dagster/column_schema": pandera_schema_to_dagster_type(schema).metadata["schema"].schema,
    })
