"""Helpers shared by the sensors: run-queue state, the age of the last training run, watched folders."""

import json
import time
from collections.abc import Callable
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
)

from mlops_assets.core import ingestion, triggers, validation, versions
from mlops_assets.core.contracts import RUN_KIND, RunKind
from resources import LandingFileError

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


def folder_run_requests(context: SensorEvaluationContext, folder: Path, files: list[Path],
                        partitions: DynamicPartitionsDefinition, resolve: Callable[[str], Path],
                        refuse: Callable[[str, Exception], None], request: Callable[[str, str, str], RunRequest],
                        remember_refused: bool) -> SensorResult | SkipReason:
    """A watched folder's sensor tick: one run request per new or changed file (of ``files``, the folder's settled
    ones), in its own dynamic partition named after the file. A file that cannot be a partition (bad name, a link,
    outside the folder) goes to ``refuse``, which must say why; ``remember_refused`` keeps it in the cursor until
    its bytes change (else it is tried again). ``request(name, partition_key, sha256)`` builds each run request;
    the cursor drops files no longer there."""
    seen, listing, todo = folder_changes(context.cursor, files)
    if not todo:
        return SkipReason(f"no new files in {folder}")
    requests, keys = [], []
    known = set(context.instance.get_dynamic_partitions(partitions.name))
    for name in todo:
        try:
            path = resolve(name)
            key = ingestion.partition_key_for(path)
        except (LandingFileError, validation.BatchRejected) as exc:
            refuse(name, exc)
            if remember_refused:
                seen[name] = listing[name]
            else:
                seen.pop(name, None)
            continue
        sha = versions.sha256_file(path)
        seen[name] = listing[name]
        if key not in known:
            keys.append(key)
            known.add(key)
        requests.append(request(name, key, sha))
    for name in list(seen):
        if name not in listing:
            seen.pop(name)  # moved away: a later file of that name counts as new
    return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
                        dynamic_partitions_requests=[partitions.build_add_request(keys)] if keys else [])
