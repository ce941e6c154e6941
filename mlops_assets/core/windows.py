"""Monitoring windows: a day's own rows, and the rolling chunk that ends with that day.

A day with 165 rows says little on its own, and a busy day averages a shift in its second half away. So each
day also carries a chunk ending with it, as NannyML's chunks do: the last ``chunk_rows`` rows by event time
(reaching back over quiet days) or, with ``chunk_days`` set, every row of that many event days. A chunk never
reaches back more than ``max_lookback_days`` event days; one that holds fewer rows than asked is judged on what
it has and says so (``short``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class ChunkRule:
    chunk_rows: int = 5000  # the last N rows ending with the day (used when chunk_days is 0)
    chunk_days: int = 0  # or: every row of this many event days ending with the day
    max_lookback_days: int = 90  # a chunk never reaches further back than this many event days

    def __post_init__(self) -> None:
        if self.chunk_rows < 1 or self.chunk_days < 0 or self.max_lookback_days < 1:
            raise ValueError(f"chunk_rows must be >= 1, chunk_days >= 0 and max_lookback_days >= 1; got "
                             f"{self.chunk_rows}, {self.chunk_days}, {self.max_lookback_days}")

    def describe(self) -> str:
        return f"the {self.chunk_days} event days ending with the day" if self.chunk_days else \
            f"the last {self.chunk_rows} rows by event time ending with the day"


def chunk_event_days(day: date, rows_per_day: dict[str, int], rule: ChunkRule) -> list[str]:
    """The event days (oldest first) the chunk ending with ``day`` draws its rows from: back from ``day`` until
    ``chunk_rows`` rows are gathered, quiet days skipped over, at most ``max_lookback_days`` back."""
    span = min(rule.chunk_days, rule.max_lookback_days) if rule.chunk_days else rule.max_lookback_days
    days, gathered = [], 0
    for back in range(span):
        key = (day - timedelta(days=back)).isoformat()
        rows = rows_per_day.get(key, 0)
        if rows:
            days.append(key)
            gathered += rows
        if not rule.chunk_days and gathered >= rule.chunk_rows:
            break
    return sorted(days)


def take_chunk(rows: pd.DataFrame, rule: ChunkRule) -> pd.DataFrame:
    """The chunk's rows out of the rows of its event days (sorted by event time): the newest ``chunk_rows``."""
    return rows if rule.chunk_days else rows.iloc[max(0, len(rows) - rule.chunk_rows):]


def describe_chunk(day: date, chunk: pd.DataFrame, rule: ChunkRule) -> dict[str, Any]:
    """Where a chunk starts and ends and whether it holds fewer rows than the rule asks for (and why)."""
    info: dict[str, Any] = {"rule": rule.describe(), "rows": len(chunk), "last_day": day.isoformat(),
                            "first_day": chunk["event_day"].iloc[0] if len(chunk) else None,
                            "first_event": _iso(chunk["event_ts"].iloc[0]) if len(chunk) else None,
                            "last_event": _iso(chunk["event_ts"].iloc[-1]) if len(chunk) else None,
                            "short": False}
    if not rule.chunk_days and len(chunk) < rule.chunk_rows:
        info["short"] = True
        info["note"] = (f"{len(chunk)} rows in the {rule.max_lookback_days} event days ending {day} "
                        f"(fewer than {rule.chunk_rows}); judged on these")
    return info


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()


def join_by_serving_day(rows: pd.DataFrame, feedback_for: Callable[[date], pd.DataFrame],
                        join: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """The window's rows that have a delivered label. Labels are looked up per serving day (where the log keeps
    them), so a window whose rows were served over many days is joined day by day with the same join."""
    if rows.empty:
        return join(rows, pd.DataFrame())
    parts = [join(group, feedback_for(date.fromisoformat(served)))
             for served, group in rows.groupby("served_day", sort=True)]
    return pd.concat(parts, ignore_index=True)
