"""Sensors and schedule of the monitoring stage: fresh drift and performance evaluations, and retraining
when either finds the champion out of step with the world."""

import json
from datetime import UTC, datetime

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    build_schedule_from_partitioned_job,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from mlops_assets.asset_metadata import latest_metadata
from mlops_assets.core import triggers
from mlops_assets.core.contracts import CHAMPION, CHAMPION_VERSION, TRIGGER, RunKind, Trigger
from mlops_assets.jobs import monitoring_job, training_job
from mlops_assets.monitoring import LivePerformanceConfig
from mlops_assets.partitions import daily_partitions
from resources import Alerter, ContinuousTraining, DataStore, MlflowTracking, PredictionLog
from sensors.common import runs_in_flight, seconds_since_last_training

MONITOR_DAYS_PER_TICK = 31  # event days one tick asks for at most, newest first; the older ones on later ticks


def _cooling_down(context: SensorEvaluationContext, continuous_training: ContinuousTraining) -> bool:
    age = seconds_since_last_training(context.instance)
    return age is not None and age < continuous_training.retrain_cooldown_seconds


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


@sensor(jobs=[monitoring_job, training_job], minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Asks for the drift report and live performance of every event day that received new "
                    "predictions (today's as its traffic grows, past days a replay or batch scoring filled), at most "
                    f"{MONITOR_DAYS_PER_TICK} days a tick; when the newest drift report finds drift against the "
                    "serving champion, launches one retraining for that drift episode.")
def drift_sensor(context: SensorEvaluationContext, tracking: MlflowTracking, store: DataStore,
                 prediction_log: PredictionLog, continuous_training: ContinuousTraining):
    state = json.loads(context.cursor) if context.cursor else {}
    today = _today()
    rows = prediction_log.rows_per_event_day(store.spec().timestamp_column)
    asked = _asked(state, rows, today)
    requests, notes = [], ["a monitoring run is in flight"]
    if not runs_in_flight(context.instance, RunKind.MONITORING):
        requests, notes = _monitoring_requests(rows, asked, today, continuous_training.drift_every_rows)
        if notes:
            context.log.warning("; ".join(notes))
    champion = tracking.version_by_alias(CHAMPION)
    key = triggers.drift_retrain_key(latest_metadata(context.instance, "drift_report"),
                                     champion.version if champion else None)
    if key and continuous_training.retrain_on_drift and not runs_in_flight(context.instance, RunKind.TRAINING) \
            and not _cooling_down(context, continuous_training):
        requests.append(RunRequest(job_name=training_job.name, run_key=key,
                                   tags={TRIGGER: Trigger.DRIFT, CHAMPION_VERSION: champion.version}))
    cursor = json.dumps({"days": asked}, sort_keys=True)
    if not requests:
        return SensorResult(skip_reason="; ".join([f"{rows.get(today, 0)} predictions today; no new evidence",
                                                   *notes]), cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)


def _asked(state: dict, rows: dict[str, int], today: str) -> dict[str, int]:
    """Event day -> rows when its monitoring was last asked for, for the days still in the log. A cursor of the
    earlier form (today's count only) takes the past days as handled: they were monitored by the schedule or
    `mlops monitor run`, and are not all asked for again at once."""
    if "days" in state:
        return {day: n for day, n in state["days"].items() if day in rows}
    asked = {day: n for day, n in rows.items() if state and day != today}
    if state.get("day") == today:
        asked[today] = state["rows"]
    return asked


def _monitoring_requests(rows: dict[str, int], asked: dict[str, int], today: str,
                         every: int) -> tuple[list[RunRequest], list[str]]:
    """The monitoring runs due (newest days first, at most ``MONITOR_DAYS_PER_TICK`` days, consecutive days in one
    run), ``asked`` updated for them, and what was left out and why."""
    notes = []
    due = triggers.monitoring_days_due(rows, asked, today, every)
    outside = [day for day in due if not daily_partitions.has_partition_key(day)]
    if outside:  # recorded as asked, so said again only when they grow by `every` rows
        notes.append(f"not monitored: {len(outside)} event day(s) outside the monitoring partitions "
                     f"({daily_partitions.get_first_partition_key()} to {daily_partitions.get_last_partition_key()}),"
                     f" e.g. {', '.join(outside[:3])}")
        asked.update({day: rows[day] for day in outside})
    due = [day for day in due if day not in outside]
    if len(due) > MONITOR_DAYS_PER_TICK:
        notes.append(f"{len(due) - MONITOR_DAYS_PER_TICK} older event day(s) wait for the next ticks")
    due = due[:MONITOR_DAYS_PER_TICK]
    asked.update({day: rows[day] for day in due})
    return [_monitoring_request(first, last, rows) for first, last in triggers.day_runs(due)], notes


