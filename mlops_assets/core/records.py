"""The records the assets hand each other, typed in one place so a reader never has to trace a producer to know
a record's shape. They stay plain JSON-able dicts on disk (the IO manager writes JSON, never pickles): these
are ``TypedDict``s, checked by type checkers and read with ordinary ``record["key"]``."""

from __future__ import annotations

from typing import Any, TypedDict


class BatchRecord(TypedDict):
    """``raw_batches[partition]``: one accepted batch, stored content-addressed (``sha256`` of its Parquet)."""

    partition: str
    sha256: str
    rows: int
    bytes: int
    columns: list[str]
    source: str
    source_sha256: str
    schema_hash: str
    accepted_at: str


class DatasetRecord(TypedDict):
    """``dataset``: a dataset version (the manifest's id and its summary; the manifest itself is in the store)."""

    id: str
    digest: str
    created: str
    rows: int
    spec: str
    schema_hash: str
    batches: int
    left_out: int  # stored batches not in this version; the manifest says why


class FeaturesRecord(TypedDict):
    """``features``: the train/holdout tables of a dataset version, written to the store."""

    dataset_id: str
    train_rows: int
    holdout_rows: int


class _Skippable(TypedDict, total=False):
    skipped: str  # nothing was trained: the record is the champion's, and this says why


class CandidateRecord(_Skippable):
    """``candidate_model``: the trained (or reused) model and its MLflow run."""

    run_id: str
    model_uri: str
    dataset_id: str
    fingerprint: str
    metrics: dict[str, float]
    cv_score: float
    target_metric: str
    params: dict[str, Any]
    tuned: bool
    experiment_id: str


class GateRule(TypedDict):
    rule: str
    metric: str
    candidate: float
    required: float
    passed: bool
    note: str  # why the candidate's metric is undefined (NaN), or why the rule was not applied


class GateRecord(TypedDict):
    passed: bool
    rules: list[GateRule]
    reasons: list[str]


class EvaluationRecord(TypedDict):
    """``model_evaluation``: candidate and champion on the same holdout rows, the gate's verdict, and the
    candidate's answers on the smoke-test rows (the deployment compares the registry's copy with them)."""

    run_id: str
    model_uri: str
    dataset_id: str
    fingerprint: str
    candidate_metrics: dict[str, float]
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    gate: GateRecord
    smoke_predictions: list[Any]


class RegisteredModelRecord(TypedDict):
    """``registered_model``: the registry version the gated candidate became."""

    name: str
    version: str
    run_id: str
    dataset_id: str


class DeploymentRecord(TypedDict, total=False):
    """``deployment``: what serves after the release (``canary``/``canary_percent`` for canary and shadow
    releases, ``previous`` for blue-green; no ``version`` while nothing serves)."""

    version: str
    previous: str | None
    canary: str
    canary_percent: float
    strategy: str
    gateway_confirmed: bool
    deployed_at: str
    dataset_id: str
    pending_approval: str  # the version waiting for `mlops registry approve` (require_approval), not serving


class CanaryReleaseRecord(TypedDict, total=False):
    """``canary_release``: the canary sensor's decision and its evidence (``action`` "none" when the slot had
    moved on before the run)."""

    action: str
    version: str
    champion: str
    evidence: list[str]
    gateway_confirmed: bool
    decided_at: str


class AuditEntry(TypedDict):
    """One move in the audit trail of releases (``core.audit``): ``alias`` moved from ``from_version`` to
    ``to_version`` (None: unset), by ``who`` at ``at`` (UTC), and why: the Dagster run, its trigger and the gate
    or canary evidence, or the reason an approver gave. ``alias`` is None for approval decisions."""

    seq: int
    id: str
    at: str
    who: str
    action: str
    alias: str | None
    from_version: str | None
    to_version: str | None
    why: dict[str, Any]
