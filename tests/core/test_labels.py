"""Labels by business key: the id-keyed store, its join with online and batch predictions, and label files."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core import labels
from mlops_assets.core.monitoring import join_feedback
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog
from mlops_assets.core.spec import demo_spec
from resources.prediction_log import PredictionLog


def _line(rid: str, ts: str, ids: list, slot: str = "champion", outputs: list | None = None) -> dict:
    return {"request_id": rid, "ts": ts, "model_name": "m", "model_version": "1", "slot": slot,
            "columns": ["loan_id", "x"], "data": [[i, 0.5] for i in ids], "outputs": outputs or [1] * len(ids),
            "latency_ms": 1.0}


def test_latest_prediction_of_an_id_takes_its_label_and_unknown_ids_are_counted():
    lines = [_line("r1", "2026-01-01T10:00:00+00:00", [1, 2, 3]),
             _line("b7", "2026-01-05T00:00:00+00:00", [2.0], slot="batch"),  # 2 scored again, in a batch
             {**_line("r9", "2026-01-06T00:00:00+00:00", [3]), "error": "ValueError: bad"}]  # failed: no prediction
    store = labels.id_labels([
        {"ts": "t1", "id_column": "loan_id", "ids": [1, "2", 3, 99], "labels": [0, 0, 0, 1], "source": "a"},
        {"ts": "t2", "id_column": "loan_id", "ids": [1], "labels": [1], "source": "b"},  # a correction
        {"ts": "t3", "request_id": "r1", "labels": [1, 1, 1]},  # by request id: not this store's
    ])
    wanted = {c: set(k) for c, k in store.items()}
    joined = labels.join_by_id(store, labels.latest_predictions(lines, wanted))
    got = {(r.request_id, r.row): (r.label, r.day) for r in joined.labels.itertuples()}
    assert got == {("r1", 0): (1, "2026-01-01"), ("b7", 0): (0, "2026-01-05"), ("r1", 2): (0, "2026-01-01")}
    assert joined.unknown == ["99"] and joined.summary()["unknown"] == 1
    assert joined.days() == ["2026-01-01", "2026-01-05"]
    assert joined.event_days() == joined.days()  # no event time logged: the serving day is the monitoring day


def test_labels_of_a_replay_reach_its_event_days_not_the_day_it_was_served():
    """A replay of three event days served in one call: the labels say which monitoring days to re-evaluate."""
    stamps = ["2025-12-01T08:00:00Z", "2025-12-02 23:59:59", None]  # naive is UTC; none: the serving day
    line = {**_line("replay:0", "2026-01-10T09:00:00+00:00", [1, 2, 3]), "columns": ["loan_id", "x", "applied_at"],
            "data": [[i, 0.5, ts] for i, ts in zip([1, 2, 3], stamps, strict=True)]}
    store = {"loan_id": {"1": 0, "2": 1, "3": 1}}
    joined = labels.join_by_id(store, labels.latest_predictions([line], {"loan_id": {"1", "2", "3"}}, "applied_at"))
    assert joined.days() == ["2026-01-10"]
    assert joined.event_days() == ["2025-12-01", "2025-12-02", "2026-01-10"]
    assert joined.summary()["event_days"] == joined.event_days()


def test_a_label_90_days_late_reaches_its_predictions_day_next_to_labels_by_request_id(tmp_path: Path):
    now = datetime.now(UTC)
    served = now - timedelta(days=90)
    preds = JsonlLog(tmp_path, PREDICTIONS)
    preds.write(_line("old", served.isoformat(), [501, 502], outputs=[1, 0]))
    preds.write(_line("today", now.isoformat(), [503], outputs=[1]))
    preds.close()
    feedback = JsonlLog(tmp_path, FEEDBACK)
    feedback.write({"request_id": "today", "labels": [0]})
    feedback.close()
    log = PredictionLog(root=str(tmp_path))
    report = log.deliver(pd.DataFrame({"id": [501, 777], "label": [0, 1]}), "loan_id", "file:late.csv")
    assert (report.joined, report.unknown, report.days()) == (1, ["777"], [served.date().isoformat()])

    old_day = PredictionLog(root=str(tmp_path))  # a fresh monitoring run
    day = join_feedback(old_day.predictions(served.date()), old_day.feedback_for(served.date()))
    assert day[["request_id", "row", "prediction", "label"]].values.tolist() == [["old", 0, 1, 0]]
    today = join_feedback(old_day.predictions(now.date()), old_day.feedback_for(now.date()))
    assert today[["request_id", "label"]].values.tolist() == [["today", 0]]


@pytest.mark.parametrize("columns,missing", [(["application_id"], "default"), (["default"], "application_id")])
def test_a_label_file_without_the_id_or_target_column_is_refused_by_name(tmp_path: Path, columns: list[str],
                                                                        missing: str):
    path = tmp_path / "labels.csv"
    pd.DataFrame({c: [1, 2] for c in columns}).to_csv(path, index=False)
    with pytest.raises(labels.LabelFileError, match=rf"labels.csv: no column '{missing}'"):
        labels.read_label_file(str(path), demo_spec())
    pd.DataFrame({"application_id": [1, None], "default": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(labels.LabelFileError, match="1 row.* without a value in column 'application_id'"):
        labels.read_label_file(str(path), demo_spec())
