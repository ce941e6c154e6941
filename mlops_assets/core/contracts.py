"""The platform's string contracts, each written once: run kinds and run tags (read back from the Dagster
instance), registry aliases and registered-model tags (read by the gateway), and the lineage tags every MLflow
run and model version carries. No Dagster or MLflow import, so the gateway and the CLI share them cheaply."""


class RunKind:
    """What a Dagster run does (tag ``mlops/run_kind``): the run queue and the sensors count runs by it.
    Plain strings, not an Enum: Dagster stores tags as strings and serialises only its own enums."""

    INGEST = "ingest"
    TRAINING = "training"
    MONITORING = "monitoring"
    DEPLOYMENT = "deployment"
    ROLLBACK = "rollback"
    RETENTION = "retention"
    SCORING = "scoring"


class Trigger:
    """Why a run started (tag ``mlops/trigger``, copied onto MLflow runs and model versions)."""

    MANUAL = "manual"
    NEW_DATA = "new_data"
    DRIFT = "drift"
    DECAY = "decay"
    ESTIMATED = "estimated"  # decay estimated before labels arrived (CBPE/DLE); realized labels confirm or clear it
    TRAFFIC = "traffic"
    CANARY = "canary"
    LABELS = "labels"


# Dagster run tags.
RUN_KIND = "mlops/run_kind"
TRIGGER = "mlops/trigger"
SOURCE_FILE = "mlops/source_file"
SOURCE_SHA256 = "mlops/source_sha256"
DATASET_VERSION = "mlops/dataset_version"
CHAMPION_VERSION = "mlops/champion_version"
CANARY_VERSION = "mlops/canary_version"

# Registry aliases: what serves (champion, and the canary slot), what is waiting, what a rollback returns to.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
CANARY = "canary"
# A release in the canary slot answers a share of traffic ("canary") or sees a copy of it ("shadow").
SHADOW = "shadow"
RELEASE_MODES = (CANARY, SHADOW)
# The prediction-log slot of rows scored in batch (``mlops score``, the ``batch_predictions`` asset).
BATCH = "batch"

# Registered-model tags the gateway reads with the `canary` alias: how much traffic, and canary or shadow.
CANARY_PERCENT_TAG = "mlops.canary_percent"
RELEASE_MODE_TAG = "mlops.release_mode"

# Lineage on every MLflow training run and model version.
LINEAGE_DATASET = "mlops.dataset_version"
LINEAGE_RUN_ID = "mlops.dagster_run_id"
LINEAGE_CODE = "mlops.code_version"
LINEAGE_COMMIT = "mlops.git_commit"
LINEAGE_FINGERPRINT = "mlops.fingerprint"
LINEAGE_GATE = "mlops.gate"
LINEAGE_TRIGGER = "mlops.trigger"
LINEAGE_MLFLOW_RUN = "mlops.mlflow_run_id"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own tag, so its UI shows the commit
TUNED_TAG = "mlops.tuned"
TRIAL_TAG = "mlops.trial"
METRIC_TAG_PREFIX = "metric."  # model-version tags `metric.<name>`: the offline holdout metrics
