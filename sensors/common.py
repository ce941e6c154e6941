"""Helpers shared by the sensors: run-queue state, the age of the last training run, watched folders."""

import json
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from mlops_assets.core import triggers
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


def folder_changes(cursor: str | None, files: list[Path]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A watched folder against a sensor's cursor: what was handled (name -> size:mtime signature), what is
    there now, and the names that are new or changed since."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    listing = {}
    for path in files:
        st = path.lstat()
        listing[path.name] = triggers.file_signature(st.st_size, st.st_mtime_ns)
    return seen, listing, triggers.unseen_files(listing, seen)
