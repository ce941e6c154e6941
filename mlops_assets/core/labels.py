"""Ground truth by business key: label files, the id-keyed label store, and its join with the predictions.

Labels arrive late and keyed by the data's own id (a loan id, an order id), not by the gateway's request id.
They are stored as feedback lines ``{"ts", "id_column", "ids", "labels", "source"}`` (``core.predictions``)
and joined to every logged prediction, online or batch, whose input rows carry that id column, whatever day
it was served: the monitoring day of a label is the day of its prediction, not the day the label came.

Rules (the README states them too):
- the **latest prediction** of an id takes its label (an id scored again replaces its earlier score);
- the **latest delivery** of an id's label wins (a corrected label file overrides the first one);
- labels for ids never predicted are **counted and reported** (``unknown``), never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.table_input import TableInputError, read_table

LABEL_TIMESTAMP = "label_timestamp"  # an optional column of label files: when the outcome became known
LINE_LABELS = 10_000  # labels per feedback line: lines stay small enough to read back line by line
SAMPLE_UNKNOWN = 5  # unknown ids shown in reports


class LabelFileError(ValueError):
    """A label file that cannot be delivered; the message names the file and the column."""


def id_key(value: Any) -> str | None:
    """One spelling per id, so that ``42``, ``42.0`` and ``"42"`` are the same id wherever they were logged."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def read_label_file(path: str, spec: DatasetSpec) -> pd.DataFrame:
    """``id``, ``label`` (and ``label_ts`` when the file has a ``label_timestamp`` column) of a CSV or Parquet
    label file; a missing column or a missing id fails with the file and column named."""
    if not spec.id_column:
        raise LabelFileError(f"{path}: the dataset spec {spec.name!r} names no id_column; labels by business "
                             "key need one (set id_column in the spec, or post labels by request id)")
    try:
        frame = read_table(str(path))
    except TableInputError as exc:
        raise LabelFileError(str(exc)) from exc
    for column, role in ((spec.id_column, "the spec's id_column"), (spec.target, "the spec's target")):
        if column not in frame.columns:
            raise LabelFileError(f"{path}: no column {column!r} ({role}); the file has {list(frame.columns)[:10]}")
    out = pd.DataFrame({"id": frame[spec.id_column], "label": frame[spec.target]})
    if LABEL_TIMESTAMP in frame.columns:
        out["label_ts"] = pd.to_datetime(frame[LABEL_TIMESTAMP], utc=True, errors="coerce").map(
            lambda t: None if pd.isna(t) else t.isoformat())
    for key, column in (("id", spec.id_column), ("label", spec.target)):
        empty = out[key].isna().to_numpy()
        if empty.any():
            raise LabelFileError(f"{path}: {int(empty.sum())} row(s) without a value in column {column!r} (first "
                                 f"at data row {int(empty.nonzero()[0][0]) + 1}); every label needs an id and a value")
    return out


def feedback_lines(labels: pd.DataFrame, id_column: str, source: str) -> Iterator[dict[str, Any]]:
    """The store's feedback lines for ``labels`` (``id``, ``label``, optional ``label_ts``), at most
    ``LINE_LABELS`` labels per line."""
    for start in range(0, len(labels), LINE_LABELS):
        part = labels.iloc[start:start + LINE_LABELS]
        line: dict[str, Any] = {"id_column": id_column, "ids": part["id"].tolist(),
                                "labels": part["label"].tolist(), "source": source}
        if "label_ts" in part:
            line["label_ts"] = part["label_ts"].tolist()
        yield line


def id_labels(lines: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """id column -> {id key -> label} from feedback lines in delivery order: the latest delivery wins.
    Lines by request id (no ``ids``) are not this store's."""
    store: dict[str, dict[str, Any]] = {}
    for line in lines:
        ids, labels = line.get("ids"), line.get("labels")
        column = line.get("id_column")
        if not isinstance(ids, list) or not isinstance(labels, list) or not column:
            continue
        own = store.setdefault(column, {})
        for value, label in zip(ids, labels, strict=False):
            key = id_key(value)
            if key is not None:
                own[key] = label
    return store


@dataclass(frozen=True)
class Served:
    """Where an id was last predicted: the prediction's time, request and row within it."""

    ts: str
    request_id: str
    row: int
    event: Any = None  # the row's own event time (the spec's timestamp_column) as logged, if it has one

    def event_day(self) -> str:
        """The monitoring (event) day of the prediction: its own timestamp's UTC day, else the serving day."""
        when = pd.to_datetime(self.event, utc=True, errors="coerce", format="ISO8601") if self.event else pd.NaT
        return self.ts[:10] if pd.isna(when) else when.strftime("%Y-%m-%d")


def latest_predictions(lines: Iterable[dict[str, Any]], wanted: dict[str, set[str]],
                       timestamp_column: str | None = None) -> dict[str, dict[str, Served]]:
    """id column -> {id key -> its latest prediction}, for the ``wanted`` ids only (memory stays bounded by the
    labels, not by the log), with the row's ``timestamp_column`` value when logged (its event day). Failed
    predictions do not count; slots of one request share its (request, row)."""
    latest: dict[str, dict[str, Served]] = {column: {} for column in wanted}
    for line in lines:
        columns = line.get("columns") or []
        if line.get("error") or not line.get("request_id"):
            continue
        for column, keys in wanted.items():
            if column not in columns:
                continue
            at = columns.index(column)
            stamp = columns.index(timestamp_column) if timestamp_column in columns else None
            found = latest[column]
            for row, values in enumerate(line.get("data") or []):
                key = id_key(values[at]) if at < len(values) else None
                if key in keys and (key not in found or found[key].ts <= line["ts"]):
                    event = values[stamp] if stamp is not None and stamp < len(values) else None
                    found[key] = Served(line["ts"], line["request_id"], row, event)
    return latest


@dataclass
class LabelJoin:
    """Id-keyed labels placed on their predictions: what monitoring joins, and what a delivery reports."""

    labels: pd.DataFrame  # request_id, row, label, day (the UTC day it was served), event_day (monitoring's day)
    unknown: list[str] = field(default_factory=list)  # ids with a label but no prediction

    @property
    def joined(self) -> int:
        return len(self.labels)

    def for_day(self, day: date) -> pd.DataFrame:
        return self.labels.loc[self.labels["day"] == day.isoformat(), ["request_id", "row", "label"]]

    def days(self) -> list[str]:
        return sorted(set(self.labels["day"]))

    def event_days(self) -> list[str]:
        """The monitoring days the labels reached: a replay served today reaches its own event days."""
        return sorted(set(self.labels["event_day"]))

    def summary(self) -> dict[str, Any]:
        return {"joined": self.joined, "unknown": len(self.unknown), "sample_unknown": self.unknown[:SAMPLE_UNKNOWN],
                "days": self.days(), "event_days": self.event_days()}


def join_by_id(labels: dict[str, dict[str, Any]], latest: dict[str, dict[str, Served]]) -> LabelJoin:
    """Each labelled id's label on its latest prediction; ids without one are the ``unknown``."""
    rows, unknown = [], []
    for column, by_key in labels.items():
        found = latest.get(column, {})
        for key, label in by_key.items():
            served = found.get(key)
            if served is None:
                unknown.append(key)
            else:
                rows.append((served.request_id, served.row, label, served.ts[:10], served.event_day()))
    frame = pd.DataFrame(rows, columns=["request_id", "row", "label", "day", "event_day"]).astype({"row": "int64"})
    return LabelJoin(frame, sorted(unknown))
