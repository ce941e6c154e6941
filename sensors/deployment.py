"""The canary sensor: compares the canary slot with the champion on live traffic and decides by itself."""

from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from mlops_assets.core.contracts import CANARY, CANARY_VERSION, CHAMPION, TRIGGER, Trigger
from mlops_assets.core.deployment import canary_decision, slot_stats
from mlops_assets.jobs import canary_job
from resources import ContinuousTraining, MlflowTracking, PredictionLog


@sensor(job=canary_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="While a model is in the canary slot, compares its error rate, latency and (once labels "
                    "arrive) accuracy with the champion's over today's traffic; promotes or rolls back.")
def canary_sensor(context: SensorEvaluationContext, tracking: MlflowTracking, prediction_log: PredictionLog,
                  continuous_training: ContinuousTraining):
    canary, champion = tracking.version_by_alias(CANARY), tracking.version_by_alias(CHAMPION)
    if canary is None or champion is None:
        return SkipReason("no canary release in progress")
    day = datetime.now(UTC).date()
    rows = prediction_log.predictions(day)
    if not rows.empty:
        labels = prediction_log.feedback_for(day)
        rows = rows.merge(labels[["request_id", "row", "label"]], on=["request_id", "row"], how="left")
    champ = rows[(rows["slot"] == CHAMPION) & (rows["model_version"] == champion.version)] if not rows.empty else rows
    cand = rows[(rows["slot"] != CHAMPION) & (rows["model_version"] == canary.version)] if not rows.empty else rows
    policy = continuous_training
    decision = canary_decision(
        slot_stats(champ), slot_stats(cand), min_requests=policy.canary_min_requests,
        min_labeled=policy.canary_min_labeled, max_error_rate_increase=policy.canary_max_error_rate_increase,
        max_latency_ratio=policy.canary_max_latency_ratio, max_accuracy_drop=policy.canary_max_accuracy_drop)
    if decision.action == "wait":
        return SkipReason(f"canary v{canary.version}: waiting ({'; '.join(decision.reasons)})")
    return RunRequest(
        run_key=f"canary:v{canary.version}:{decision.action}",
        run_config={"ops": {"canary_release": {"config": {"action": decision.action, "version": canary.version,
                                                          "evidence": decision.reasons}}}},
        tags={TRIGGER: Trigger.CANARY, CANARY_VERSION: canary.version},
    )
