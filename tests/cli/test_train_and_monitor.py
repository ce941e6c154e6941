"""`mlops train` and `mlops monitor show` against a temporary home: the common path with no Dagster commands."""

import json
from datetime import UTC, datetime

import pytest

from mlops_assets.cli import main
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.demo import make_batch, write_batches
from mlops_assets.headless.sensor_runner import Runner
from tests.support.prediction_log import serve


@pytest.fixture
def cli_home(lay, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
    monkeypatch.setenv("MLOPS_RETRAIN_ON_NEW_DATA", "false")
    return lay


def test_train_reports_the_gate_and_the_champion_then_monitor_shows_the_day(cli_home, defs, instance, capsys):
    write_batches(cli_home.landing, batches=2, rows=600, seed=5)
    Runner(defs, instance, cli_home.io / "sensor_cursors.json").tick("new_data_sensor")

    assert main(["train"]) == 0
    out = capsys.readouterr().out
    tracking = defs.resources["tracking"]
    champion = tracking.version_by_alias(CHAMPION)
    assert champion is not None
    assert "quality gate: PASSED" in out
    assert f"champion: v{champion.version}" in out
    assert "dataset version " in out and "2 batches, 1200 rows" in out

    assert main(["train"]) == 0  # same data, config and code: nothing to retrain, champion unchanged
    again = capsys.readouterr().out
    assert "nothing to retrain" in again and f"champion: v{champion.version}" in again

    today = datetime.now(UTC).date().isoformat()
    assert main(["monitor", "show", today]) == 1  # nothing computed yet: says so, exit 1
    assert "drift: not computed for this day yet" in capsys.readouterr().out

    spec = defs.resources["store"].spec()
    serve(cli_home, tracking, spec, make_batch(400, seed=9, drift=0.8, start_id=50_000), with_labels=True)
    result = defs.resolve_job_def("monitoring_job").execute_in_process(instance=instance, partition_key=today)
    assert result.success

    assert main(["monitor", "show", today]) == 0
    shown = capsys.readouterr().out
    assert f"monitoring for {today}" in shown
    assert "column" in shown and "verdict" in shown and "Dataset:" in shown  # the per-column drift table
    assert "live performance: accuracy" in shown and "on 400 labelled rows" in shown
    assert "decay: " in shown and "interval [" in shown

    assert main(["monitor", "show", today, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["live_performance"]["labeled_rows"] == 400
    assert {c["column"] for c in payload["drift_report"]["report"]["columns"]} == set(spec.feature_names)


def test_monitor_show_refuses_a_malformed_day(cli_home, capsys):
    assert main(["monitor", "show", "yesterday"]) == 2
    assert "use YYYY-MM-DD" in capsys.readouterr().err
