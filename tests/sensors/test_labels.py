"""The labels sensor on a real Dagster instance: a label file dropped in the labels zone is delivered, its
labels reach the monitoring day of their (90 days old) predictions, unknown ids are reported, bad files are
rejected with the reason."""

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import AssetKey

from mlops_assets.headless.sensor_runner import Runner
from tests.support.prediction_log import log_request


def test_a_label_file_in_the_zone_is_delivered_reported_and_reevaluates_its_day(defs, instance, lay):
    served = datetime.now(UTC) - timedelta(days=90)
    log_request(lay.home, served, request_id="batch-7", slot="batch", rows=[[101, 30.0], [102, 41.0]],
                outputs=[0, 1], latency_ms=0.0)
    pd.DataFrame({"application_id": [101, 102, 999], "default": [0, 0, 1]}).to_csv(
        lay.labels_incoming / "outcomes.csv", index=False)
    pd.DataFrame({"application_id": [101]}).to_csv(lay.labels_incoming / "no_target.csv", index=False)

    tick = Runner(defs, instance, lay.io / "cursors.json").tick("labels_sensor")

    day = served.date().isoformat()
    assert [(r.job, r.success, r.tags["dagster/asset_partition_range_start"]) for r in tick.runs] == \
        [("monitoring_job", True, day)]
    live = json.loads((lay.io / "live_performance" / f"{day}.json").read_text())
    assert live["labeled_rows"] == 2 and live["value"] == 0.5  # predicted 0 and 1, both were 0
    event = instance.get_latest_materialization_event(AssetKey("delivered_labels"))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert (meta["file"], meta["labels"], meta["joined"], meta["unknown_ids"]) == ("outcomes.csv", 3, 2, 1)
    assert meta["sample_unknown_ids"] == ["999"] and meta["days_reached"] == [day]
    assert list(lay.labels_incoming.iterdir()) == []
    report = json.loads(next(lay.labels_delivered.glob("*outcomes.csv.report.json")).read_text())
    assert (report["joined"], report["unknown"]) == (2, 1)
    rejected = json.loads(next(lay.labels_rejected.glob("*no_target.csv.report.json")).read_text())
    assert "no column 'default'" in rejected["reason"]
    alerts = [json.loads(line)["kind"] for line in (lay.home / "alerts.jsonl").read_text().splitlines()]
    assert alerts.count("labels_rejected") == 1 and alerts.count("unknown_label_ids") == 1