def _monitoring_request(first: str, last: str, rows: dict[str, int]) -> RunRequest:
    """One monitoring run over consecutive event days; its run key names the days and their rows, so the same
    evidence is never evaluated twice."""
    if first == last:
        return RunRequest(job_name=monitoring_job.name, partition_key=first, run_key=f"monitor:{first}:{rows[first]}",
                          tags={TRIGGER: Trigger.TRAFFIC})
    total = sum(n for day, n in rows.items() if first <= day <= last)
    return RunRequest(job_name=monitoring_job.name, run_key=f"monitor:{first}..{last}:{total}",
                      tags={TRIGGER: Trigger.TRAFFIC, ASSET_PARTITION_RANGE_START_TAG: first,
                            ASSET_PARTITION_RANGE_END_TAG: last})


@sensor(job=training_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Launches one retraining when live performance (from delivered labels) has decayed "
                    "significantly below the champion's offline holdout metric, or earlier, when the performance "
                    "estimated before labels (CBPE/DLE) has (trigger `estimated`); the realized figures later "
                    "confirm or clear the estimate, in the tick's message and the alerts.")
def performance_sensor(context: SensorEvaluationContext, tracking: MlflowTracking,
                       continuous_training: ContinuousTraining, alerts: Alerter):
    if not continuous_training.retrain_on_decay:
        return SkipReason("retraining on decay is switched off (ContinuousTraining.retrain_on_decay)")
    state = json.loads(context.cursor) if context.cursor else {}
    champion = tracking.version_by_alias(CHAMPION)
    version = champion.version if champion else None
    live = latest_metadata(context.instance, "live_performance")
    note = _follow_estimate(state, live, alerts)
    key, trigger = triggers.decay_retrain_key(live, version), Trigger.DECAY
    if key is None:
        key, trigger = triggers.estimated_decay_retrain_key(
            latest_metadata(context.instance, "estimated_performance"), version), Trigger.ESTIMATED
    if key is None:
        return SensorResult(skip_reason=f"no significant decay of the serving champion{note}", cursor=json.dumps(state))
    if runs_in_flight(context.instance, RunKind.TRAINING):
        return SensorResult(skip_reason=f"a training run is in flight{note}", cursor=json.dumps(state))
    if _cooling_down(context, continuous_training):
        return SensorResult(skip_reason=f"decay seen, but the last training run is younger than "
                                        f"{continuous_training.retrain_cooldown_seconds:.0f}s (cooldown){note}",
                            cursor=json.dumps(state))
    if trigger == Trigger.ESTIMATED:
        state["estimate"] = {"version": version, "outcome": None}  # labels will confirm or clear it
    return SensorResult(run_requests=[RunRequest(run_key=key, tags={TRIGGER: trigger, CHAMPION_VERSION: version})],
                        cursor=json.dumps(state))


def _follow_estimate(state: dict, live: dict, alerts: Alerter) -> str:
    """Once an estimated decay was acted on, the realized figures for that champion confirm or clear it: said once,
    in an alert and in the tick's message."""
    pending = state.get("estimate")
    if not pending or pending.get("outcome"):
        return ""
    outcome = triggers.estimate_outcome(live, pending["version"], min_rows=LivePerformanceConfig().min_labeled_rows)
    if outcome is None:
        return f"; the estimated decay of v{pending['version']} awaits its labels"
    pending["outcome"] = outcome
    message = (f"the estimated decay of v{pending['version']} is {outcome} by the realized "
               f"{live.get('metric')} {live.get('value'):.4f} on {live.get('labeled_rows')} labelled rows")
    alerts.alert(f"estimate_{outcome}", message, severity="warning" if outcome == "confirmed" else "info")
    return f"; {message}"


champion_reevaluation_schedule = build_schedule_from_partitioned_job(
    monitoring_job, name="champion_reevaluation_schedule", hour_of_day=0, minute_of_hour=30,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-evaluates yesterday's complete window every night (drift and live performance).",
)
