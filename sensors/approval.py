"""The approval sensor: releases a version a person approved (``mlops registry approve``) with the strategy its
training run was configured with. Only acts when something was approved, so it costs one registry read a tick
and nothing changes for teams that leave require_approval off."""

import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from mlops_assets.core.contracts import (
    APPROVAL_RELEASE_TAG,
    APPROVAL_TAG,
    CANARY,
    CHAMPION,
    TRIGGER,
    ApprovalStatus,
    Trigger,
)
from mlops_assets.jobs import approved_release_job
from resources import MlflowTracking


@sensor(
    job=approved_release_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches the release of the newest approved version that is newer than the champion and "
    "not serving yet (once per version: the run key is the version).",
)
def approval_sensor(context: SensorEvaluationContext, tracking: MlflowTracking):
    approved = [v for v in tracking.versions() if v.tags.get(APPROVAL_TAG) == ApprovalStatus.APPROVED]
    if not approved:
        return SkipReason("no approved version waiting for release")
    champion, canary = tracking.version_by_alias(CHAMPION), tracking.version_by_alias(CANARY)
    serving = {v.version for v in (champion, canary) if v is not None}
    newest = approved[-1]
    if newest.version in serving:
        return SkipReason(f"approved v{newest.version} is already serving")
    if champion is not None and int(newest.version) < int(champion.version):
        return SkipReason(
            f"approved v{newest.version} is older than champion v{champion.version}: not released "
            "(roll back or redeploy it explicitly)"
        )
    release = json.loads(newest.tags.get(APPROVAL_RELEASE_TAG) or "{}")
    context.log.info(f"releasing approved v{newest.version} ({release.get('strategy', 'blue_green')})")
    return RunRequest(
        run_key=f"approved:v{newest.version}",
        run_config={"ops": {"approved_release": {"config": {"version": newest.version, **release}}}},
        tags={TRIGGER: Trigger.APPROVAL},
    )
