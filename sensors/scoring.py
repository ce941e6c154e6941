"""The scoring sensor: each new (or changed) file in the scoring zone becomes a batch-scoring run of its own
partition, scored by the champion of the moment."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, sensor

from mlops_assets.core import contracts
from mlops_assets.jobs import scoring_job
from mlops_assets.partitions import scoring_partitions
from resources import Alerter, ScoringZone
from sensors.common import folder_run_requests


@sensor(job=scoring_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Turns each new (or changed) file in the scoring zone into a batch_predictions run of its "
                    "partition. The same bytes under the same name are never scored twice by the sensor; "
                    "re-score on purpose with a backfill (a pinned version in the run config).")
def scoring_sensor(context: SensorEvaluationContext, scoring: ScoringZone, alerts: Alerter):
    def refuse(name: str, exc: Exception) -> None:
        context.log.warning(f"not scoring {name}: {exc}")
        alerts.alert("scoring_refused", f"{name} in the scoring zone is not scored: {exc}", file=name)

    def score(name: str, key: str, sha: str) -> RunRequest:
        return RunRequest(partition_key=key, run_key=f"score:{name}:{sha[:16]}",
                          tags={contracts.SOURCE_FILE: name, contracts.SOURCE_SHA256: sha})

    # a refused file stays where it is: it is tried again only once it changes
    return folder_run_requests(context, scoring.incoming, scoring.settled_files(), scoring_partitions,
                               scoring.resolve, refuse, score, remember_refused=True)
