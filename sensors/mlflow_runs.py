"""Ends the MLflow run a Dagster run's steps shared once that Dagster run has ended, with its outcome.

No step can end it: steps run in parallel processes and none knows it is the last. dagster-mlflow's
``end_mlflow_on_run_finished`` hook ends the run when the job's last node in topological order succeeds, which
for parallel assets is any of them (the others still logging), and never when a blocking check stops the run.
So this sensor reconciles each tick: every shared run still RUNNING whose Dagster run has finished is ended
FINISHED (success), FAILED (failure) or KILLED (canceled). A daemon that was down catches up on its next tick.
"""

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from mlflow.entities import RunStatus

from resources import MlflowTracking

# How an ended Dagster run ends its MLflow run; any other status means the Dagster run is still going.
END_STATUS = {
    DagsterRunStatus.SUCCESS: RunStatus.to_string(RunStatus.FINISHED),
    DagsterRunStatus.FAILURE: RunStatus.to_string(RunStatus.FAILED),
    DagsterRunStatus.CANCELED: RunStatus.to_string(RunStatus.KILLED),
}


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ends the MLflow run shared by the steps of a monitoring run when that Dagster run has ended: "
    "FINISHED on success, FAILED on failure, KILLED when canceled.",
)
def mlflow_run_sensor(context: SensorEvaluationContext, tracking: MlflowTracking) -> SkipReason:
    return SkipReason(end_finished_runs(context.instance, tracking))


def end_finished_runs(instance: DagsterInstance, tracking: MlflowTracking) -> str:
    """End every shared MLflow run whose Dagster run has ended; says what it ended and what it left open."""
    ended, going, unknown = [], 0, []
    for run in tracking.open_shared_runs():
        dagster_run = instance.get_run_by_id(run.dagster_run_id)
        if dagster_run is None:
            unknown.append(run.mlflow_run_id)  # another Dagster instance's, or a deleted run: not ours to end
            continue
        status = END_STATUS.get(dagster_run.status)
        if status is None:
            going += 1
            continue
        tracking.end_shared_run(run.mlflow_run_id, status)
        ended.append(f"{run.mlflow_run_id} {status} (Dagster run {run.dagster_run_id} {dagster_run.status.value})")
    parts = [f"ended {len(ended)} MLflow run(s): {'; '.join(ended)}" if ended else "no shared MLflow run to end"]
    if going:
        parts.append(f"{going} still open while their Dagster runs go on")
    if unknown:
        parts.append(f"{len(unknown)} left open, their Dagster runs unknown to this instance: {', '.join(unknown)}")
    return "; ".join(parts)
