"""Helpers shared by the sensors: run-queue state and reading asset metadata back from the instance."""

import time
from typing import Any

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.core.contracts import RUN_KIND, RunKind

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]


def runs_in_flight(instance: DagsterInstance, run_kind: str) -> int:
    return len(instance.get_run_ids(filters=RunsFilter(statuses=IN_FLIGHT, tags={RUN_KIND: run_kind})))


def latest_metadata(instance: DagsterInstance, asset: str) -> dict[str, Any]:
    """Metadata of the newest materialization of an asset (any partition), as plain values."""
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def seconds_since_last_training(instance: DagsterInstance) -> float | None:
    """Age of the newest training run (None if there was none), for the retraining cooldown."""
    runs = instance.get_run_records(filters=RunsFilter(tags={RUN_KIND: RunKind.TRAINING}), limit=1)
    if not runs:
        return None
    return time.time() - runs[0].create_timestamp.timestamp()
