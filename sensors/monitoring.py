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

from mlops_assets.asset_metadata import latest_metadata
from mlops_assets.core import triggers
from mlops_assets.core.contracts import CHAMPION, CHAMPION_VERSION, TRIGGER, RunKind, Trigger
from mlops_assets.jobs import monitoring_job, training_job
from mlops_assets.monitoring import LivePerformanceConfig
from resources import Alerter, ContinuousTraining, MlflowTracking, PredictionLog
from sensors.common import runs_in_flight, seconds_since_last_training


def _cooling_down(context: SensorEvaluationContext, continuous_training: ContinuousTraining) -> bool:
    age = seconds_since_last_training(context.instance)
    return age is not None and age < continuous_training.retrain_cooldown_seconds


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


@sensor(jobs=[monitoring_job, training_job], minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Asks for today's drift report and live performance whenever enough new predictions were "
                    "served; when the newest drift report finds drift against the serving champion, launches "
                    "one retraining for that drift episode.")
def drift_sensor(context: SensorEvaluationContext, tracking: MlflowTracking, prediction_log: PredictionLog,
                 continuous_training: ContinuousTraining):
    state = json.loads(context.cursor) if context.cursor else {}
    today = _today()
    requests = []
    rows = prediction_log.count(datetime.fromisoformat(today).date())
    last = state.get("rows", 0) if state.get("day") == today else 0
    if triggers.monitoring_due(rows, last, continuous_training.drift_every_rows) \
            and not runs_in_flight(context.instance, RunKind.MONITORING):
        requests.append(RunRequest(job_name=monitoring_job.name, partition_key=today,
                                   run_key=f"monitor:{today}:{rows}", tags={TRIGGER: Trigger.TRAFFIC}))
        state = {"day": today, "rows": rows}
    champion = tracking.version_by_alias(CHAMPION)
    key = triggers.drift_retrain_key(latest_metadata(context.instance, "drift_report"),
                                     champion.version if champion else None)
    if key and continuous_training.retrain_on_drift and not runs_in_flight(context.instance, RunKind.TRAINING) \
            and not _cooling_down(context, continuous_training):
        requests.append(RunRequest(job_name=training_job.name, run_key=key,
                                   tags={TRIGGER: Trigger.DRIFT, CHAMPION_VERSION: champion.version}))
    if not requests:
        return SensorResult(skip_reason=f"{rows} predictions today; no new evidence", cursor=json.dumps(state))
    return SensorResult(run_requests=requests, cursor=json.dumps(state))


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
