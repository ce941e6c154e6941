"""MLflow's scoring protocol as pure functions: request bytes -> rows checked against the model signature.

Bad input becomes a ``ProtocolError`` with an HTTP status and a message that names the bad field, so the
gateway answers 4xx in MLflow's error shape and never a 500. The hot path builds no DataFrame per request:
a body is decoded to plain columns (``Table``), checked into one typed array per model column (``Rows``),
and the rows of many requests become one DataFrame per model call (``Rows.concat``), because a pandas
frame costs about as much to build for one row as for a thousand; a model whose preprocessing is compiled
(``fastpath.py``) takes the arrays themselves.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import orjson
import pandas as pd

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

FLOAT, BOOL, STRING, DATETIME, ANY = "float", "bool", "string", "datetime", "any"
_NUMERIC_TYPES = {"double", "float", "long", "integer"}


class ProtocolError(Exception):
    """A request the gateway refuses: ``status`` is the HTTP status, ``message`` names the bad field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def valid_request_id(value: object) -> bool:
    return isinstance(value, str) and REQUEST_ID.fullmatch(value) is not None


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise ProtocolError(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")


@dataclass(frozen=True)
class InputSchema:
    """The columns a model takes, in its order: numeric ones become float64, the rest strings unless listed
    as boolean, datetime or passthrough (binary, arrays, objects: handed over as sent); ``optional`` ones
    may be absent. ``logged`` columns (the data's business id) are kept for the prediction log when a request
    sends them, and never given to the model."""

    columns: tuple[str, ...]
    numeric: frozenset[str] = frozenset()
    boolean: frozenset[str] = frozenset()
    datetime: frozenset[str] = frozenset()
    passthrough: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    logged: tuple[str, ...] = ()

    @cached_property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        """(column, kind) pairs, computed once per loaded model rather than per request."""
        def kind(col: str) -> str:
            for kind_name, members in ((FLOAT, self.numeric), (BOOL, self.boolean), (DATETIME, self.datetime),
                                       (ANY, self.passthrough)):
                if col in members:
                    return kind_name
            return STRING
        return tuple((col, kind(col)) for col in self.columns)

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """From a signature with named columns: MLflow's ``ModelSignature``, or the ``signature`` mapping of an
        ``MLmodel`` file as the gateway reads it without MLflow (the same JSON); raises ValueError for any other."""
        if signature is not None and not isinstance(signature, dict):
            signature = signature.to_dict()
        inputs = (signature or {}).get("inputs")
        if not inputs:
            raise ValueError("the model has no input signature; log it with one")
        specs = json.loads(inputs)  # one {"name", "type", "required"} per column, in the model's order
        if not isinstance(specs, list) or not all(isinstance(spec, dict) and spec.get("name") and
                                                  spec.get("type") != "tensor" for spec in specs):
            raise ValueError("the model's signature is not a table of named columns; the gateway serves "
                             "models that take a DataFrame")
        sets: dict[str, set[str]] = {key: set() for key in (FLOAT, BOOL, DATETIME, ANY, "optional")}
        for spec in specs:
            name, type_name = spec["name"], spec.get("type")  # arrays, objects and maps are passed through
            if type_name in _NUMERIC_TYPES:
                sets[FLOAT].add(name)
            elif type_name == "boolean":
                sets[BOOL].add(name)
            elif type_name == "datetime":
                sets[DATETIME].add(name)
            elif type_name != "string":
                sets[ANY].add(name)
            if not spec.get("required", True):
                sets["optional"].add(name)
        return cls(tuple(spec["name"] for spec in specs), frozenset(sets[FLOAT]), frozenset(sets[BOOL]),
                   frozenset(sets[DATETIME]), frozenset(sets[ANY]), frozenset(sets["optional"]))


@dataclass(frozen=True)
class Table:
    """A decoded request body: column name -> one value per row, not yet checked against any model."""

    columns: dict[Any, Sequence[Any]]
    n_rows: int
    params: dict[str, Any] = field(default_factory=dict)  # MLflow's ``params`` of a JSON body

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Table:
        return cls({col: frame[col].tolist() for col in frame.columns}, len(frame))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({col: list(values) for col, values in self.columns.items()},
                            index=pd.RangeIndex(self.n_rows))


@dataclass(frozen=True)
class Rows:
    """A request checked against a model: one typed array per model column, in the model's order."""

    arrays: dict[str, np.ndarray]
    n: int
    logged: dict[str, list[Any]] = field(default_factory=dict)  # the schema's logged columns the request sent

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.arrays, copy=False)

    @staticmethod
    def concat(parts: Sequence[Rows]) -> pd.DataFrame:
        """One frame for the rows of several requests checked against the same schema."""
        if len(parts) == 1:
            return parts[0].frame()
        return pd.DataFrame({col: np.concatenate([p.arrays[col] for p in parts]) for col in parts[0].arrays},
                            copy=False)

    def records(self) -> list[list[Any]]:
        """The rows in ``dataframe_split`` form, JSON-safe (NaN -> null), for the prediction log: the model's
        columns, then the logged ones (``log_columns``)."""
        values = [*(_plain(a) for a in self.arrays.values()), *self.logged.values()]
        return [list(row) for row in zip(*values, strict=True)]

    def log_columns(self) -> list[str]:
        return [*self.arrays, *self.logged]


