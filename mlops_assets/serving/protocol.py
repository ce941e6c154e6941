"""MLflow's scoring protocol as pure functions: request bytes -> DataFrame checked against the model signature.

Bad input becomes a ``ProtocolError`` with an HTTP status and a message that names the bad field, so
the gateway answers 4xx with MLflow's error shape and never a 500.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InputSchema:
    """The columns a model needs, and which of them are numeric (from its MLflow signature)."""

    columns: tuple[str, ...]
    numeric: frozenset[str]

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        if signature is None or signature.inputs is None:
            raise ValueError("the model has no input signature; log it with one")
        names, numeric = [], set()
        for spec in signature.inputs.inputs:
            if spec.name is None:
                raise ValueError("the model's signature has unnamed inputs; the gateway needs named columns")
            names.append(spec.name)
            if str(getattr(spec, "type", "")).split(".")[-1] in {"double", "float", "long", "integer"}:
                numeric.add(spec.name)
        return cls(tuple(names), frozenset(numeric))


def parse(body: bytes, content_type: str | None) -> pd.DataFrame:
    """Decode a request body in any of MLflow's accepted forms."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ProtocolError(400, f"body is not valid CSV: {exc}") from exc
    if kind != "application/json":
        raise ProtocolError(415, f"unsupported content type {kind!r}; use application/json or text/csv")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ProtocolError(400, f"the JSON body must be an object with one of the fields {list(FORMATS)}")
    present = [k for k in FORMATS if k in payload]
    if len(present) != 1:
        raise ProtocolError(400, f"the JSON body must have exactly one of the fields {list(FORMATS)}; "
                                 f"got {sorted(payload)}")
    field = present[0]
    data = payload[field]
    try:
        if field == "dataframe_split":
            if not isinstance(data, dict) or "data" not in data:
                raise ProtocolError(400, "dataframe_split needs an object with 'columns' and 'data'")
            return pd.DataFrame(data["data"], columns=data.get("columns"))
        if field == "dataframe_records":
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ProtocolError(400, "dataframe_records must be a list of objects (one per row)")
            return pd.DataFrame.from_records(data)
        # instances / inputs (TF-serving style): a list of row objects or an object of column lists
        if isinstance(data, dict):
            return pd.DataFrame(data)
        if isinstance(data, list) and all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data)
        raise ProtocolError(400, f"{field} must be a list of row objects or an object of column lists "
                                 "(this model needs named columns)")
    except ProtocolError:
        raise
    except (ValueError, TypeError) as exc:
        raise ProtocolError(400, f"{field} could not be read as a table: {exc}") from exc


def conform(frame: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """The model's columns in its order, numeric ones as float64; names the first bad column and row."""
    if frame.empty:
        raise ProtocolError(400, "the request has no rows")
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise ProtocolError(400, f"missing required column(s) {missing}; the model takes {list(schema.columns)}")
    out = {}
    for col in schema.columns:
        values = frame[col]
        if col in schema.numeric:
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ProtocolError(400, f"column {col!r} must be numeric; row {row} has {values.iloc[row]!r}")
            out[col] = converted.astype("float64")
        else:
            out[col] = values.astype(object).where(values.notna(), None)
            out[col] = out[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return pd.DataFrame(out)


def jsonable(values: Any) -> list[Any]:
    """Predictions as JSON-safe Python values (NaN -> null)."""
    out = []
    for v in np.asarray(values).tolist():
        out.append(None if isinstance(v, float) and math.isnan(v) else v)
    return out


def rows_for_log(frame: pd.DataFrame) -> list[list[Any]]:
    return frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
