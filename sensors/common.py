"""Helpers shared by the sensors: run-queue state and the age of the last training run."""

import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.core.contracts import RUN_KIND, RunKind

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]


def runs_in_flight(instance: DagsterInstance, run_kind: str) -> int:
    return len(instance.get_run_ids(filters=RunsFilter(statuses=IN_FLIGHT, tags={RUN_KIND: run_kind})))


def seconds_since_last_training(instance: DagsterInstance) -> float | None:
    """Age of the newest training run (None if there was none), for the retraining cooldown."""
    runs = instance.get_run_records(filters=RunsFilter(tags={RUN_KIND: RunKind.TRAINING}), limit=1)
    if not runs:
        return None
    return time.time() - runs[0].create_timestamp.timestamp()
