"""Live metrics from delivered labels: labels arrive as JSON, so their type need not match the model's classes."""

import pandas as pd

from mlops_assets.core.deployment import slot_stats
from mlops_assets.core.monitoring import labels_match, live_metrics


def test_numeric_labels_match_whatever_type_they_arrive_as():
    predictions = pd.Series([1, 0, 1, 2], dtype=object)
    labels = pd.Series([1.0, "0", 0, 2], dtype=object)
    assert labels_match(predictions, labels).tolist() == [True, True, False, True]
    live = live_metrics(pd.DataFrame({"prediction": predictions, "label": labels}), "classification")
    assert live.labeled_rows == 4 and live.value == 0.75


def test_text_labels_compare_as_text():
    predictions = pd.Series(["sun", "rain", "snow", "1"], dtype=object)
    labels = pd.Series(["sun", "fog", "snow", "one"], dtype=object)
    assert labels_match(predictions, labels).tolist() == [True, False, True, False]


def test_canary_accuracy_counts_a_float_label_for_an_integer_class():
    rows = pd.DataFrame({"request_id": ["a", "b", "c"], "latency_ms": [1.0, 2.0, 3.0],
                         "prediction": [1, 0, 1], "label": [1.0, 0.0, 0.0]})
    stats = slot_stats(rows)
    assert stats.labeled == 3 and stats.correct == 2
