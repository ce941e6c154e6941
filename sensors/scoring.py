"""The scoring sensor: each new (or changed) file in the scoring zone becomes a batch-scoring run of its own
partition, scored by the champion of the moment."""

import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from mlops_assets.core import contracts, ingestion, validation, versions
from mlops_assets.jobs import scoring_job
from mlops_assets.partitions import scoring_partitions
from resources import Alerter, LandingFileError, ScoringZone
from sensors.common import folder_changes


@sensor(job=scoring_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING,
        description="Turns each new (or changed) file in the scoring zone into a batch_predictions run of its "
                    "partition. The same bytes under the same name are never scored twice by the sensor; "
                    "re-score on purpose with a backfill (a pinned version in the run config).")
def scoring_sensor(context: SensorEvaluationContext, scoring: ScoringZone, alerts: Alerter):
    seen, listing, todo = folder_changes(context.cursor, scoring.settled_files())
    if not todo:
        return SkipReason(f"no new files in {scoring.incoming}")
    requests, keys = [], []
    known = set(context.instance.get_dynamic_partitions(scoring_partitions.name))
    for name in todo:
        seen[name] = listing[name]
        try:
            path = scoring.resolve(name)
            key = ingestion.partition_key_for(path)
        except (LandingFileError, validation.BatchRejected) as exc:
            context.log.warning(f"not scoring {name}: {exc}")
            alerts.alert("scoring_refused", f"{name} in the scoring zone is not scored: {exc}", file=name)
            continue
        sha = versions.sha256_file(path)
        if key not in known:
            keys.append(key)
            known.add(key)
        requests.append(RunRequest(partition_key=key, run_key=f"score:{name}:{sha[:16]}",
                                   tags={contracts.SOURCE_FILE: name, contracts.SOURCE_SHA256: sha}))
    for name in list(seen):
        if name not in listing:
            seen.pop(name)
    return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
                        dynamic_partitions_requests=[scoring_partitions.build_add_request(keys)] if keys else [])
