"""The traffic sensor by event day on a real Dagster instance: the past days a replay fills (served today, dated
in the past by the data's own timestamp) are each asked for once, newest first and a bounded number per tick,
consecutive days in one run; today's traffic still waits for `drift_every_rows` new rows."""

from datetime import UTC, date, datetime, timedelta

import yaml
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from mlops_assets import settings
from mlops_assets.core.demo import make_batch
from mlops_assets.core.predictions import PREDICTIONS, JsonlLog
from mlops_assets.core.spec import demo_spec
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner
from sensors.monitoring import MONITOR_DAYS_PER_TICK


def _serve(lay, rows_per_day: dict[date, int]) -> None:
    """Log rows now (as a replay or batch scoring does), each dated by its ``event_time``."""
    spec = demo_spec()
    log = JsonlLog(settings.prediction_log_url(lay), PREDICTIONS)
    for day, n in rows_per_day.items():
        x = make_batch(n, seed=n)[spec.feature_names]
        log.write(
            {
                "request_id": f"replay-{day}-{n}",
                "model_name": "m",
                "model_version": "1",
                "slot": "batch",
                "columns": [*x.columns, "event_time"],
                "outputs": [0] * n,
                "latency_ms": 0.0,
                "data": [
                    [*row, f"{day}T08:00:00+00:00"]
                    for row in x.astype(object).where(x.notna(), None).to_numpy().tolist()
                ],
            }
        )
    log.close()


def _days(tags: dict[str, str], partition: str | None) -> tuple[str, str]:
    """The first and last event day of a monitoring run: its partition range, or its one partition."""
    return tags.get(ASSET_PARTITION_RANGE_START_TAG, partition), tags.get(ASSET_PARTITION_RANGE_END_TAG, partition)


def test_replayed_past_days_are_monitored_once_newest_first_bounded_per_tick(lay, instance, tmp_path, monkeypatch):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(demo_spec().model_copy(update={"timestamp_column": "event_time"}).model_dump(mode="json")),
        encoding="utf-8",
    )
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    monkeypatch.setenv("MLOPS_DRIFT_EVERY_ROWS", "200")
    defs = build_definitions(lay)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    today = datetime.now(UTC).date()
    ago = [today - timedelta(days=n) for n in range(MONITOR_DAYS_PER_TICK + 4, 0, -1)]  # consecutive past days
    lone, outside = today - timedelta(days=MONITOR_DAYS_PER_TICK + 20), date(2025, 12, 31)
    _serve(lay, {**{day: 10 for day in ago}, lone: 10, outside: 10, today: 150})

    first, job, _ = runner.evaluate("drift_sensor")
    newest = ago[-MONITOR_DAYS_PER_TICK:]
    assert job is None and [_days(r.tags, r.partition_key) for r in first] == [(str(newest[0]), str(newest[-1]))]
    assert first[0].run_key == f"monitor:{newest[0]}..{newest[-1]}:{10 * MONITOR_DAYS_PER_TICK}"

    second = runner.tick("drift_sensor")  # the older days, a day apart from the rest in its own run; executed
    assert sorted((r.job, r.success, _days(r.tags, r.partition)) for r in second.runs) == [
        ("monitoring_job", True, (str(lone), str(lone))),
        ("monitoring_job", True, (str(ago[0]), str(ago[3]))),
    ]

    quiet = runner.tick("drift_sensor")
    assert quiet.runs == [] and quiet.skip_message == "150 predictions today; no new evidence"

    _serve(lay, {today: 100, ago[-1]: 5})  # today passes the threshold; a few late rows of a day asked for wait
    (today_run,) = runner.evaluate("drift_sensor")[0]
    assert (today_run.partition_key, today_run.run_key) == (str(today), f"monitor:{today}:250")
