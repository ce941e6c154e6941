"""The prediction log and the feedback log: append-only JSON Lines, one directory per UTC day.

The serving gateway writes them (from a background thread, so a request never waits on the disk);
monitoring reads them back as DataFrames with one row per predicted input row. Each writer process has
its own file per day, so replicas never interleave lines.

Layout: ``<root>/predictions/date=YYYY-MM-DD/<host>-<pid>.jsonl`` and ``<root>/feedback/date=.../...``.
A prediction line: ``{"request_id", "ts", "model_name", "model_version", "slot", "columns", "data",
"outputs", "latency_ms"}`` plus ``"error"`` when that slot failed to predict (``columns``/``data`` are the
request's rows in ``dataframe_split`` form).
A feedback line: ``{"request_id", "ts", "labels"}`` with one label per row of that request.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

PREDICTIONS = "predictions"
FEEDBACK = "feedback"


def utc_now() -> datetime:
    return datetime.now(UTC)


def day_dir(root: Path, kind: str, day: date) -> Path:
    return root / kind / f"date={day.isoformat()}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class JsonlLog:
    """Append-only, per-process JSONL writer with a background flusher thread."""

    def __init__(self, root: Path, kind: str, *, flush_every: float = 0.2) -> None:
        self.root = Path(root)
        self.kind = kind
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._flush_every = flush_every
        self._name = f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._thread = threading.Thread(target=self._run, name=f"{kind}-log", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record; returns at once."""
        self._queue.put(record)

    def close(self, timeout: float = 5.0) -> None:
        """Flush everything queued so far and stop the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every record queued before this call is on disk."""
        done = threading.Event()
        self._queue.put({"__flush__": done})
        done.wait(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[dict[str, Any]] = []
            try:
                batch.append(self._queue.get(timeout=self._flush_every))
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            events = []
            by_day: dict[str, list[str]] = {}
            for record in batch:
                if record is None:
                    stop = True
                    continue
                if "__flush__" in record:
                    events.append(record["__flush__"])
                    continue
                ts = record.get("ts") or utc_now().isoformat()
                record["ts"] = ts
                by_day.setdefault(ts[:10], []).append(json.dumps(record, default=_json_default))
            for day, lines in by_day.items():
                target = self.root / self.kind / f"date={day}"
                target.mkdir(parents=True, exist_ok=True)
                with open(target / self._name, "a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")
            for event in events:
                event.set()


def _iter_lines(root: Path, kind: str, day: date) -> Iterable[dict[str, Any]]:
    directory = day_dir(root, kind, day)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed writer: skip it, keep the rest


def read_predictions(root: Path, day: date) -> pd.DataFrame:
    """One row per predicted input row: request_id, row, ts, model_version, slot, prediction, latency_ms,
    error, then the features."""
    frames = []
    for rec in _iter_lines(root, PREDICTIONS, day):
        frame = pd.DataFrame(rec.get("data", []), columns=rec.get("columns", []))
        if frame.empty:
            continue
        frame.insert(0, "request_id", rec["request_id"])
        frame.insert(1, "row", range(len(frame)))
        frame.insert(2, "ts", rec["ts"])
        frame.insert(3, "model_version", str(rec.get("model_version")))
        frame.insert(4, "slot", rec.get("slot", "champion"))
        outputs = list(rec.get("outputs", []))
        frame.insert(5, "prediction", (outputs + [None] * len(frame))[: len(frame)])
        frame.insert(6, "latency_ms", rec.get("latency_ms"))
        frame.insert(7, "error", rec.get("error"))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "ts", "model_version", "slot", "prediction",
                                     "latency_ms", "error"])
    return pd.concat(frames, ignore_index=True)


def read_feedback(root: Path, day: date) -> pd.DataFrame:
    """One row per labelled input row: request_id, row, label (the last delivery wins)."""
    rows = []
    for rec in _iter_lines(root, FEEDBACK, day):
        for i, label in enumerate(rec.get("labels", [])):
            rows.append({"request_id": rec["request_id"], "row": i, "label": label, "ts": rec["ts"]})
    frame = pd.DataFrame(rows, columns=["request_id", "row", "label", "ts"])
    return frame.drop_duplicates(["request_id", "row"], keep="last").drop(columns="ts")


def count_predictions(root: Path, day: date) -> int:
    """Number of predicted rows logged on a day, read cheaply for sensors."""
    return sum(len(rec.get("data", [])) for rec in _iter_lines(root, PREDICTIONS, day))
