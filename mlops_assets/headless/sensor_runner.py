"""Headless driver: evaluates the platform's sensors and runs what they request, in-process through Dagster.

This is what the daemon does, done in the foreground for ``mlops demo``, ``mlops ingest`` and tests: the
same sensor definitions, the same jobs, the same instance (so the runs show in the Dagster UI). Runs are
tagged with the sensor name and run key exactly as the daemon tags them, so a run key fulfilled here is
never run again by the daemon, and the reverse.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    RunsFilter,
    build_sensor_context,
)
from dagster._core.definitions.dynamic_partitions_request import (
    AddDynamicPartitionsRequest,
    DeleteDynamicPartitionsRequest,
)
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG


@dataclass
class RunOutcome:
    sensor: str
    job: str
    run_id: str | None
    run_key: str | None
    partition: str | None
    success: bool
    tags: dict[str, str] = field(default_factory=dict)
    deduplicated: bool = False


@dataclass
class TickResult:
    sensor: str
    runs: list[RunOutcome]
    skip_message: str | None


class Runner:
    """Evaluates sensors against an instance and executes their run requests in this process."""

    def __init__(self, defs: Definitions, instance: DagsterInstance, cursor_file: Path,
                 log_level: str = "DEBUG") -> None:
        self.defs = defs
        self.instance = instance
        self.cursor_file = cursor_file
        self.log_level = log_level

    def _cursors(self) -> dict[str, str]:
        if self.cursor_file.exists():
            return json.loads(self.cursor_file.read_text(encoding="utf-8"))
        return {}

    def _save_cursor(self, sensor: str, cursor: str | None) -> None:
        cursors = self._cursors()
        if cursor is None:
            cursors.pop(sensor, None)
        else:
            cursors[sensor] = cursor
        self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cursor_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cursors, indent=2), encoding="utf-8")
        tmp.replace(self.cursor_file)

    def evaluate(self, sensor_name: str) -> tuple[list[RunRequest], str | None, str | None]:
        """One sensor evaluation, as a daemon tick makes it: partitions added, cursor saved, nothing run yet.

        Returns the run requests, the job they default to and the skip message.
        """
        sensor_def = self.defs.get_repository_def().get_sensor_def(sensor_name)
        # An instance *ref* (not the instance) makes Dagster resolve partitioned run requests against the
        # dynamic partitions the same tick adds, exactly as in the daemon.
        with build_sensor_context(instance_ref=self.instance.get_ref(), cursor=self._cursors().get(sensor_name),
                                  repository_def=self.defs.get_repository_def(), resources=self.defs.resources,
                                  sensor_name=sensor_name) as context:
            data = sensor_def.evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            if isinstance(request, AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            elif isinstance(request, DeleteDynamicPartitionsRequest):
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        for event in data.asset_events or []:  # what a sensor reports without a run (e.g. delivered labels)
            self.instance.report_runless_asset_event(event)
        self._save_cursor(sensor_name, data.cursor)
        default_job = sensor_def.job_name if sensor_def.has_jobs and len(sensor_def.jobs) == 1 else None
        return list(data.run_requests or []), default_job, data.skip_message

    def tick(self, sensor_name: str) -> TickResult:
        requests, default_job, skip_message = self.evaluate(sensor_name)
        runs = [self.execute(sensor_name, request, default_job) for request in requests]
        return TickResult(sensor_name, runs, skip_message)

    def execute(self, sensor_name: str, request: RunRequest, default_job: str | None) -> RunOutcome:
        job_name = request.job_name or default_job
        if job_name is None:
            raise ValueError(f"sensor {sensor_name} returned a run request without a job")
        run_tags = {**request.tags, SENSOR_NAME_TAG: sensor_name}
        if request.run_key:
            run_tags[RUN_KEY_TAG] = request.run_key
            existing = self.instance.get_runs(filters=RunsFilter(
                tags={SENSOR_NAME_TAG: sensor_name, RUN_KEY_TAG: request.run_key}), limit=1)
            if existing:
                return RunOutcome(sensor_name, job_name, existing[0].run_id, request.run_key,
                                  request.partition_key, existing[0].status == DagsterRunStatus.SUCCESS,
                                  dict(request.tags), deduplicated=True)
        job_def = self.defs.resolve_job_def(job_name)
        result = job_def.execute_in_process(
            instance=self.instance,
            partition_key=request.partition_key,
            run_config={**(request.run_config or {}),
                        "loggers": {"console": {"config": {"log_level": self.log_level}}}},
            tags=run_tags,
            raise_on_error=False,
        )
        return RunOutcome(sensor_name, job_name, result.run_id, request.run_key, request.partition_key,
                          result.success, dict(request.tags))
