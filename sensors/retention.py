"""The daily schedule of prediction-log retention; it skips, saying why, when no limit is configured."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from mlops_assets.jobs import retention_job
from resources import PredictionLog


@schedule(job=retention_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
          name="prediction_retention_schedule", default_status=DefaultScheduleStatus.RUNNING,
          description="Every night: delete served days of the prediction and feedback logs beyond the limit.")
def prediction_retention_schedule(context: ScheduleEvaluationContext, prediction_log: PredictionLog):
    if prediction_log.retention_days is None:
        return SkipReason("MLOPS_PREDICTION_RETENTION_DAYS is unset: every served day of the prediction log is kept")
    return RunRequest(run_key=f"retention-{context.scheduled_execution_time.date().isoformat()}")
