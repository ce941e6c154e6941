"""Prediction-log retention: the logs hold every input row the gateway served (often personal data), so whole
served days older than the retention limit are deleted, from the prediction and the feedback log alike.

Choosing the days is a pure function (tested directly); listing and deleting work on any fsspec root, the same
``<root>/<kind>/date=YYYY-MM-DD/`` layout ``core/predictions.py`` writes. Monitoring records already computed
from those days live elsewhere (the IO manager's store) and are not touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import fsspec

from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS

KINDS = (PREDICTIONS, FEEDBACK)
DAY_PREFIX = "date="

log = logging.getLogger("mlops.retention")


def cutoff(today: date, keep_days: int) -> date:
    """The oldest day kept: today and the ``keep_days - 1`` days before it stay."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}: today's log is always kept")
    return today - timedelta(days=keep_days - 1)


def days_to_delete(days: Iterable[date], today: date, keep_days: int | None) -> list[date]:
    """The served days older than the retention limit, oldest first; None (no limit) deletes nothing."""
    if keep_days is None:
        return []
    oldest_kept = cutoff(today, keep_days)
    return sorted({d for d in days if d < oldest_kept})


@dataclass
class Served:
    """The day folders found under a log root, and the folder names that are not a day (never deleted)."""

    days: dict[str, set[date]] = field(default_factory=dict)  # kind -> days
    not_days: list[str] = field(default_factory=list)

    def all_days(self) -> set[date]:
        return set().union(*self.days.values()) if self.days else set()


@dataclass
class Removed:
    days: list[date] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # kind -> files deleted
    rows: dict[str, int] = field(default_factory=dict)  # kind -> predicted input rows / labelled rows deleted
    failed: list[date] = field(default_factory=list)  # days left (partly) in place by a failed deletion


def _filesystem(root: str):
    fs, base = fsspec.core.url_to_fs(root)
    return fs, base.rstrip("/")


def served_days(root: str) -> Served:
    fs, base = _filesystem(root)
    served = Served()
    for kind in KINDS:
        folder = f"{base}/{kind}"
        served.days[kind] = set()
        if not fs.isdir(folder):
            continue
        for path in fs.ls(folder, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            try:
                if not name.startswith(DAY_PREFIX):
                    raise ValueError(name)
                served.days[kind].add(date.fromisoformat(name.removeprefix(DAY_PREFIX)))
            except ValueError:
                served.not_days.append(f"{kind}/{name}")
    return served


def delete_days(root: str, days: Iterable[date]) -> Removed:
    """Delete each day's folder of both logs, counting its files and rows first (what the materialization
    reports). A folder whose deletion fails is logged and left for the next run; the others still go."""
    fs, base = _filesystem(root)
    removed = Removed(files=dict.fromkeys(KINDS, 0), rows=dict.fromkeys(KINDS, 0))
    for day in sorted(set(days)):
        failed = False
        for kind in KINDS:
            folder = f"{base}/{kind}/{DAY_PREFIX}{day.isoformat()}"
            try:
                if not fs.isdir(folder):
                    continue
                files = fs.glob(f"{folder}/*.jsonl")
                rows = sum(_rows(fs, path, kind) for path in files)
                fs.rm(folder, recursive=True)
            except OSError as exc:
                log.error("could not delete %s (%s); the next run tries again", folder, exc)
                failed = True
                continue
            removed.files[kind] += len(files)
            removed.rows[kind] += rows
        (removed.failed if failed else removed.days).append(day)
    return removed


def _rows(fs, path: str, kind: str) -> int:
    """Input rows of a prediction file, labelled rows of a feedback file (a torn last line counts none)."""
    key = "data" if kind == PREDICTIONS else "labels"
    total = 0
    with fs.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                total += len(json.loads(line).get(key, []))
            except (json.JSONDecodeError, AttributeError):
                continue
    return total
