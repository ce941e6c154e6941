"""Which served days retention deletes (pure), and the deletion itself on a local and an fsspec root."""

import json
from datetime import date, timedelta
from pathlib import Path

import fsspec
import pytest

from mlops_assets import settings
from mlops_assets.core.retention import cutoff, days_to_delete, delete_days, served_days

TODAY = date(2026, 3, 1)  # a month boundary: the limit counts calendar days, not day numbers


def test_days_older_than_the_limit_go_and_today_always_stays():
    days = [TODAY - timedelta(days=k) for k in (0, 1, 2, 3, 10, 400)]
    assert days_to_delete(days, TODAY, 3) == [TODAY - timedelta(days=400), TODAY - timedelta(days=10),
                                              TODAY - timedelta(days=3)]
    assert cutoff(TODAY, 3) == date(2026, 2, 27)
    assert days_to_delete(days, TODAY, 1) == sorted(days[1:])
    assert days_to_delete(days, TODAY, None) == []  # unset: keep everything
    assert days_to_delete([TODAY + timedelta(days=1)], TODAY, 1) == []  # a writer's clock ahead: not "old"
    with pytest.raises(ValueError, match="at least 1"):
        days_to_delete(days, TODAY, 0)


def test_the_setting_is_a_positive_whole_number_or_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLOPS_PREDICTION_RETENTION_DAYS", raising=False)
    assert settings.prediction_retention_days() is None
    monkeypatch.setenv("MLOPS_PREDICTION_RETENTION_DAYS", "30")
    assert settings.prediction_retention_days() == 30
    for bad in ("0", "-3", "thirty", "1.5"):
        monkeypatch.setenv("MLOPS_PREDICTION_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="MLOPS_PREDICTION_RETENTION_DAYS"):
            settings.prediction_retention_days()


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_deleting_days_counts_files_and_rows_on_any_fsspec_root(kind: str, tmp_path: Path):
    root = str(tmp_path) if kind == "local" else "memory://retention-test"
    fs, base = fsspec.core.url_to_fs(root)
    old, kept = TODAY - timedelta(days=9), TODAY

    def put(path: str, *lines: dict) -> None:
        fs.makedirs(f"{base}/{path.rsplit('/', 1)[0]}", exist_ok=True)
        fs.pipe_file(f"{base}/{path}", "".join(json.dumps(line) + "\n" for line in lines).encode())

    put(f"predictions/date={old}/a.jsonl", {"data": [[1], [2], [3]]}, {"data": [[4]]})
    put(f"predictions/date={old}/b.jsonl", {"data": [[5]]})
    put(f"predictions/date={kept}/a.jsonl", {"data": [[6]]})
    put(f"feedback/date={old}/a.jsonl", {"labels": [0, 1]})
    put("predictions/notes/readme.jsonl", {"data": []})
    served = served_days(root)
    assert served.all_days() == {old, kept} and served.not_days == ["predictions/notes"]

    removed = delete_days(root, days_to_delete(served.all_days(), TODAY, 2))
    assert removed.days == [old] and removed.failed == []
    assert removed.files == {"predictions": 2, "feedback": 1}
    assert removed.rows == {"predictions": 5, "feedback": 2}
    assert served_days(root).all_days() == {kept} and fs.exists(f"{base}/predictions/notes/readme.jsonl")
    if kind == "memory":
        fs.rm(base, recursive=True)
