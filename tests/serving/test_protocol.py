"""The scoring protocol as pure functions: every payload form MLflow accepts, each way a request is bad."""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types import Schema, TensorSpec

from mlops_assets.serving import protocol

SCHEMA = protocol.InputSchema(("age", "region"), numeric=frozenset({"age"}))
JSON = "application/json"


def _decode(payload: object, content_type: str = JSON, schema: protocol.InputSchema = SCHEMA) -> pd.DataFrame:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return protocol.decode(body, content_type, schema).frame()


def _refused(payload: object, content_type: str = JSON, schema: protocol.InputSchema = SCHEMA,
             **kwargs: int) -> protocol.ProtocolError:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.decode(body, content_type, schema, **kwargs)
    return err.value


@pytest.mark.parametrize("payload", [
    {"dataframe_split": {"columns": ["age", "region"], "data": [[30, "north"], [40, None]]}},
    {"dataframe_split": {"index": [7, 8], "columns": ["region", "age"], "data": [["north", 30], [None, 40]]}},
    {"dataframe_records": [{"age": 30, "region": "north"}, {"age": 40, "region": None}]},
    {"dataframe_records": [{"age": 30, "region": "north"}, {"age": 40}]},  # an absent key is null (pandas)
    {"instances": [{"age": 30, "region": "north"}, {"age": 40, "region": None}]},
    {"inputs": {"age": [30, 40], "region": ["north", None]}},
    {"inputs": [{"age": "30", "region": "north"}, {"age": 40.0, "region": float("nan")}]},
    {"dataframe_split": {"columns": ["age", "region"], "data": [[30, "north"], [40, None]]},
     "params": {"k": 1}},
])
def test_every_json_form_gives_the_same_rows(payload: dict):
    frame = _decode(payload)
    assert list(frame.columns) == ["age", "region"]
    assert frame["age"].dtype == np.float64 and frame["age"].tolist() == [30.0, 40.0]
    assert frame["region"].tolist() == ["north", None]


def test_an_object_of_scalars_is_one_row():
    frame = _decode({"inputs": {"age": 5, "region": "east"}})
    assert frame.to_dict("records") == [{"age": 5.0, "region": "east"}]


def test_csv_keeps_text_columns_as_text_and_ignores_extra_columns():
    frame = _decode(b"region,age,extra\n007,51,1\n,,2\n", "text/csv")
    assert list(frame.columns) == ["age", "region"]
    assert frame["region"].tolist() == ["007", None]  # read as text, not the number 7; empty is null
    assert frame["age"].tolist()[0] == 51.0 and math.isnan(frame["age"].tolist()[1])


def test_parquet_and_content_type_parameters():
    buf = io.BytesIO()
    pd.DataFrame({"age": [1.5], "region": ["west"]}).to_parquet(buf)
    assert _decode(buf.getvalue(), protocol.PARQUET).to_dict("records") == [{"age": 1.5, "region": "west"}]
    payload = {"inputs": {"age": [1], "region": ["x"]}}
    assert len(_decode(payload, "application/json; charset=UTF-8")) == 1
    assert _refused(payload, "application/json; charset=latin-1").status == 415
    assert "format=pandas-split" in _refused(payload, "application/json; format=pandas-split").message


def test_missing_values_and_coercions():
    frame = _decode({"dataframe_records": [{"age": None, "region": 12}, {"age": "1e3", "region": True}]})
    assert math.isnan(frame["age"][0]) and frame["age"][1] == 1000.0
    assert frame["region"].tolist() == ["12", "True"]


def test_optional_columns_may_be_absent():
    schema = protocol.InputSchema(("age", "region"), numeric=frozenset({"age"}),
                                  optional=frozenset({"region"}))
    frame = _decode({"dataframe_records": [{"age": 3}]}, schema=schema)
    assert frame["region"].tolist() == [None]


@pytest.mark.parametrize("payload,content_type,status,fragment", [
    (b"{not json", JSON, 400, "not valid JSON"),
    (b"\xff\xfe\x00", JSON, 400, "not valid JSON"),
    (b"[" * 100_000, JSON, 400, "not valid JSON"),
    ([1, 2], JSON, 400, "must be an object"),
    ({"columns": ["age"]}, JSON, 400, "exactly one of the fields"),
    ({"dataframe_split": {"data": [[1]]}, "instances": []}, JSON, 400,
     "got ['dataframe_split', 'instances']"),
    ({"dataframe_split": [[1, "a"]]}, JSON, 400, "'dataframe_split' must be an object"),
    ({"dataframe_split": {"data": [[1, "a"]]}}, JSON, 400, "'dataframe_split.columns' must be a list"),
    ({"dataframe_split": {"columns": ["age", "region"], "data": [[1, "a"], [2]]}}, JSON, 400,
     "row 1 must be a list of 2 values"),
    ({"dataframe_split": {"columns": ["age"], "data": [[1]], "orient": "x"}}, JSON, 400, "unexpected field"),
    ({"dataframe_records": {"age": [1]}}, JSON, 400, "'dataframe_records' must be a list"),
    ({"dataframe_records": [{"age": 1, "region": "a"}, [2, "b"]]}, JSON, 400, "row 1 is [2, 'b']"),
    ({"instances": [[1, "a"]]}, JSON, 400, "named columns"),
    ({"inputs": {"age": [1, 2], "region": ["a"]}}, JSON, 400, "same length"),
    ({"dataframe_records": []}, JSON, 400, "no rows"),
    ({"dataframe_records": [{"region": "north"}]}, JSON, 400, "missing required column(s) ['age']"),
    ({"dataframe_records": [{"age": 1, "region": "n"}, {"age": "old", "region": "s"}]}, JSON, 400,
     "column 'age' must be numeric; row 1 has 'old'"),
    ({"dataframe_records": [{"age": [1], "region": "n"}]}, JSON, 400, "column 'age' must be numeric; row 0"),
    ({"dataframe_records": [{"age": 1, "region": {"a": 1}}]}, JSON, 400, "column 'region' must be a string"),
    (b"age,region\n1,a\nold,b\n", "text/csv", 400, "column 'age' must be numeric; row 1 has 'old'"),
    (b"", "text/csv", 400, "not valid CSV"),
    (b"PAR1garbage", protocol.PARQUET, 400, "not valid Parquet"),
    (b"age\n1\n", "application/xml", 415, "unsupported content type 'application/xml'"),
])
def test_bad_input_names_the_problem(payload: object, content_type: str, status: int, fragment: str):
    err = _refused(payload, content_type)
    assert err.status == status and fragment in err.message, err.message


