"""The prediction and feedback logs: append-only JSON Lines, one directory per UTC day.

The serving gateway writes them (from a background thread, so a request never waits on the disk);
monitoring reads them back as DataFrames with one row per predicted input row. Each writer process has
its own files, so replicas never interleave lines. The root is a local path or any fsspec URL
(``s3://bucket/mlops``): object stores cannot append, so there every flush becomes its own immutable
segment file, and the writer flushes less often.

Layout: ``<root>/predictions/date=YYYY-MM-DD/<host>-<pid>[-<segment>].jsonl`` and ``<root>/feedback/...``.
A prediction line: ``{"request_id", "ts", "model_name", "model_version", "slot", "columns", "data",
"outputs", "latency_ms"}`` plus ``"error"`` when that slot failed to predict (``columns``/``data`` are the
request's rows in ``dataframe_split`` form: the model's columns, then the spec's ``id_column`` when sent).
A classifier's line also has ``"classes"`` (its ``classes_``, in order) and ``"probabilities"`` (one list per
row, in that order), whether or not the caller asked for them; ``read_predictions`` spreads them into one
column per class, ``proba_<class>``. Slots: ``champion``, ``canary``, ``shadow`` (the gateway) and ``batch``
(``mlops score`` and the ``batch_predictions`` asset: ``request_id`` is ``<batch id>:<chunk>``, and
``columns``/``data`` also carry the spec's id and timestamp columns).
A feedback line is one of two kinds:
- by request id: ``{"request_id", "ts", "labels"}`` with one label per row of that request (``POST /feedback``);
- by business id: ``{"ts", "id_column", "ids", "labels", "source"}`` (optionally ``"label_ts"``), one label per
  id of the spec's ``id_column`` (label files, ``mlops labels``, ``POST /feedback`` with ``{"id", "label"}``
  items); ``core.labels`` joins them to the latest prediction of each id, whatever day it was served.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.probabilities import PROBA_PREFIX, proba_column

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
LOCAL_FLUSH_SECONDS = 0.2
OBJECT_STORE_FLUSH_SECONDS = 5.0

log = logging.getLogger("mlops.predictions")


def utc_now() -> datetime:
    return datetime.now(UTC)


def log_filesystem(root: str | Path) -> tuple[Any, str]:
    fs, base = fsspec.core.url_to_fs(str(root))
    return fs, base.rstrip("/")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _line(record: dict[str, Any]) -> bytes:
    """One JSON line (orjson: numpy arrays and scalars as numbers, datetimes in ISO 8601, NaN as null)."""
    return orjson.dumps(record, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


class JsonlLog:
    """Append-only, per-process JSONL writer with a background flusher thread.

    ``write`` encodes the line in the caller's thread (orjson: a few microseconds) and queues the bytes; the
    thread wakes once per flush interval and appends everything queued, one write per day. Nothing else
    happens on that thread, so it never holds the GIL for long: a thread that builds records competes with
    the gateway's event loop for it, and each hand-off made requests wait (a p99 of ~100 ms under load).
    A failed write (full disk, object store unreachable) is logged and retried on the next flush; the lines
    stay queued in memory meanwhile, so a transient fault loses nothing.
    """

    def __init__(self, root: str | Path, kind: str, *, flush_every: float | None = None) -> None:
        self._fs, self._base = log_filesystem(root)
        self._append = isinstance(self._fs, LocalFileSystem)
        self.kind = kind
        # SimpleQueue: a put costs the caller no lock dance (queue.Queue's Condition took 3% of the event loop)
        self._queue: queue.SimpleQueue[tuple[str, bytes] | threading.Event | None] = queue.SimpleQueue()
        self._urgent = threading.Event()  # flush() or close(): write now, not at the end of the interval
        default = LOCAL_FLUSH_SECONDS if self._append else OBJECT_STORE_FLUSH_SECONDS
        self._flush_every = default if flush_every is None else flush_every
        self._stem = f"{socket.gethostname()}-{os.getpid()}"
        self._segment = 0
        self._pending: dict[str, list[bytes]] = {}
        self._thread = threading.Thread(target=self._run, name=f"{kind}-log", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record as its JSON line (``ts`` set to now when missing); returns at once. A record that
        cannot be encoded is a bug: it is logged with its trace and dropped, never raised into a request."""
        try:
            ts = record.get("ts") or utc_now().isoformat()
            record["ts"] = ts
            self._queue.put((ts[:10], _line(record)))
        except Exception:
            log.exception("a %s log record could not be encoded and is dropped", self.kind)

    def close(self, timeout: float = 5.0) -> None:
        """Flush everything queued so far and stop the writer thread."""
        self._queue.put(None)
        self._urgent.set()
        self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every record queued before this call is written (or its write failed and waits)."""
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        done.wait(timeout)

    def _run(self) -> None:
        """Once lines arrive, gather them for the flush interval (a put has no waiting reader to wake), then
        append them: one write per day and interval, or one object-store segment."""
        stop = False
        while not stop:
            try:
                batch = [self._queue.get(timeout=self._flush_every)]
            except queue.Empty:
                batch = []  # idle: retry what a failed write kept, if anything
            else:
                self._urgent.wait(self._flush_every)
                self._urgent.clear()  # cleared before draining: a later flush() finds its marker next time
                with contextlib.suppress(queue.Empty):
                    while True:
                        batch.append(self._queue.get_nowait())
            events = []
            for item in batch:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    self._pending.setdefault(item[0], []).append(item[1])
            self._write_pending()
            for event in events:
                event.set()

    def _write_pending(self) -> None:
        for day in list(self._pending):
            folder = f"{self._base}/{self.kind}/date={day}"
            payload = b"\n".join(self._pending[day]) + b"\n"
            try:
                self._fs.makedirs(folder, exist_ok=True)
                if self._append:
                    with self._fs.open(f"{folder}/{self._stem}.jsonl", "ab") as fh:
                        fh.write(payload)
                else:
                    self._segment += 1
                    self._fs.pipe_file(f"{folder}/{self._stem}-{time.time_ns()}-{self._segment:06d}.jsonl", payload)
            except OSError as exc:
                log.error("could not write the %s log under %s (%s); %d records kept for the next attempt",
                          self.kind, folder, exc, len(self._pending[day]))
                continue
            del self._pending[day]


def prediction_line(request_id: str, *, model_name: str, model_version: str, slot: str, columns: list[str],
                    data: list[list[Any]], outputs: list[Any], latency_ms: float,
                    probabilities: list[list[float]] | None = None, classes: list[Any] | None = None,
                    error: str | None = None, ts: str | None = None) -> dict[str, Any]:
    """One prediction line, as the gateway and batch scoring both write it (format: the module's docstring);
    ``ts`` is when it was served (now, when not given)."""
    record = {"request_id": request_id, "ts": ts or utc_now().isoformat(), "model_name": model_name,
              "model_version": model_version, "slot": slot, "columns": columns, "data": data,
              "outputs": outputs, "latency_ms": latency_ms}
    if probabilities is not None:
        record.update(classes=classes, probabilities=probabilities)
    if error is not None:
        record["error"] = error
    return record


def _iter_lines(root: str | Path, kind: str, day: date, containing: tuple[str, ...] = ()) -> Iterable[dict[str, Any]]:
    """The day's lines; with ``containing``, only lines with one of those strings are parsed (a cheap skip)."""
    fs, base = log_filesystem(root)
    folder = f"{base}/{kind}/date={day.isoformat()}"
    if not fs.isdir(folder):
        return
    for path in sorted(fs.glob(f"{folder}/*.jsonl")):
        with fs.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line or (containing and not any(word in line for word in containing)):
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed writer: skip it, keep the rest


def log_days(root: str | Path, kind: str) -> list[date]:
    """The UTC days a log has lines for, oldest first."""
    fs, base = log_filesystem(root)
    days = []
    for folder in fs.glob(f"{base}/{kind}/date=*"):
        try:
            days.append(date.fromisoformat(folder.rstrip("/").rsplit("date=", 1)[1]))
        except ValueError:
            continue  # not a day folder the writer made
    return sorted(days)


def iter_log(root: str | Path, kind: str, containing: tuple[str, ...] = ()) -> Iterable[dict[str, Any]]:
    """Every line of a log, day by day (only those with one of the ``containing`` strings, when given): what
    the id-keyed label join reads, however late labels come."""
    for day in log_days(root, kind):
        yield from _iter_lines(root, kind, day, containing)


def read_id_labels(root: str | Path) -> list[dict[str, Any]]:
    """The feedback lines by business id, in delivery order (several writers' files interleaved by time)."""
    lines = [rec for rec in iter_log(root, FEEDBACK, ('"ids":',)) if "ids" in rec]
    return sorted(lines, key=lambda rec: rec["ts"])


def read_predictions(root: str | Path, day: date) -> pd.DataFrame:
    """One row per predicted input row: request_id, row, ts, model_version, slot, prediction, latency_ms,
    error, then ``proba_<class>`` per class any line of the day has (NaN in rows whose line has none: a
    regressor, an old line, a failed call), then the features (and a batch line's id and timestamp columns)."""
    frames = []
    for rec in _iter_lines(root, PREDICTIONS, day):
        frame = pd.DataFrame(rec.get("data", []), columns=rec.get("columns", []))
        if frame.empty:
            continue
        frame.insert(0, "request_id", rec["request_id"])
        frame.insert(1, "row", range(len(frame)))
        frame.insert(2, "ts", rec["ts"])
        frame.insert(3, "model_version", str(rec.get("model_version")))
        frame.insert(4, "slot", rec.get("slot", CHAMPION))
        outputs = list(rec.get("outputs", []))
        frame.insert(5, "prediction", (outputs + [None] * len(frame))[: len(frame)])
        frame.insert(6, "latency_ms", rec.get("latency_ms"))
        frame.insert(7, "error", rec.get("error"))
        probabilities = rec.get("probabilities")
        if probabilities and len(probabilities) == len(frame):
            proba = pd.DataFrame(probabilities, columns=[proba_column(c) for c in rec.get("classes", [])])
            for i, col in enumerate(proba.columns):
                frame.insert(8 + i, col, proba[col].to_numpy(dtype=float))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=_LEADING)
    frame = pd.concat(frames, ignore_index=True)
    proba_cols = list(dict.fromkeys(c for f in frames for c in f.columns[8:] if str(c).startswith(PROBA_PREFIX)))
    rest = [c for c in frame.columns if c not in _LEADING and c not in proba_cols]
    return frame[_LEADING + proba_cols + rest]


_LEADING = ["request_id", "row", "ts", "model_version", "slot", "prediction", "latency_ms", "error"]


def read_feedback(root: str | Path, day: date) -> pd.DataFrame:
    """One row per labelled input row: request_id, row, label (the last delivery wins)."""
    rows = []
    for rec in _iter_lines(root, FEEDBACK, day):
        if "request_id" not in rec:
            continue  # a line by business id: core.labels joins those
        for i, label in enumerate(rec.get("labels", [])):
            rows.append({"request_id": rec["request_id"], "row": i, "label": label, "ts": rec["ts"]})
    frame = pd.DataFrame(rows, columns=["request_id", "row", "label", "ts"])
    return frame.drop_duplicates(["request_id", "row"], keep="last").drop(columns="ts")
