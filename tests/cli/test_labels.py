"""``mlops labels FILE`` in-process against a temporary home: how many labels joined, which ids are unknown,
and a clear one-line refusal of a file without the id or target column."""

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlops_assets.cli import main
from mlops_assets.core.predictions import read_id_labels
from tests.support.prediction_log import log_request


def test_labels_reports_joined_and_unknown_ids_and_refuses_bad_files(lay, tmp_path, capsys):
    served = datetime.now(UTC) - timedelta(days=3)
    log_request(lay.home, served, request_id="r1", slot="champion", rows=[[7, 30.0], [8, 52.0]], outputs=[0, 1],
                latency_ms=1.0)
    labels = tmp_path / "outcomes.parquet"
    pd.DataFrame({"application_id": [7, 8, 70, 71], "default": [0, 1, 1, 0],
                  "label_timestamp": ["2026-01-02T00:00:00Z"] * 4}).to_parquet(labels)

    assert main(["labels", str(labels)]) == 0
    out = capsys.readouterr().out
    day = served.date().isoformat()
    assert "delivered 4 labels by 'application_id'" in out
    assert f"joined:  2 predictions served on 1 day(s), {day} .. {day}" in out
    assert "unknown: 2 ids never predicted (e.g. 70, 71)" in out
    assert [line["label_ts"][0] for line in read_id_labels(lay.home)] == ["2026-01-02T00:00:00+00:00"]

    assert main(["labels", str(labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["joined"], report["unknown"], report["sample_unknown"]) == (2, 2, ["70", "71"])

    bad = tmp_path / "no_ids.csv"
    pd.DataFrame({"loan": [7], "default": [0]}).to_csv(bad, index=False)
    assert main(["labels", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}: no column 'application_id' (the spec's id_column)" in err
    assert main(["labels", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
