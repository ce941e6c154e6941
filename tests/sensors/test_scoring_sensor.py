"""The scoring sensor on a real Dagster instance: one run request per new or changed file in the scoring zone,
each with its own partition; names that cannot be partitions and links are refused with an alert, not skipped
silently."""

import os

from mlops_assets.core.contracts import SOURCE_FILE
from mlops_assets.headless.sensor_runner import Runner


def test_new_files_become_partitioned_runs_and_bad_ones_alerts(defs, instance, lay, tmp_path):
    runner = Runner(defs, instance, lay.io / "cursors.json")
    zone = lay.scoring_incoming
    (zone / "nightly-01.csv").write_text("application_id,age\n1,30\n", encoding="utf-8")
    (zone / "bad name!.csv").write_text("application_id,age\n1,30\n", encoding="utf-8")
    (tmp_path / "secret.csv").write_text("x\n1\n", encoding="utf-8")
    (zone / "link.csv").symlink_to(tmp_path / "secret.csv")
    (zone / ".partial.csv").write_text("still being written", encoding="utf-8")

    requests, job, _ = runner.evaluate("scoring_sensor")
    first_key = requests[0].run_key
    assert job == "scoring_job"
    assert [(r.partition_key, r.tags[SOURCE_FILE]) for r in requests] == [("nightly-01", "nightly-01.csv")]
    assert instance.get_dynamic_partitions("scoring_batches") == ["nightly-01"]
    alerts = [a["message"] for a in defs.resources["alerts"].history()]
    assert len(alerts) == 2 and any("bad name!.csv" in m for m in alerts) and any("symbolic link" in m for m in alerts)

    requests, _, skipped = runner.evaluate("scoring_sensor")
    assert requests == [] and "no new files" in skipped
    path = zone / "nightly-01.csv"
    path.write_text("application_id,age\n1,31\n", encoding="utf-8")  # corrected: scored again
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 5_000_000_000))
    again, _, _ = runner.evaluate("scoring_sensor")
    assert [r.partition_key for r in again] == ["nightly-01"] and again[0].run_key != first_key
