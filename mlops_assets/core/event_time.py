"""The prediction log read by event time: which UTC day each logged row belongs to by the data's own timestamp
(the spec's ``timestamp_column``; the serving time only where a row has none), and an event-day index so a
monitoring day finds its rows whatever day they were served on.

The log is stored by serving day (``predictions/date=YYYY-MM-DD``). A replay of a year served in one afternoon
lands in one serving folder, so the index, one small JSON per serving day
(``event_index/date=YYYY-MM-DD.json``: event day -> rows), tells which serving days hold the rows of an event
day. It is maintained incrementally: a serving day's entry is rebuilt only when that day's log files changed
(their names and sizes are its signature), so a finished day is read once, ever. There is no bound on how late
a row may be served: every serving day is in the index.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import fsspec
import pandas as pd

from mlops_assets.core import predictions as logs

INDEX = "event_index"
# Serving days whose rows a reader keeps parsed (a backfill reads each once, a chunk reads its neighbours).
CACHED_SERVING_DAYS = 32

log = logging.getLogger("mlops.event_time")


def event_times(frame: pd.DataFrame, timestamp_column: str | None) -> tuple[pd.Series, pd.Series]:
    """Each row's event time (UTC) and whether it fell back to the serving time ``ts``: the data's own
    timestamp where the row has a readable one; naive timestamps are read as UTC."""
    served = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    if not timestamp_column or timestamp_column not in frame.columns:
        return served, pd.Series(True, index=frame.index)
    own = pd.to_datetime(frame[timestamp_column], utc=True, errors="coerce", format="ISO8601")
    fallback = own.isna()
    return own.where(~fallback, served), fallback


def bucket(frame: pd.DataFrame, timestamp_column: str | None) -> pd.DataFrame:
    """The frame with ``event_ts``, ``event_day`` (ISO date) and ``event_time_fallback`` columns."""
    if frame.empty:
        return frame.assign(event_ts=pd.Series(dtype="datetime64[ns, UTC]"), event_day=pd.Series(dtype=object),
                            event_time_fallback=pd.Series(dtype=bool))
    ts, fallback = event_times(frame, timestamp_column)
    return frame.assign(event_ts=ts, event_day=ts.dt.strftime("%Y-%m-%d"), event_time_fallback=fallback)


def _filesystem(root: str) -> tuple[Any, str]:
    fs, base = fsspec.core.url_to_fs(str(root))
    return fs, base.rstrip("/")


def serving_days(root: str) -> list[date]:
    fs, base = _filesystem(root)
    folders = fs.glob(f"{base}/{logs.PREDICTIONS}/date=*")
    days = []
    for folder in folders:
        try:
            days.append(date.fromisoformat(folder.rstrip("/").rsplit("date=", 1)[1]))
        except ValueError:
            log.warning("ignoring %s: not a date=YYYY-MM-DD folder of the prediction log", folder)
    return sorted(days)


@dataclass(frozen=True)
class IndexEntry:
    signature: dict[str, int]  # log file name -> size when the entry was built
    days: dict[str, int]  # event day -> rows served on this serving day
    fallback_rows: int  # rows without a readable event timestamp (their serving time counts)


class EventLog:
    """The prediction log by event day, for one monitoring run: keeps the index current and a few parsed
    serving days in memory (a backfill over many event days served at once reads that serving day once)."""

    def __init__(self, root: str, timestamp_column: str | None, cache_days: int = CACHED_SERVING_DAYS) -> None:
        self.root, self.timestamp_column, self.cache_days = root, timestamp_column, cache_days
        self._fs, self._base = _filesystem(root)
        self._index: dict[date, IndexEntry] | None = None
        self._frames: OrderedDict[date, pd.DataFrame] = OrderedDict()

    def _signature(self, day: date) -> dict[str, int]:
        folder = f"{self._base}/{logs.PREDICTIONS}/date={day.isoformat()}"
        return {info["name"].rsplit("/", 1)[-1]: int(info.get("size") or 0)
                for info in self._fs.ls(folder, detail=True) if info["name"].endswith(".jsonl")}

    def _entry_path(self, day: date) -> str:
        return f"{self._base}/{INDEX}/date={day.isoformat()}.json"

    def _entry(self, day: date) -> IndexEntry:
        signature = self._signature(day)
        path = self._entry_path(day)
        stored = self._stored(path)
        if stored is not None and stored.get("signature") == signature \
                and stored.get("timestamp_column") == self.timestamp_column:
            return IndexEntry(signature, stored["days"], stored["fallback_rows"])
        frame = self.serving_day(day)
        counts = frame["event_day"].value_counts().sort_index()
        entry = IndexEntry(signature, {str(k): int(v) for k, v in counts.items()},
                           int(frame["event_time_fallback"].sum()))
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._fs.pipe_file(path, json.dumps({"signature": entry.signature, "timestamp_column": self.timestamp_column,
                                             "days": entry.days, "fallback_rows": entry.fallback_rows}).encode())
        return entry

    def _stored(self, path: str) -> dict[str, Any] | None:
        """A stored entry, or None when there is none or it is unreadable (a writer cut short): then rebuilt."""
        try:
            return json.loads(self._fs.cat_file(path)) if self._fs.exists(path) else None
        except (json.JSONDecodeError, OSError) as exc:
            log.warning("rebuilding the event-day index entry %s (%s)", path, exc)
            return None

    def index(self) -> dict[date, IndexEntry]:
        """Every serving day's entry, brought up to date once per reader."""
        if self._index is None:
            self._index = {day: self._entry(day) for day in serving_days(self.root)}
        return self._index

    def rows_per_event_day(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.index().values():
            for day, rows in entry.days.items():
                totals[day] = totals.get(day, 0) + rows
        return totals

    def serving_day(self, day: date) -> pd.DataFrame:
        """One serving day's rows with their event time and the serving day they came from."""
        if day in self._frames:
            self._frames.move_to_end(day)
            return self._frames[day]
        frame = logs.read_predictions(self.root, day)
        frame = bucket(frame, self.timestamp_column).assign(served_day=day.isoformat())
        self._frames[day] = frame
        while len(self._frames) > self.cache_days:
            self._frames.popitem(last=False)
        return frame

    def rows(self, event_days: Iterable[str]) -> pd.DataFrame:
        """Every logged row whose event day is one of ``event_days``, from whichever days served it, in event
        time order (serving order breaks ties)."""
        wanted = set(event_days)
        sources = [day for day, entry in sorted(self.index().items()) if wanted & set(entry.days)]
        frames = [f[f["event_day"].isin(wanted)] for f in (self.serving_day(d) for d in sources)]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return bucket(logs.read_predictions(self.root, date(1970, 1, 1)), None).assign(
                served_day=pd.Series(dtype=object))
        rows = pd.concat(frames, ignore_index=True)
        return rows.sort_values(["event_ts", "ts", "request_id", "row"], kind="stable", ignore_index=True)
