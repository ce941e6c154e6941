"""Issue 13's "done when", on scikit-learn's breast-cancer data through a real Dagster instance, a real MLflow
store and a real gateway process: a replay with a known covariate shift on its last days is scored in ONE batch
call spanning several event days, monitored in one run, and the shifted days are flagged by the estimate while no
label exists; labels delivered later as a file keyed by id confirm it on those days only; the performance sensor
retrains and the new champion serves. The same replay sent to the gateway (id and event time with the rows,
labels posted to /feedback by id) gets the same verdicts per day.

The shift is the patients, not their tumours: a day of the champion's least certain cases (its true labels kept),
which a confidence-based estimate sees before labels and realized accuracy confirms after."""

import json
import os
import sys
from datetime import UTC, date, datetime, timedelta

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets import settings
from mlops_assets.cli import main
from mlops_assets.core.contracts import CHAMPION, TRIGGER
from mlops_assets.core.predictions import read_predictions, utc_now
from mlops_assets.core.waiting import wait_until
from mlops_assets.headless.sensor_runner import Runner
from tests.assets.test_real_datasets import _frame, _spec
from tests.support.servers import ServerProcess, free_port

STAMP, ID = "event_ts", "row_id"
ROWS_PER_DAY = 300  # also each day's chunk (--chunk-rows): a day is judged on its own rows here
TRAINING = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "params": {"max_iter": 50}}}}}
VERDICTS = [False, False, True, True]  # two ordinary days, then two shifted ones


@pytest.fixture
def platform(lay, monkeypatch, tmp_path, instance):
    """Breast cancer with an id and an event time, ingested and trained once: champion v1."""
    frame, target, classes = _frame("breast_cancer")
    frame.insert(0, ID, np.arange(len(frame)))
    spec = _spec("breast_cancer", frame, target, classes)
    frame.insert(1, STAMP, pd.date_range("2026-01-01", periods=len(frame), freq="h").strftime("%Y-%m-%dT%H:%M:%SZ"))
    spec_path = tmp_path / "breast_cancer.yaml"
    spec_path.write_text(yaml.safe_dump({**spec, "timestamp_column": STAMP}, sort_keys=False))
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
    monkeypatch.setenv("MLOPS_RETRAIN_ON_NEW_DATA", "false")
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")
    lay.landing.mkdir(parents=True, exist_ok=True)
    frame.to_csv(lay.landing / "bc_0.csv", index=False)
    from mlops_assets.definitions import build_definitions

    defs = build_definitions(lay)
    runner = Runner(defs, instance, lay.io / "cursors.json")
    assert all(r.success for r in runner.tick("new_data_sensor").runs)
    assert defs.resolve_job_def("training_job").execute_in_process(instance=instance, run_config=TRAINING).success
    return defs, runner, frame, target


def replay(frame: pd.DataFrame, model, spec, days: list[date], first_id: int) -> pd.DataFrame:
    """ROWS_PER_DAY rows per event day, spread over the day, fresh ids: ordinary patients on the first two days,
    the champion's least certain ones (its 8% lowest confidence, true labels kept) on the last two."""
    confidence = model.predict_proba(frame[spec.feature_names]).max(axis=1)
    hard = frame[confidence < np.quantile(confidence, 0.08)]
    parts = []
    for i, (day, shifted) in enumerate(zip(days, VERDICTS, strict=True)):
        rows = (hard if shifted else frame).sample(ROWS_PER_DAY, replace=True, random_state=i).reset_index(drop=True)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        stamps = [(start + timedelta(seconds=30 + 280 * j)).isoformat() for j in range(len(rows))]
        parts.append(rows.assign(**{STAMP: stamps}))
    out = pd.concat(parts, ignore_index=True)
    out[ID] = np.arange(first_id, first_id + len(out))
    return out


def verdicts(lay, days: list[date]) -> tuple[list[bool], list[bool], list[int]]:
    """Per day: estimated_decay, realized decayed, and labelled rows, as the monitoring assets recorded them."""

    def record(asset: str, day: date) -> dict:
        return json.loads((lay.io / asset / f"{day}.json").read_text())

    estimated = [record("estimated_performance", d)["estimated_decay"] for d in days]
    live = [record("live_performance", d) for d in days]
    return estimated, [r["decayed"] for r in live], [r["labeled_rows"] for r in live]


def monitor(days: list[date], capsys) -> None:
    assert (
        main(["monitor", "run", days[0].isoformat(), days[-1].isoformat(), "--chunk-rows", str(ROWS_PER_DAY)]) == 0
    ), capsys.readouterr()
    out = capsys.readouterr().out
    assert f"{len(days)} event day(s)" in out and "succeeded" in out


class Gateway(ServerProcess):
    """`mlops serve` on loopback in its own process, on this test's home, registry and dataset spec."""

    def __init__(self) -> None:
        port = free_port()
        env = {**os.environ, "MLOPS_GATEWAY_POLL_SECONDS": "0.2"}
        super().__init__(
            [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)], env, port, "/version", poll=0.1
        )


def serving(gateway: Gateway) -> str | None:
    return httpx.get(f"{gateway.url}/version", timeout=5).json().get("model_version")


def gateway_health(gateway: Gateway) -> str:
    return httpx.get(f"{gateway.url}/health", timeout=5).text


