"""What the sensors decide: the new-data run key, the retraining episodes, the event days due for monitoring."""

from mlops_assets.core import triggers


def test_a_file_is_tried_again_when_its_bytes_or_the_spec_change():
    first = triggers.ingest_run_key("b.csv", "a" * 64, "spec1")
    assert triggers.ingest_run_key("b.csv", "a" * 64, "spec1") == first  # same bytes, same spec: done
    assert triggers.ingest_run_key("b.csv", "b" * 64, "spec1") != first  # corrected bytes
    assert triggers.ingest_run_key("b.csv", "a" * 64, "spec2") != first  # corrected spec


def test_an_estimated_decay_shares_the_realized_decay_episode_key():
    estimated = {"estimated_decay": True, "champion_version": "3"}
    assert triggers.estimated_decay_retrain_key(estimated, "3") == "decay:v3"
    assert triggers.decay_retrain_key({"decayed": True, "champion_version": "3"}, "3") == "decay:v3"
    assert triggers.estimated_decay_retrain_key(estimated, "4") is None  # about an older champion: stale
    assert triggers.estimated_decay_retrain_key({"estimated_decay": False, "champion_version": "3"}, "3") is None
    assert triggers.estimated_decay_retrain_key(estimated, None) is None


def test_labels_confirm_or_clear_an_estimate_only_once_judged():
    judged = {"champion_version": "3", "labeled_rows": 500, "offline_baseline": 0.95}
    assert triggers.estimate_outcome({**judged, "decayed": True}, "3", min_rows=100) == "confirmed"
    assert triggers.estimate_outcome({**judged, "decayed": False}, "3", min_rows=100) == "cleared"
    assert triggers.estimate_outcome({**judged, "decayed": False, "labeled_rows": 40}, "3", min_rows=100) is None
    assert triggers.estimate_outcome({**judged, "decayed": False}, "4", min_rows=100) is None
    assert triggers.estimate_outcome({**judged, "offline_baseline": float("nan")}, "3", min_rows=100) is None


def test_event_days_due_newest_first_and_consecutive_days_in_one_run():
    rows = {"2026-03-09": 150, "2026-03-08": 10, "2026-03-07": 10, "2026-03-05": 400, "2026-03-04": 7}
    asked = {"2026-03-05": 100, "2026-03-04": 2}
    # today under the threshold waits; past days never asked for are due however few their rows; a day asked
    # for is due again only after `every` more rows
    assert triggers.monitoring_days_due(rows, asked, "2026-03-09", every=200) == [
        "2026-03-08", "2026-03-07", "2026-03-05"]
    assert triggers.monitoring_days_due({"2026-03-09": 250}, {"2026-03-09": 40}, "2026-03-09", every=200) == [
        "2026-03-09"]
    assert triggers.day_runs(["2026-03-08", "2026-03-07", "2026-03-05", "2026-02-28", "2026-03-01"]) == [
        ("2026-02-28", "2026-03-01"), ("2026-03-05", "2026-03-05"), ("2026-03-07", "2026-03-08")]
