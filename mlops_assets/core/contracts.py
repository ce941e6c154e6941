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
    APPROVAL = "approval"


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

# The MLflow run every step of one Dagster run shares (monitoring): found by dagster-mlflow's own tag key, so its
# `mlflow_tracking` resource would find the same run; kind, job, partition and the model version it watched.
DAGSTER_MLFLOW_RUN_TAG = "dagster_run_id"
MLFLOW_RUN_KIND = "mlops.run_kind"
DAGSTER_JOB_TAG = "mlops.dagster_job"
PARTITION_TAG = "mlops.partition"
MONITORED_VERSION_TAG = "mlops.monitored_version"
STEP_TAG_PREFIX = "mlops.step."  # `mlops.step.<step>`: "succeeded" or "failed: <error type>", per step

# The audit trail of releases (core/audit.py): one registered-model tag per entry, `mlops.audit.<seq>.<id>`.
AUDIT_TAG_PREFIX = "mlops.audit."


class AuditAction:
    """What an audit entry records: which release move, and whether a person or the platform decided it."""

    PROMOTE = "promote"  # a blue-green release: champion moves, the old one becomes previous
    CANARY_START = "canary_start"
    CANARY_SHARE = "canary_share"
    CANARY_PROMOTE = "canary_promote"  # the canary sensor's verdict: the canary becomes champion
    CANARY_ROLLBACK = "canary_rollback"  # the canary sensor's verdict: the canary is withdrawn
    RESTORE = "restore"  # automatic rollback: the gateway could not serve the new champion
    ROLLBACK = "rollback"  # manual rollback (`mlops deploy rollback`, rollback_job)
    APPROVAL_REQUESTED = "approval_requested"
    APPROVE = "approve"
    REJECT = "reject"


# Approval before production (require_approval): model-version tags. `mlops.approval` holds the status, the
# release tag the strategy the approved version goes out with.
APPROVAL_TAG = "mlops.approval"
APPROVAL_RELEASE_TAG = "mlops.approval.release"


class ApprovalStatus:
    PENDING = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


# Types outside skops' default trust list that the platform's own estimators contain: training refuses to log a
# model needing others, and the gateway refuses an MLmodel that asks to trust others, so an artifact store write
# alone cannot make the gateway load arbitrary types.
TRUSTED_SKOPS_TYPES = frozenset({
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn.tree._tree.Tree",
})
