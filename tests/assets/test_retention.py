"""Prediction-log retention through Dagster (issue 15, item 7): the gateway's real log writer, a real instance,
the daily schedule and the job it launches; the deletion is recorded as a materialization."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, RunRequest, SkipReason, build_schedule_context

from mlops_assets import settings
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog


def _serve(root: str, days_ago: list[int], kind: str, **record: object) -> None:
    """Lines as the gateway writes them, stamped on past days (the writer files each line under its day)."""
    log = JsonlLog(root, kind)
    today = datetime.now(UTC)
    for k in days_ago:
        log.write({"request_id": f"r{k}", "ts": (today - timedelta(days=k)).isoformat(), **record})
    log.close()


@pytest.fixture
def retained_defs(lay: settings.Layout, monkeypatch: pytest.MonkeyPatch) -> Definitions:
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_PREDICTION_RETENTION_DAYS", "3")
    return build_definitions(lay)


def test_the_schedule_deletes_old_served_days_and_records_what_went(
        lay: settings.Layout, retained_defs: Definitions, instance: DagsterInstance):
    root = settings.prediction_log_url(lay)
    _serve(root, [0, 1, 2, 5, 9], PREDICTIONS, columns=["x"], data=[[1.0], [2.0]], outputs=[0, 1])
    _serve(root, [1, 9], FEEDBACK, labels=[1, 0])
    history = lay.io / "drift_report" / "already-computed.json"  # monitoring records computed earlier
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text("{}")

    schedule = retained_defs.resolve_schedule_def("prediction_retention_schedule")
    resources = {"prediction_log": retained_defs.resources["prediction_log"]}
    request = schedule(build_schedule_context(instance=instance, resources=resources,
                                              scheduled_execution_time=datetime.now(UTC)))
    assert isinstance(request, RunRequest)
    result = retained_defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance,
                                                                                 tags=request.tags)
    assert result.success

    today = datetime.now(UTC).date()
    left = sorted(p.name for p in (Path(root) / PREDICTIONS).iterdir())
    assert left == [f"date={today - timedelta(days=k)}" for k in (2, 1, 0)]
    assert [p.name for p in (Path(root) / FEEDBACK).iterdir()] == [f"date={today - timedelta(days=1)}"]
    assert history.exists()

    event = instance.get_latest_materialization_event(AssetKey("prediction_log_retention"))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert meta["retention_days"] == 3 and meta["days_removed"] == 2 and meta["days_kept"] == 3
    assert meta["removed"] == [str(today - timedelta(days=k)) for k in (9, 5)]
    assert meta["files_removed"] == 3  # two prediction files, one feedback file
    assert meta["prediction_rows_removed"] == 4 and meta["feedback_rows_removed"] == 2
    assert meta["failed_days"] == []


def test_without_a_limit_the_schedule_skips_and_says_why(lay: settings.Layout, defs: Definitions,
                                                          instance: DagsterInstance):
    schedule = defs.resolve_schedule_def("prediction_retention_schedule")
    resources = {"prediction_log": defs.resources["prediction_log"]}
    skip = schedule(build_schedule_context(instance=instance, resources=resources))
    assert isinstance(skip, SkipReason) and "MLOPS_PREDICTION_RETENTION_DAYS is unset" in skip.skip_message
