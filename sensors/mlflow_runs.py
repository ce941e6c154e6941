"""Ends the MLflow run a Dagster run's steps shared once that Dagster run has ended, with its outcome.

No step can end it: steps run in parallel processes and none knows it is the last. dagster-mlflow's
``end_mlflow_on_run_finished`` hook ends the run when the job's last node in topological order succeeds, which
for parallel assets is any of them (the others still logging), and never when a blocking check stops the run.
So this sensor reconciles each tick: every shared run still RUNNING whose Dagster run has finished is ended
FINISHED (success), FAILED (failure) or KILLED (canceled). A daemon that was down catches up on its next tick.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from resources import MlflowTracking


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ends the MLflow run shared by the steps of a monitoring run when that Dagster run has ended: "
    "FINISHED on success, FAILED on failure, KILLED when canceled.",
)
def mlflow_run_sensor(context: SensorEvaluationContext, tracking: MlflowTracking) -> SkipReason:
    return SkipReason(tracking.end_finished_runs(context.instance))