def _plain(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "f":
        return [None if v != v else v for v in values.tolist()]  # NaN is the only value unequal to itself
    if values.dtype.kind == "M":
        return values.astype("datetime64[us]").tolist()  # datetime objects, None for NaT
    return values.tolist()


def jsonable(values: Any) -> list[Any]:
    """Model outputs as JSON-safe Python values (NaN -> null)."""
    array = np.asarray(values)
    if array.dtype.kind == "f" and np.isnan(array).any():
        missing = np.isnan(array)
        array = array.astype(object)
        array[missing] = None
    return array.tolist()


# --- decoding -------------------------------------------------------------------------------------------
def _content_type(content_type: str | None) -> str:
    """The media type; like MLflow, only UTF-8 is accepted and unknown parameters are refused."""
    parts = [p.strip() for p in (content_type or JSON).split(";")]
    mime = parts[0].lower()
    for param in filter(None, parts[1:]):
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise ProtocolError(415, f"unrecognized content type parameter {param!r}")
        if value.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise ProtocolError(415, f"unsupported charset {value.strip()!r}; the gateway only reads UTF-8")
    return mime


def read_table(body: bytes, content_type: str | None, schema: InputSchema | None = None) -> Table:
    """Decode a body in any of MLflow's forms; ``schema`` keeps string columns of a CSV as text."""
    mime = _content_type(content_type)
    if mime == JSON:
        return _json_table(body)
    if mime == CSV:
        strings = {c: str for c, kind in schema.kinds if kind == STRING} if schema else None
        try:
            return Table.from_frame(pd.read_csv(io.BytesIO(body), dtype=strings, encoding_errors="strict"))
        except Exception as exc:  # pandas raises a zoo of types for bad CSV: all are the caller's fault
            raise ProtocolError(400, f"body is not valid CSV: {type(exc).__name__}: {exc}") from exc
    if mime == PARQUET:
        try:
            return Table.from_frame(pd.read_parquet(io.BytesIO(body)))
        except Exception as exc:  # likewise for pyarrow
            raise ProtocolError(400, f"body is not valid Parquet: {type(exc).__name__}: {exc}") from exc
    raise ProtocolError(415, f"unsupported content type {mime!r}; use {JSON}, {CSV} or {PARQUET}")


def _loads(body: bytes) -> Any:
    """orjson (several times faster); what it refuses (NaN/Infinity literals, integers beyond 64 bits, bad
    JSON) goes to the standard library, which reads the first two as before and words the error as before."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _json_table(body: bytes) -> Table:
    try:
        payload = _loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProtocolError(400, f"the JSON body must be an object with exactly one of the fields "
                                 f"{list(FORMATS)}")
    present = [k for k in FORMATS if k in payload]
    if len(present) != 1:
        raise ProtocolError(400, f"the JSON body must have exactly one of the fields {list(FORMATS)}; "
                                 f"got {sorted(payload)}")
    params = payload.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(400, f"'params' must be an object, e.g. {{\"{PREDICT_METHOD}\": \"{PREDICT_PROBA}\"}}")
    return replace(_body_table(present[0], payload[present[0]]), params=params)


def _body_table(name: str, data: Any) -> Table:
    if name == "dataframe_split":
        return _split(data)
    if name == "dataframe_records":
        if not isinstance(data, list):
            raise ProtocolError(400, "'dataframe_records' must be a list of row objects")
        return _records(data, name)
    if isinstance(data, dict):
        return _columnar(data, name)
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return _records(data, name)
    raise ProtocolError(400, f"'{name}' must be a list of row objects or an object of columns: this model "
                             "takes named columns")


PREDICT_METHOD, PREDICT, PREDICT_PROBA = "predict_method", "predict", "predict_proba"


def predict_method(params: dict[str, Any]) -> str:
    """What the caller wants back (``params.predict_method``, named after mlflow.sklearn's ``pyfunc_predict_fn``):
    ``predict`` (labels or values, the default) or ``predict_proba`` (one probability per class)."""
    unknown = sorted(set(params) - {PREDICT_METHOD})
    if unknown:
        raise ProtocolError(400, f"unknown 'params' {unknown}; the gateway takes only '{PREDICT_METHOD}'")
    method = params.get(PREDICT_METHOD, PREDICT)
    if method not in (PREDICT, PREDICT_PROBA):
        raise ProtocolError(400, f"'params.{PREDICT_METHOD}' must be '{PREDICT}' or '{PREDICT_PROBA}', "
                                 f"got {_show(method)}")
    return method


def _split(data: Any) -> Table:
    if not isinstance(data, dict) or "data" not in data:
        raise ProtocolError(400, "'dataframe_split' must be an object with 'columns' and 'data'")
    unexpected = set(data) - {"columns", "data", "index"}
    if unexpected:
        raise ProtocolError(400, f"'dataframe_split' has unexpected field(s) {sorted(unexpected)}; "
                                 "it takes 'columns', 'data' and optionally 'index'")
    columns, rows = data.get("columns"), data["data"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ProtocolError(400, "'dataframe_split.columns' must be a list of column names: this model takes "
                                 "named columns")
    if not isinstance(rows, list):
        raise ProtocolError(400, "'dataframe_split.data' must be a list of rows")
    width = len(columns)
    if not all(type(row) is list and len(row) == width for row in rows):
        i, row = next((i, r) for i, r in enumerate(rows) if not (type(r) is list and len(r) == width))
        raise ProtocolError(400, f"'dataframe_split.data' row {i} must be a list of {width} values (one per "
                                 f"column); got {_show(row)}")
    values = list(zip(*rows, strict=True)) if rows else [()] * width
    return Table(dict(zip(columns, values, strict=True)), len(rows))


def _records(rows: list[Any], field: str) -> Table:
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise ProtocolError(400, f"'{field}' must be a list of row objects; row {bad} is {_show(rows[bad])}")
    names = dict.fromkeys(name for row in rows for name in row)
    return Table({name: [row.get(name) for row in rows] for name in names}, len(rows))


def _columnar(data: dict[str, Any], field: str) -> Table:
    if not any(isinstance(v, list) for v in data.values()):  # an object of scalars is one row, as in MLflow
        return Table({name: [value] for name, value in data.items()}, 1 if data else 0)
    lengths = {name: len(v) if isinstance(v, list) else None for name, v in data.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        raise ProtocolError(400, f"'{field}' as an object must map each column to a list of the same length; "
                                 f"got lengths {lengths}")
    return Table(data, next(iter(lengths.values())))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- checking against the model -------------------------------------------------------------------------
def validate(table: Table, schema: InputSchema) -> Rows:
    """The model's columns in its order and types; names the first missing column or bad value (and row)."""
    if table.n_rows == 0:
        raise ProtocolError(400, "the request has no rows")
    missing = [c for c in schema.columns if c not in table.columns and c not in schema.optional]
    if missing:
        raise ProtocolError(400, f"missing required column(s) {missing}; the model takes "
                                 f"{list(schema.columns)}")
    arrays = {}
    for col, kind in schema.kinds:
        values = table.columns.get(col)
        arrays[col] = _CONVERT[kind](col, [None] * table.n_rows if values is None else values)
    logged = {col: [None if isinstance(v, float) and v != v else v for v in table.columns[col]]
              for col in schema.logged if col in table.columns and col not in arrays}
    return Rows(arrays, table.n_rows, logged)


def _floats(col: str, values: Sequence[Any]) -> np.ndarray:
    """float64 from numbers, numeric strings and nulls (-> NaN); numpy does it in C when all values fit."""
    try:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 1:
            return array
    except (TypeError, ValueError, OverflowError):
        pass
    for i, v in enumerate(values):
        try:
            if v is not None:
                float(v)
        except (TypeError, ValueError, OverflowError):
            raise ProtocolError(400, f"column {col!r} must be numeric; row {i} has {_show(v)}") from None
    raise ProtocolError(400, f"column {col!r} must be numeric")


def _strings(col: str, values: Sequence[Any]) -> np.ndarray:
    """Text as object array; numbers become their text, null and NaN become None (as MLflow passes them)."""
    if all(type(v) is str for v in values):
        return np.array(values, dtype=object)
    out = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, int | float):
            out.append(str(v))
        else:
            raise ProtocolError(400, f"column {col!r} must be a string; row {i} has {_show(v)}")
    return np.array(out, dtype=object)


_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def _bools(col: str, values: Sequence[Any]) -> np.ndarray:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or v is None:
            out.append(v)
        elif isinstance(v, int | float) and v in (0, 1):
            out.append(bool(v))
        elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            out.append(v.strip().lower() in _TRUE)
        else:
            raise ProtocolError(400, f"column {col!r} must be a boolean; row {i} has {_show(v)}")
    return np.array(out, dtype=bool if None not in out else object)


def _datetimes(col: str, values: Sequence[Any]) -> np.ndarray:
    try:
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601").to_numpy()
    except (TypeError, ValueError) as exc:
        raise ProtocolError(400, f"column {col!r} must hold ISO-8601 timestamps: {exc}") from None


def _passthrough(col: str, values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


_CONVERT = {FLOAT: _floats, STRING: _strings, BOOL: _bools, DATETIME: _datetimes, ANY: _passthrough}


# --- the whole request ----------------------------------------------------------------------------------
def decode(body: bytes, content_type: str | None, schema: InputSchema, *,
           max_bytes: int | None = None) -> Rows:
    """Request body -> rows ready for the model, or a ``ProtocolError`` (413 when over ``max_bytes``)."""
    if max_bytes is not None:
        check_size(len(body), max_bytes)
    return validate(read_table(body, content_type, schema), schema)


def parse(body: bytes, content_type: str | None) -> pd.DataFrame:
    """Request body -> DataFrame as sent (no model involved), as ``mlflow models serve`` reads it."""
    return read_table(body, content_type).frame()


def conform(frame: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """A frame as the model takes it: its columns in its order and types; extra columns dropped."""
    return validate(Table.from_frame(frame), schema).frame()
