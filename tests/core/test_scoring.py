"""Batch scoring as pure logic: streamed in chunks it gives what one whole-file predict gives, and rows that
break the rules are reported by their file line, never scored (scikit-learn's wine data, a platform pipeline)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from mlops_assets.core.probabilities import Predictor
from mlops_assets.core.scoring import ScoringRejected, score_file
from mlops_assets.core.spec import infer_spec
from mlops_assets.core.training import build_pipeline


@pytest.fixture(scope="module")
def wine():
    frame = datasets.load_wine(as_frame=True).frame.rename(columns={"od280/od315_of_diluted_wines": "od280"})
    frame.insert(0, "row_id", np.arange(len(frame)) + 1000)
    frame.insert(1, "event_ts", pd.date_range("2026-03-01", periods=len(frame), freq="h"))
    spec = infer_spec(frame, name="wine", target="target", id_column="row_id", timestamp_column="event_ts")
    model = build_pipeline(spec, "logistic_regression", {}, seed=0).fit(frame[spec.feature_names], frame["target"])
    return frame, spec, Predictor.of(model)


def _score(tmp_path, spec, predictor, path, **kw):
    lines: list[dict] = []
    result = score_file(path, spec, predictor, model_name="wine-model", model_version="3", batch_id="night-1",
                        output=tmp_path / "out" / "night-1.parquet", report_dir=tmp_path / "reports",
                        log=lines.extend, **kw)
    return result, lines


def test_streamed_scoring_equals_one_whole_file_predict(tmp_path, wine):
    frame, spec, predictor = wine
    path = tmp_path / "night-1.csv"
    frame.drop(columns="target").to_csv(path, index=False)
    result, lines = _score(tmp_path, spec, predictor, path, chunk_rows=17, line_rows=10)
    assert (result.rows, result.scored, result.rejected, result.report) == (178, 178, 0, None)
    out = pd.read_parquet(result.output)
    x = frame[spec.feature_names]
    assert out["prediction"].tolist() == predictor.model.predict(x).tolist()
    np.testing.assert_allclose(out[["proba_0", "proba_1", "proba_2"]], predictor.model.predict_proba(x))
    assert out["row_id"].tolist() == frame["row_id"].tolist() and out["row"].tolist() == list(range(178))
    assert (out["event_ts"] == frame["event_ts"]).all()
    assert set(out["model_version"]) == {"3"} and set(out["batch_id"]) == {"night-1"}

    assert max(len(line["data"]) for line in lines) == 10 and sum(len(line["data"]) for line in lines) == 178
    assert [line["request_id"] for line in lines[:3]] == ["night-1:0", "night-1:1", "night-1:2"]
    assert {line["slot"] for line in lines} == {"batch"} and lines[0]["classes"] == [0, 1, 2]
    assert lines[0]["columns"][:2] == ["row_id", "event_ts"]
    assert [o for line in lines for o in line["outputs"]] == out["prediction"].tolist()
    json.dumps(lines, default=str)  # what the log writer does


def test_bad_rows_are_reported_by_file_line_and_the_rest_scored(tmp_path, wine):
    frame, spec, predictor = wine
    text = frame.drop(columns="target").astype(object)
    text.loc[5, "alcohol"] = "strong"  # not a number: file line 7 (line 1 is the header)
    text.loc[40, "magnesium"] = -3.0  # below the minimum 0: line 42
    text.loc[99, "event_ts"] = None  # no event time: line 101
    text["target"] = frame["target"]  # labels in a file to score are ignored, and said so
    path = tmp_path / "night-1.csv"
    text.to_csv(path, index=False)
    result, lines = _score(tmp_path, spec, predictor, path, chunk_rows=30)
    assert (result.rows, result.scored, result.rejected) == (178, 175, 3)
    assert result.ignored_columns == ["target"]
    report = json.loads(result.report.read_text())
    by_column = {f["column"]: f for f in report["failures"]}
    assert by_column["alcohol"]["samples"] == [{"line": 7, "value": "strong"}]
    assert by_column["alcohol"]["rule"] == "not a number"
    assert by_column["magnesium"]["samples"] == [{"line": 42, "value": "-3.0"}]
    assert "below the minimum" in by_column["magnesium"]["rule"]
    assert by_column["event_ts"]["samples"][0]["line"] == 101
    rejected = pd.read_csv(report["rejected_rows"])
    assert rejected["row"].tolist() == [5, 40, 99]
    out = pd.read_parquet(result.output)
    assert len(out) == 175 and not {1005, 1040, 1099} & set(out["row_id"])
    assert sum(len(line["data"]) for line in lines) == 175


def test_a_file_without_a_feature_is_rejected_whole_with_a_report(tmp_path, wine):
    frame, spec, predictor = wine
    path = tmp_path / "night-1.csv"
    frame.drop(columns=["target", "alcohol"]).to_csv(path, index=False)
    with pytest.raises(ScoringRejected) as caught:
        _score(tmp_path, spec, predictor, path)
    assert "alcohol" in str(caught.value) and caught.value.report_path.exists()
    assert not (tmp_path / "out" / "night-1.parquet").exists()
