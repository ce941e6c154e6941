"""`mlops monitor run FROM TO` on a real Dagster instance: a replay of several event days served in one call lands
in its event days, the whole range is ONE run, each day carries its rolling chunk, and a shift late in a busy day
is flagged by that day's chunk although the day as a whole is not (the drop that went unnoticed when a shifted
half was sent in one day). `mlops monitor show --json` then has the per-window fields."""

import json
from datetime import UTC, datetime, timedelta

import mlflow
import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, RunsFilter

from mlops_assets import settings
from mlops_assets.cli import main
from mlops_assets.core.contracts import CHAMPION, TRIGGER
from mlops_assets.core.demo import make_batch
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog
from mlops_assets.core.spec import demo_spec, dump_spec
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner

STAMP = "applied_at"


@pytest.fixture
def home(lay, monkeypatch, tmp_path):
    """The demo loans with their own event timestamp column, and no retraining but the one this test asks for."""
    spec_path = tmp_path / "loans.yaml"
    spec_path.write_text(dump_spec(demo_spec().model_copy(update={"timestamp_column": STAMP})))
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
    monkeypatch.setenv("MLOPS_RETRAIN_ON_NEW_DATA", "false")
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")
    return lay


def stamped(frame: pd.DataFrame, start: datetime, step: timedelta) -> pd.DataFrame:
    return frame.assign(**{STAMP: [(start + i * step).isoformat() for i in range(len(frame))]})


def replay(lay, tracking, spec, parts: list[pd.DataFrame], labelled: dict[int, int]) -> None:
    """Score every part with the champion and log it now, in one go (a backfill): the event time is the rows'
    own; class probabilities go with each line. ``labelled``: part -> how many of its rows get a label."""
    champion = tracking.version_by_alias(CHAMPION)
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{champion.version}")
    root = settings.prediction_log_url(lay)
    predictions, feedback = JsonlLog(root, PREDICTIONS), JsonlLog(root, FEEDBACK)
    for p, part in enumerate(parts):
        for start in range(0, len(part), 100):
            rows = part.iloc[start:start + 100]
            x = rows[[STAMP, *spec.feature_names]]
            rid = f"replay-{p}-{start}"
            predictions.write({"request_id": rid, "model_name": tracking.model_name, "model_version": champion.version,
                               "slot": "champion", "columns": list(x.columns),
                               "data": x.astype(object).where(x.notna(), None).to_numpy().tolist(),
                               "outputs": model.predict(x[spec.feature_names]).tolist(),
                               "probabilities": model.predict_proba(x[spec.feature_names]).tolist(),
                               "classes": [int(c) for c in model.classes_], "latency_ms": 1.0})
            keep = max(0, min(len(rows), labelled.get(p, len(part)) - start))
            if keep:
                feedback.write({"request_id": rid, "labels": rows[spec.target].iloc[:keep].tolist()})
    predictions.close()
    feedback.close()


def monitoring_runs(instance) -> int:
    return instance.get_runs_count(RunsFilter(job_name="monitoring_job"))


