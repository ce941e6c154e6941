"""What ``POST /feedback`` accepts: labels by request id for requests this gateway served, and labels by the
data's own id (the spec's ``id_column``) for any prediction, online or batch, however late.

A label for a request id the gateway never served is refused (404): anyone could otherwise move live accuracy
with made-up requests. The gateway vouches for a request id from a bounded in-memory record of the ids it
logged, backed by the prediction log on disk: after a restart, or for a request another replica served (same
log root), a miss re-reads only the log bytes written since the last look. The limit: request ids older than
``window_days`` or beyond the newest ``capacity`` ids are refused; such late labels go by business id instead.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_assets.core.predictions import PREDICTIONS, log_filesystem
from mlops_assets.serving import protocol

SERVED_CAPACITY = 250_000  # request ids held in memory (about 40 MB): a few days of a busy gateway
SERVED_WINDOW_DAYS = 7  # days of the prediction log a miss looks back over
_REQUEST_ID_PREFIX = re.compile(rb'^\{"request_id": ?"([A-Za-z0-9._:-]{1,128})"')  # how the gateway writes lines


class ServedRequests:
    """The request ids this gateway (or a replica sharing its log root) logged: newest ``capacity`` kept."""

    def __init__(self, log_root: str | Path, *, capacity: int = SERVED_CAPACITY,
                 window_days: int = SERVED_WINDOW_DAYS) -> None:
        self._fs, self._base = log_filesystem(log_root)
        self._capacity, self._window = capacity, window_days
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._offsets: dict[str, int] = {}  # log file -> bytes already read
        self._lock = threading.Lock()
        self._reading = threading.Lock()

    def add(self, request_id: str) -> None:
        with self._lock:
            self._ids[request_id] = None
            self._ids.move_to_end(request_id)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)

    def forgotten(self, request_ids: list[str]) -> list[str]:
        """The ids not in memory (the usual answer, at once: none)."""
        return [rid for rid in request_ids if rid not in self._ids]

    def unknown(self, request_ids: list[str]) -> list[str]:
        """The ids neither remembered nor in the log written since the last look (reads files: call on a thread)."""
        missing = self.forgotten(request_ids)
        if missing:
            self._read_log()
            missing = self.forgotten(missing)
        return missing

    def _read_log(self) -> None:
        """Tail the prediction log of the window: new files whole, grown files from where the last look ended."""
        with self._reading:
            today = datetime.now(UTC).date()
            folders = [f"{self._base}/{PREDICTIONS}/date={today - timedelta(days=i)}"
                       for i in range(self._window, -1, -1)]
            live = set()
            for folder in folders:
                if not self._fs.isdir(folder):
                    continue
                for path in sorted(self._fs.glob(f"{folder}/*.jsonl")):
                    live.add(path)
                    self._read_file(path)
            self._offsets = {path: size for path, size in self._offsets.items() if path in live}

    def _read_file(self, path: str) -> None:
        """Line by line (memory stays one line), from where the last look ended."""
        offset = self._offsets.get(path, 0)
        with self._fs.open(path, "rb") as fh:
            fh.seek(offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written is read on a later look
                offset += len(line)
                match = _REQUEST_ID_PREFIX.match(line)
                rid = match.group(1).decode() if match else _request_id(line)
                if rid:
                    self.add(rid)
        self._offsets[path] = offset


def _request_id(line: bytes) -> str | None:
    """A line another writer laid out differently (e.g. batch scoring): parsed whole."""
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn line from a killed writer
    rid = record.get("request_id") if isinstance(record, dict) else None
    return rid if isinstance(rid, str) else None


def _business_label(item: dict[str, Any], where: str) -> tuple[Any, Any]:
    value, label = item.get("id"), item.get("label")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise protocol.ProtocolError(400, f"{where}: 'id' must be the data's id (a string or an integer), "
                                          f"got {value!r}")
    if label is None:
        raise protocol.ProtocolError(400, f"{where}: needs a 'label'")
    return value, label


def parse_feedback(payload: Any) -> tuple[list[dict[str, Any]], list[tuple[Any, Any]]]:
    """(labels by request id as feedback records, (id, label) pairs by business id) of a feedback body.

    Forms: ``{"request_id", "labels": [...]}`` (or ``"label"``), ``{"id", "label"}``, ``{"labels": [{"id",
    "label"}, ...]}``, or a list of those items.
    """
    items = payload if isinstance(payload, list) else [payload]
    by_request, by_id = [], []
    for i, item in enumerate(items):
        where = f"feedback item {i}"
        if isinstance(item, dict) and "request_id" not in item:
            entries = item.get("labels")
            if "id" in item:
                by_id.append(_business_label(item, where))
                continue
            if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
                by_id.extend(_business_label(e, f"{where}, label {j}") for j, e in enumerate(entries))
                continue
        if not isinstance(item, dict) or not protocol.valid_request_id(item.get("request_id")):
            raise protocol.ProtocolError(400, f"{where}: needs a valid 'request_id' (the X-Request-ID of the "
                                              "prediction), or labels by the data's id: {\"id\": ..., \"label\": ...}")
        labels = item.get("labels", [item["label"]] if "label" in item else None)
        if not isinstance(labels, list) or not labels:
            raise protocol.ProtocolError(400, f"{where}: needs 'labels' (one per row of its request)")
        by_request.append({"request_id": item["request_id"], "labels": labels})
    return by_request, by_id
