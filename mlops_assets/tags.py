"""Run tags shared by sensors, assets and the CLI (and read back from the Dagster instance)."""

SOURCE_FILE = "mlops/source_file"
SOURCE_SHA256 = "mlops/source_sha256"
TRIGGER = "mlops/trigger"
DATASET_VERSION = "mlops/dataset_version"
CHAMPION_VERSION = "mlops/champion_version"
RUN_KIND = "mlops/run_kind"

# Registry / MLflow tag names (lineage on every model version and training run).
LINEAGE_DATASET = "mlops.dataset_version"
LINEAGE_RUN_ID = "mlops.dagster_run_id"
LINEAGE_PARTITION = "mlops.dagster_partition"
LINEAGE_CODE = "mlops.code_version"
LINEAGE_COMMIT = "mlops.git_commit"
LINEAGE_FINGERPRINT = "mlops.fingerprint"
LINEAGE_GATE = "mlops.gate"
LINEAGE_TRIGGER = "mlops.trigger"