def test_oversize_bodies_are_refused_with_413():
    payload = {"dataframe_records": [{"age": 1, "region": "x" * 200}]}
    assert _refused(payload, max_bytes=100).status == 413
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.check_size(10 * 1024 * 1024 + 1, 10 * 1024 * 1024)
    assert err.value.status == 413 and "exceeds the limit" in err.value.message
    protocol.check_size(100, 100)


def test_schema_from_an_mlflow_signature():
    frame = pd.DataFrame({"x": [1.5], "n": [3], "flag": [True], "when": pd.to_datetime(["2024-01-02"]),
                          "colour": ["red"]})
    schema = protocol.InputSchema.from_signature(infer_signature(frame))
    assert schema.columns == ("x", "n", "flag", "when", "colour")
    assert dict(schema.kinds) == {"x": "float", "n": "float", "flag": "bool", "when": "datetime",
                                  "colour": "string"}
    rows = protocol.decode(json.dumps({"dataframe_records": [
        {"x": 1, "n": 2, "flag": "true", "when": "2024-05-06T07:08:09", "colour": "blue"},
        {"x": 2, "n": 3, "flag": 0, "when": "2024-05-07", "colour": None}]}).encode(), JSON, schema)
    frame = rows.frame()
    assert frame["flag"].tolist() == [True, False] and str(frame["when"].dtype).startswith("datetime64")
    assert rows.records()[0] == [1.0, 2.0, True, pd.Timestamp("2024-05-06T07:08:09").to_pydatetime(), "blue"]
    with pytest.raises(ValueError, match="no input signature"):
        protocol.InputSchema.from_signature(None)
    tensor = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1, 3))]))
    with pytest.raises(ValueError, match="named columns"):
        protocol.InputSchema.from_signature(tensor)


def test_rows_concatenate_and_log_as_plain_json():
    a = protocol.decode(b'{"inputs": {"age": [1, null], "region": ["n", null]}}', JSON, SCHEMA)
    b = protocol.decode(b'{"inputs": {"age": [3], "region": ["s"]}}', JSON, SCHEMA)
    merged = protocol.Rows.concat([a, b])
    assert merged["region"].tolist() == ["n", None, "s"] and merged["age"].tolist()[2] == 3.0
    assert a.records() == [[1.0, "n"], [None, None]]
    assert json.dumps(a.records()) == '[[1.0, "n"], [null, null]]'


def test_outputs_become_json_values():
    assert protocol.jsonable(np.array([1, 0], dtype=np.int64)) == [1, 0]
    assert protocol.jsonable(np.array([0.5, np.nan])) == [0.5, None]
    assert protocol.jsonable(np.array([[0.5, np.nan]])) == [[0.5, None]]
    assert protocol.jsonable(np.array(["yes", "no"], dtype=object)) == ["yes", "no"]


def test_parse_and_conform_work_on_dataframes():
    frame = protocol.parse(b'{"dataframe_split": {"columns": ["region", "age"], "data": [["n", "4"]]}}', JSON)
    assert list(frame.columns) == ["region", "age"]
    conformed = protocol.conform(frame.assign(extra=1), SCHEMA)
    assert list(conformed.columns) == ["age", "region"] and conformed.iloc[0].tolist() == [4.0, "n"]


@pytest.mark.parametrize("value,ok", [("abc-123_X.y:z", True), ("a" * 128, True), ("a" * 129, False),
                                      ("", False), ("bad id", False), ("line\n", False), (None, False),
                                      (7, False)])
def test_request_ids(value: object, ok: bool):
    assert protocol.valid_request_id(value) is ok


def test_json_that_only_the_standard_library_reads_is_read_as_before() -> None:
    """orjson refuses NaN/Infinity literals and integers past 64 bits; those bodies still decode as they did."""
    body = b'{"dataframe_split": {"columns": ["age", "region"], "data": [[NaN, "n"], [Infinity, "s"], [%d, "e"]]}}'
    table = protocol.read_table(body % (2**70), JSON)
    ages = table.columns["age"]
    assert np.isnan(ages[0]) and ages[1] == float("inf") and ages[2] == 2**70
