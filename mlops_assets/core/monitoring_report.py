"""A day's monitoring result in words a person reads in a terminal: the drift per column, live performance
with its interval, and the decay verdict with the reason (what ``mlops monitor show`` prints), for the day and
for the rolling chunk ending with it; and the same as one JSON shape per window (``--json``)."""

from __future__ import annotations

import math
from typing import Any

from mlops_assets.core.drift_report import DriftReport, format_table
from mlops_assets.core.monitoring import explain_decay


def _num(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def drift_lines(record: dict[str, Any]) -> list[str]:
    lines = [f"drift against champion v{record.get('champion_version') or '-'}'s training data (dataset "
             f"{record.get('reference_dataset') or '-'}), {record.get('current_rows', 0)} served rows: "
             f"{record['status']}"]
    if not record.get("report"):
        return [*lines, f"  {record.get('detail', 'no report')}"]
    lines += ["  " + line for line in format_table(DriftReport.from_dict(record["report"])).splitlines()]
    for name in ("prediction_drift", "target_drift"):
        column = record.get(name)
        if column:
            lines.append(f"  {name.replace('_', ' ')}: {column.get('status')} ({column.get('test') or '-'}, "
                         f"statistic {_num(column.get('statistic'))}, {column.get('current_size', 0)} rows)")
    chunk = record.get("chunk")
    if chunk:
        lines.append(f"  chunk ({chunk.get('rule')}; {chunk.get('rows')} rows, {chunk.get('first_day') or '-'} .. "
                     f"{chunk.get('last_day')}): {chunk.get('status')}, share drifted "
                     f"{_num(chunk.get('share_drifted'))}, drifted columns {chunk.get('drifted_columns') or []}")
    return lines


def _realized_lines(realized: dict[str, Any]) -> list[str]:
    lines = []
    for name, m in realized.items():
        if m.get("value") is None:
            lines.append(f"    {name}: {m.get('note', 'not available')}")
        else:
            note = f"; {m['note']}" if m.get("note") else ""
            lines.append(f"    {name}: {m['value']:.4f} [{_num(m.get('ci_low'))}, {_num(m.get('ci_high'))}] "
                         f"({m.get('interval')}{note})")
    return lines


def _window_lines(title: str, window: dict[str, Any], tolerance: float, min_rows: int, suffix: str = "",
                  ) -> list[str]:
    decayed = window.get("window_decayed", window.get("decayed"))
    lines = [f"{title}: {window['metric']} {_num(window['value'])} [{_num(window['ci_low'])}, "
             f"{_num(window['ci_high'])}] on {window['labeled_rows']} labelled rows{suffix}"]
    if window.get("label_coverage"):
        lines.append(f"  label coverage: {window['label_coverage']['text']}")
    lines += _realized_lines(window.get("realized") or {})
    why = explain_decay(window, tolerance=tolerance, min_rows=min_rows)
    lines.append(f"  decay: {'yes' if decayed else 'no'}: {why}")
    return lines


def live_lines(record: dict[str, Any]) -> list[str]:
    """The day's live performance, then the chunk ending with it; each with its own verdict."""
    tolerance, min_rows = record.get("tolerance", 0.02), record.get("min_labeled_rows", 100)
    offline = f"; offline {_num(record.get('baseline'))} (champion v{record.get('champion_version') or '-'})"
    lines = _window_lines("live performance", record, tolerance, min_rows, offline)
    chunk = record.get("chunk")
    if chunk:
        span = f"{chunk.get('first_day') or '-'} .. {chunk.get('last_day')}"
        lines += _window_lines(f"chunk ({chunk.get('rule')}; {chunk.get('rows')} rows, {span})",
                               {**chunk, "baseline": record.get("baseline")}, tolerance, min_rows)
        if chunk.get("note"):
            lines.append(f"  chunk is short: {chunk['note']}")
    return lines


def _window_json(live: dict[str, Any] | None, drift: dict[str, Any] | None,
                 estimated: dict[str, Any] | None) -> dict[str, Any]:
    live, drift, estimated = live or {}, drift or {}, estimated or {}
    return {
        "rows": live.get("label_coverage", {}).get("predictions", drift.get("current_rows", drift.get("rows"))),
        "realized": live.get("realized"), "label_coverage": live.get("label_coverage"),
        "estimated": estimated.get("estimated"),
        "verdicts": {"decayed": live.get("window_decayed"), "estimated_decay": estimated.get("estimated_decay"),
                     "drift": drift.get("dataset_drift")},
    }


def window_summary(drift: dict[str, Any] | None, live: dict[str, Any] | None,
                   estimated: dict[str, Any] | None) -> dict[str, Any]:
    """Per window (the day, and the chunk ending with it): realized metrics with intervals, label coverage, the
    estimated metrics (None until the ``estimated_performance`` asset has run; it records ``day_estimate`` and
    ``chunk``, each with ``estimated`` and ``estimated_decay``) and the verdicts. A verdict not computed yet is None."""
    chunk_live = (live or {}).get("chunk")
    chunk_drift = (drift or {}).get("chunk")
    chunk = _window_json(chunk_live, chunk_drift, (estimated or {}).get("chunk"))
    if chunk_live or chunk_drift:
        where = chunk_live or chunk_drift
        chunk.update({k: where.get(k) for k in ("rule", "first_day", "last_day", "short", "note") if k in where})
    return {"daily": _window_json(live, drift, (estimated or {}).get("day_estimate")), "chunk": chunk}


def day_lines(day: str, drift: dict[str, Any] | None, live: dict[str, Any] | None) -> list[str]:
    """Everything known about one day; says plainly what has not been computed yet."""
    lines = [f"monitoring for {day}"]
    lines += drift_lines(drift) if drift else ["drift: not computed for this day yet"]
    lines += live_lines(live) if live else ["live performance: not computed for this day yet"]
    return lines