def test_a_shifted_replay_is_flagged_before_labels_confirmed_after_and_retrained_batch_and_online(
    platform, lay, instance, tmp_path, capsys
):
    defs, runner, frame, target = platform
    tracking, spec = defs.resources["tracking"], defs.resources["store"].spec()
    v1 = tracking.version_by_alias(CHAMPION).version
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{v1}")
    today = datetime.now(UTC).date()
    batch_days = [today - timedelta(days=12 - i) for i in range(4)]
    online_days = [today - timedelta(days=7 - i) for i in range(4)]

    # Batch: the whole replay, four event days, in one file and one scoring run.
    batch = replay(frame, model, spec, batch_days, first_id=100_000)
    lay.scoring_incoming.mkdir(parents=True, exist_ok=True)
    batch.drop(columns=target).to_csv(lay.scoring_incoming / "replay.csv", index=False)
    runs = runner.tick("scoring_sensor").runs
    assert [(r.partition, r.success) for r in runs] == [("replay", True)]
    monitor(batch_days, capsys)
    estimated, decayed, labelled = verdicts(lay, batch_days)
    assert estimated == VERDICTS and labelled == [0, 0, 0, 0]  # flagged with no label at all
    early, _, skip = runner.evaluate("performance_sensor")  # the sensor acts on the estimate, before any label
    assert [r.tags[TRIGGER] for r in early] == ["estimated"], skip

    # The labels land later, as a file keyed by id; monitoring again: realized decay on the shifted days only.
    labels = tmp_path / "labels.csv"
    batch[[ID, target]].to_csv(labels, index=False)
    assert main(["labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert f"joined:  {len(batch)} predictions" in out
    assert f"mlops monitor run {batch_days[0]} {batch_days[-1]}" in out  # the event days, not today
    monitor(batch_days, capsys)
    estimated, decayed, labelled = verdicts(lay, batch_days)
    assert decayed == VERDICTS and estimated == VERDICTS
    assert labelled == [ROWS_PER_DAY] * 4

    # Online: the same replay (fresh ids, four later event days) through a real gateway, labels by id to /feedback.
    gateway = Gateway().start()
    try:
        assert wait_until(lambda: serving(gateway) == v1, timeout=60, interval=0.2), gateway_health(gateway)
        online = replay(frame, model, spec, online_days, first_id=200_000)
        columns = [ID, STAMP, *spec.feature_names]
        for start in range(0, len(online), 100):
            part = online.iloc[start : start + 100]
            body = {"dataframe_split": {"columns": columns, "data": part[columns].to_numpy().tolist()}}
            answer = httpx.post(f"{gateway.url}/invocations", json=body, timeout=30)
            assert answer.status_code == 200 and answer.headers["X-Model-Version"] == v1, answer.text

        def logged() -> int:
            rows = read_predictions(settings.prediction_log_url(lay), utc_now().date())
            return int((rows["slot"] == CHAMPION).sum()) if len(rows) else 0

        assert wait_until(lambda: logged() == len(online), timeout=60, interval=0.2), logged()
        monitor(online_days, capsys)
        estimated, decayed, labelled = verdicts(lay, online_days)
        assert estimated == VERDICTS and labelled == [0, 0, 0, 0]  # the same verdicts before labels

        feedback = {
            "labels": [{"id": int(i), "label": int(y)} for i, y in zip(online[ID], online[target], strict=True)]
        }
        answer = httpx.post(f"{gateway.url}/feedback", json=feedback, timeout=30)
        assert answer.status_code in (200, 202), answer.text
        monitor(online_days, capsys)
        estimated, decayed, labelled = verdicts(lay, online_days)
        assert decayed == VERDICTS and estimated == VERDICTS and labelled == [ROWS_PER_DAY] * 4

        # The labelled replay lands as training data (fresh ids, its event times): the retraining the sensor asks
        # for then has something new to learn; one retraining for the episode; the new champion serves.
        batch.to_csv(lay.landing / "bc_replay.csv", index=False)
        assert [r.success for r in runner.tick("new_data_sensor").runs] == [True]
        requests, job, skip = runner.evaluate("performance_sensor")
        assert [r.tags[TRIGGER] for r in requests] == ["decay"], skip  # the labels confirm the estimate ...
        assert requests[0].run_key == early[0].run_key  # ... in the same episode: one retraining, not two
        assert "estimate_confirmed" in [a["kind"] for a in defs.resources["alerts"].history()]
        assert runner.execute("performance_sensor", requests[0].with_replaced_attrs(run_config=TRAINING), job).success
        v2 = tracking.version_by_alias(CHAMPION).version
        assert v2 != v1
        assert wait_until(lambda: serving(gateway) == v2, timeout=60, interval=0.2), gateway_health(gateway)
        answer = httpx.post(
            f"{gateway.url}/invocations",
            timeout=30,
            json={"dataframe_split": {"columns": columns, "data": online[columns].iloc[:3].to_numpy().tolist()}},
        )
        assert answer.headers["X-Model-Version"] == v2
    finally:
        gateway.stop()
    batch.iloc[:20].drop(columns=target).to_csv(lay.scoring_incoming / "after.csv", index=False)
    assert [r.success for r in runner.tick("scoring_sensor").runs] == [True]
    assert set(pd.read_parquet(lay.scoring_output / "after.parquet")["model_version"].astype(str)) == {v2}
