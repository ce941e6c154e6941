"""What the sensors decide, as plain functions over plain values (tested without a Dagster instance)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta


def file_signature(size: int, mtime_ns: int) -> str:
    return f"{size}:{mtime_ns}"


def unseen_files(listing: Mapping[str, str], seen: Mapping[str, str]) -> list[str]:
    """Names whose (size, mtime) signature differs from the one already handled: new or re-landed files."""
    return sorted(name for name, sig in listing.items() if seen.get(name) != sig)


def ingest_run_key(name: str, sha256: str, schema_digest: str) -> str:
    """The same bytes under the same name and spec never ingest twice; corrected bytes, or the same bytes under a
    corrected spec, ingest again (a file quarantined by a rule the spec no longer has is tried again)."""
    return f"{name}:{sha256[:16]}:{schema_digest}"


def monitoring_due(rows_today: int, rows_at_last_request: int, every: int) -> bool:
    return rows_today >= every and rows_today - rows_at_last_request >= every


def monitoring_days_due(rows: Mapping[str, int], asked: Mapping[str, int], today: str, every: int) -> list[str]:
    """Event days (ISO) whose monitoring is due, newest first: a day whose logged rows grew by ``every`` since it
    was last asked for (``asked``: day -> rows then), as today's traffic does; and a past day never asked for
    that has rows at all (a replay or a batch scored into it, or a quiet day now over), however few."""
    due = [day for day, n in rows.items()
           if monitoring_due(n, asked.get(day, 0), every) or (day < today and day not in asked and n > 0)]
    return sorted(due, reverse=True)


def day_runs(days: list[str]) -> list[tuple[str, str]]:
    """ISO days grouped into runs of consecutive days, (first, last) each, oldest first: one monitoring run per
    run of days (the monitoring assets take a range in one run), none over days nobody asked for."""
    runs: list[tuple[str, str]] = []
    for day in sorted(set(days)):
        if runs and date.fromisoformat(runs[-1][1]) + timedelta(days=1) == date.fromisoformat(day):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def drift_retrain_key(metadata: Mapping[str, object], champion_version: str | None) -> str | None:
    """One drift episode per champion: a retrain key when the newest report found drift against the model
    that serves now (a report about an older champion is stale evidence)."""
    if champion_version is None or not metadata.get("dataset_drift"):
        return None
    if str(metadata.get("champion_version")) != str(champion_version):
        return None
    return f"drift:v{champion_version}"


def decay_retrain_key(metadata: Mapping[str, object], champion_version: str | None) -> str | None:
    if champion_version is None or not metadata.get("decayed"):
        return None
    if str(metadata.get("champion_version")) != str(champion_version):
        return None
    return f"decay:v{champion_version}"


def estimated_decay_retrain_key(metadata: Mapping[str, object], champion_version: str | None) -> str | None:
    """An estimated drop retrains before labels arrive, under the same episode key as realized decay: whichever
    evidence comes first launches the one retraining of that champion's decay episode."""
    if champion_version is None or not metadata.get("estimated_decay"):
        return None
    if str(metadata.get("champion_version")) != str(champion_version):
        return None
    return f"decay:v{champion_version}"


def estimate_outcome(live: Mapping[str, object], champion_version: str, *, min_rows: int) -> str | None:
    """What the realized figures say of an estimated decay of ``champion_version``: ``confirmed`` (decay seen in
    labels), ``cleared`` (enough labels judged, no decay) or None (not judged on labels yet)."""
    if str(live.get("champion_version")) != str(champion_version):
        return None
    if live.get("decayed"):
        return "confirmed"
    baseline = live.get("offline_baseline")
    if int(live.get("labeled_rows") or 0) < min_rows or baseline is None or baseline != baseline:  # NaN: no baseline
        return None
    return "cleared"
