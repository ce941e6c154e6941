"""Prediction-log retention as an asset: each run deletes the served days beyond the limit and records what went
(days, files, rows) as a materialization, so the Dagster UI keeps the audit of every deletion."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from mlops_assets.core import retention
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS
from mlops_assets.retries import retry_transient
from resources import PredictionLog


@asset(group_name="monitoring", description="Served days of the prediction and feedback logs beyond "
       "MLOPS_PREDICTION_RETENTION_DAYS, deleted; the monitoring records computed from them stay.")
@retry_transient
def prediction_log_retention(context: AssetExecutionContext, prediction_log: PredictionLog) -> MaterializeResult:
    keep = prediction_log.retention_days
    today = datetime.now(UTC).date()
    served = prediction_log.served_days()
    for name in served.not_days:
        context.log.warning(f"left alone: {name} under {prediction_log.root} is not a date=YYYY-MM-DD folder")
    doomed = retention.days_to_delete(served.all_days(), today, keep)
    if keep is None:
        context.log.info("MLOPS_PREDICTION_RETENTION_DAYS is unset: every served day is kept")
    removed = prediction_log.delete_days(doomed)
    if removed.failed:
        context.log.error(f"could not delete every log of {', '.join(map(str, removed.failed))} (see the errors "
                          "above); the next run tries again")
    context.log.info(f"deleted {len(removed.days)} served day(s), {sum(removed.files.values())} file(s)")
    return MaterializeResult(metadata={
        "retention_days": keep if keep is not None else "unset (every day kept)",
        "oldest_day_kept": str(retention.cutoff(today, keep)) if keep is not None else "all",
        "days_removed": len(removed.days),
        "removed": MetadataValue.json([str(d) for d in removed.days]),
        "files_removed": sum(removed.files.values()),
        "prediction_rows_removed": removed.rows[PREDICTIONS],
        "feedback_rows_removed": removed.rows[FEEDBACK],
        "days_kept": len(served.all_days()) - len(removed.days),
        "failed_days": MetadataValue.json([str(d) for d in removed.failed]),
    })
