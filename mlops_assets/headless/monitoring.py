"""Monitoring over a range of event days in one run, in this process, on the platform's Dagster instance: what
``mlops monitor run`` launches. A range run is what a single-run backfill is (the monitoring assets declare
``BackfillPolicy.single_run()``): one run, the range in its partition-range tags, so 300 days are one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dagster import DagsterInstance, Definitions
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from mlops_assets.partitions import daily_partitions

MONITORING_JOB = "monitoring_job"


@dataclass(frozen=True)
class MonitoringOutcome:
    run_id: str | None
    success: bool
    days: list[str]
    errors: list[str] = field(default_factory=list)
    error: str | None = None  # why the run was not started at all


def monitoring_days(first: date, last: date) -> list[str] | str:
    """The partition keys from ``first`` to ``last``, or why the range is not one the partitions hold."""
    keys = daily_partitions.get_partition_keys()
    if first.isoformat() not in keys or last.isoformat() not in keys:
        return (f"the range {first} .. {last} is outside the monitoring partitions ({keys[0]} .. {keys[-1]}): "
                "event days before the partitions' start or after tomorrow have no partition")
    return keys[keys.index(first.isoformat()):keys.index(last.isoformat()) + 1]


def run_monitoring(defs: Definitions, instance: DagsterInstance, first: date, last: date, *,
                   tags: dict[str, str], ops: dict[str, Any] | None = None,
                   log_level: str = "CRITICAL") -> MonitoringOutcome:
    """Execute ``monitoring_job`` for every day of the range in one run and wait for it; ``ops`` is the assets'
    run config (their window and tolerance)."""
    days = monitoring_days(first, last)
    if isinstance(days, str):
        return MonitoringOutcome(None, False, [], error=days)
    job = defs.resolve_job_def(MONITORING_JOB)
    run_tags = {**tags, ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]}
    result = job.execute_in_process(
        instance=instance, tags=run_tags, raise_on_error=False,
        run_config={"ops": ops or {}, "loggers": {"console": {"config": {"log_level": log_level}}}})
    errors = [event.step_failure_data.error.message.strip().splitlines()[0]
              for event in result.all_events if event.is_step_failure and event.step_failure_data.error]
    # No daemon ticks `mlflow_run_sensor` here: the run's shared MLflow run is ended now, as the run ended.
    defs.resources["tracking"].end_finished_runs(instance)
    return MonitoringOutcome(result.run_id, result.success, days, errors)
