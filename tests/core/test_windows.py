"""Monitoring windows in event time: rows land in the day of their own timestamp whatever day served them, the
event-day index is kept incrementally, and each day's chunk reaches back over quiet days."""

import json
from datetime import date, timedelta

import pandas as pd

from mlops_assets.core.event_time import INDEX, EventLog, bucket
from mlops_assets.core.predictions import PREDICTIONS, JsonlLog
from mlops_assets.core.windows import ChunkRule, chunk_event_days, describe_chunk, take_chunk

SERVED = "2026-06-10T12:00:00+00:00"


def test_rows_take_their_own_timestamp_and_fall_back_to_serving_time_only_without_one():
    frame = pd.DataFrame({"ts": [SERVED] * 4,
                          "event_at": ["2026-06-01T23:30:00+02:00", "2026-06-02 10:00:00", None, "not a time"]})
    out = bucket(frame, "event_at")
    # 23:30 at +02:00 is 21:30 UTC on the 1st; a naive time is read as UTC; missing/unreadable: serving day
    assert out["event_day"].tolist() == ["2026-06-01", "2026-06-02", "2026-06-10", "2026-06-10"]
    assert out["event_time_fallback"].tolist() == [False, False, True, True]
    assert bucket(frame, None)["event_day"].tolist() == ["2026-06-10"] * 4  # no timestamp column in the spec


def _replay(root, days: int, rows_per_day: int, *, served: str = SERVED, start: date = date(2026, 5, 1)) -> None:
    """A backfill: ``days`` event days of rows, all served at the same moment."""
    log = JsonlLog(root, PREDICTIONS)
    for d in range(days):
        day = start + timedelta(days=d)
        data = [[f"{day}T{h % 24:02d}:00:00Z", float(h)] for h in range(rows_per_day)]
        log.write({"request_id": f"replay-{day}", "ts": served, "model_version": "1", "slot": "champion",
                   "columns": ["event_at", "x"], "data": data, "outputs": [0] * rows_per_day})
    log.close()


def test_a_replay_of_five_event_days_served_in_one_day_lands_in_five_days(tmp_path):
    _replay(tmp_path, days=5, rows_per_day=7)
    assert [p.name for p in (tmp_path / PREDICTIONS).iterdir()] == ["date=2026-06-10"]  # one serving day
    events = EventLog(str(tmp_path), "event_at")
    assert events.rows_per_event_day() == {f"2026-05-0{d}": 7 for d in range(1, 6)}
    rows = events.rows(["2026-05-03"])
    assert len(rows) == 7 and set(rows["event_day"]) == {"2026-05-03"} and set(rows["served_day"]) == {"2026-06-10"}
    assert rows["x"].tolist() == [float(h) for h in range(7)]  # in event-time order

    entry = json.loads((tmp_path / INDEX / "date=2026-06-10.json").read_text())
    assert entry["days"]["2026-05-05"] == 7 and entry["fallback_rows"] == 0


def test_the_index_is_rebuilt_only_for_serving_days_whose_files_changed(tmp_path):
    _replay(tmp_path, days=2, rows_per_day=3)
    EventLog(str(tmp_path), "event_at").index()
    path = tmp_path / INDEX / "date=2026-06-10.json"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "days": {"2026-05-01": 999}}))  # a marker: read back, not rebuilt
    assert EventLog(str(tmp_path), "event_at").rows_per_event_day() == {"2026-05-01": 999}
    _replay(tmp_path, days=1, rows_per_day=2, start=date(2026, 5, 9))  # more lines: the signature changes
    assert EventLog(str(tmp_path), "event_at").rows_per_event_day() == {"2026-05-01": 3, "2026-05-02": 3,
                                                                       "2026-05-09": 2}
    path.write_text("{torn")  # a writer cut short: rebuilt, not an error
    assert EventLog(str(tmp_path), "event_at").rows_per_event_day()["2026-05-09"] == 2


def test_a_chunk_reaches_back_over_quiet_days_until_it_has_its_rows():
    day = date(2026, 3, 20)
    counts = {"2026-03-20": 165, "2026-03-17": 3000, "2026-03-10": 5000, "2026-03-01": 9000}
    rule = ChunkRule(chunk_rows=5000)
    assert chunk_event_days(day, counts, rule) == ["2026-03-10", "2026-03-17", "2026-03-20"]
    assert chunk_event_days(day, counts, ChunkRule(chunk_rows=100)) == ["2026-03-20"]
    assert chunk_event_days(day, counts, ChunkRule(chunk_days=4)) == ["2026-03-17", "2026-03-20"]
    # bounded: never further back than max_lookback_days, and a short chunk says so
    assert chunk_event_days(day, counts, ChunkRule(chunk_rows=5000, max_lookback_days=5)) == ["2026-03-17",
                                                                                              "2026-03-20"]
    rows = pd.DataFrame({"event_day": ["2026-03-17"] * 3 + ["2026-03-20"] * 2,
                         "event_ts": pd.to_datetime(["2026-03-17T01:00Z"] * 3 + ["2026-03-20T01:00Z"] * 2),
                         "v": range(5)})
    chunk = take_chunk(rows, ChunkRule(chunk_rows=4))
    assert chunk["v"].tolist() == [1, 2, 3, 4]  # the newest rows
    info = describe_chunk(day, take_chunk(rows, ChunkRule(chunk_rows=10)), ChunkRule(chunk_rows=10))
    assert info["short"] and info["rows"] == 5 and info["first_day"] == "2026-03-17" and "fewer than 10" in info["note"]


def test_a_shift_in_the_second_half_of_a_busy_day_is_the_whole_chunk():
    """The last N rows by event time: a busy day's late shift is not averaged with its morning."""
    rows = pd.DataFrame({"event_day": ["2026-03-20"] * 1000,
                         "event_ts": pd.date_range("2026-03-20", periods=1000, freq="min", tz="UTC"),
                         "shifted": [False] * 700 + [True] * 300})
    assert take_chunk(rows, ChunkRule(chunk_rows=300))["shifted"].all()