def test_a_replay_over_several_event_days_is_monitored_in_one_run_and_a_late_shift_flags_the_chunk(
        home, instance, capsys):
    today = datetime.now(UTC).date()
    d1, d2, d3, d4 = (today - timedelta(days=12 - i) for i in range(4))  # d3 is a quiet day: nothing happened
    landed = stamped(make_batch(2000, seed=3), datetime(d1.year, d1.month, 1, tzinfo=UTC) - timedelta(days=60),
                     timedelta(minutes=20))
    home.landing.mkdir(parents=True, exist_ok=True)
    landed.to_csv(home.landing / "batch_history.csv", index=False)
    defs = build_definitions(home)
    assert all(r.success for r in Runner(defs, instance, home.io / "cursors.json").tick("new_data_sensor").runs)
    assert defs.resolve_job_def("training_job").execute_in_process(instance=instance).success
    tracking, spec = defs.resources["tracking"], defs.resources["store"].spec()

    def at(day, hour):
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    quiet = [stamped(make_batch(150, seed=20 + i, start_id=100_000 * (i + 1)), at(day, 9), timedelta(minutes=1))
             for i, day in enumerate((d1, d2))]
    morning = stamped(make_batch(4000, seed=30, start_id=500_000), at(d4, 0), timedelta(seconds=10))
    evening = stamped(make_batch(200, seed=31, drift=0.8, start_id=900_000), at(d4, 20), timedelta(seconds=10))
    # Served in one call, the shifted evening first: windows follow event time, not the order of serving.
    replay(home, tracking, spec, [evening, *quiet, morning], labelled={1: 60})

    before = monitoring_runs(instance)
    assert main(["monitor", "run", d1.isoformat(), d4.isoformat(), "--chunk-rows", "200", "--tolerance", "0.1"]) == 0
    out = capsys.readouterr().out
    assert monitoring_runs(instance) == before + 1  # four days, one run
    assert "4 event day(s)" in out and "succeeded" in out
    assert all(day.isoformat() in out for day in (d1, d2, d3, d4))

    def live(day):
        return json.loads((home.io / "live_performance" / f"{day}.json").read_text())

    assert [live(day)["label_coverage"]["predictions"] for day in (d1, d2, d3, d4)] == [150, 150, 0, 4200]
    assert live(d1)["label_coverage"]["text"].startswith("40% of the day's predictions have labels")
    assert live(d2)["chunk"]["first_day"] == d1.isoformat() and live(d2)["chunk"]["rows"] == 200
    assert live(d3)["chunk"]["rows"] == 200 and live(d3)["chunk"]["first_day"] == d1.isoformat()  # over the gap

    busy = live(d4)
    assert busy["window_decayed"] is False, busy["value"]  # 200 shifted of 4200: averaged away in the day
    assert busy["chunk"]["window_decayed"] is True, busy["chunk"]["value"]  # the last 200 rows: the shift
    assert busy["decayed"] is True and busy["chunk"]["first_event"].startswith(f"{d4}T20:")
    assert busy["realized"]["roc_auc"]["value"] > busy["chunk"]["realized"]["roc_auc"]["value"]
    key = AssetCheckKey(AssetKey("live_performance"), "no_performance_decay")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert check.evaluation.passed is False and "chunk" in check.evaluation.description
    requests, _, skip = Runner(defs, instance, home.io / "cursors.json").evaluate("performance_sensor")
    assert [r.tags[TRIGGER] for r in requests] == ["decay"], skip  # the sensor acts on the chunk's verdict

    assert main(["monitor", "show", d4.isoformat(), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    for window, decayed in (("daily", False), ("chunk", True)):
        w = shown[window]
        assert w["verdicts"]["decayed"] is decayed and isinstance(w["verdicts"]["estimated_decay"], bool)
        assert isinstance(w["verdicts"]["drift"], bool) and "accuracy" in w["estimated"]  # monitoring_job estimates
        assert {"accuracy", "f1_macro", "roc_auc", "log_loss", "ece"} <= set(w["realized"])
        assert all(w["realized"][m]["ci_low"] <= w["realized"][m]["value"] <= w["realized"][m]["ci_high"]
                   for m in ("accuracy", "roc_auc"))
        assert w["label_coverage"]["share"] == 1.0
    assert shown["chunk"]["rows"] == 200 and shown["chunk"]["first_day"] == d4.isoformat()
    estimated = shown["estimated_performance"]  # estimated on the very windows live_performance judged
    assert (estimated["day_estimate"]["rows"], estimated["chunk"]["rows"]) == (4200, 200)
    assert estimated["chunk"]["first_day"] == d4.isoformat() and estimated["chunk_rows"] == 200

    assert main(["monitor", "show", d4.isoformat()]) == 0
    text = capsys.readouterr().out
    assert "chunk (the last 200 rows by event time" in text and "roc_auc: " in text

    # A run that fails says so and exits 1; a range outside the partitions is refused before any run.
    assert main(["monitor", "run", d1.isoformat(), d1.isoformat(), "--chunk-rows", "0"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["monitor", "run", "2020-01-01", "2020-01-02"]) == 2
    assert "outside the monitoring partitions" in capsys.readouterr().err
