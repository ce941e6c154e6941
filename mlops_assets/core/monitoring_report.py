"""A day's monitoring result in words a person reads in a terminal: the drift per column, live performance
with its interval, and the decay verdict with the reason (what ``mlops monitor show`` prints)."""

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
    return lines


def live_lines(record: dict[str, Any]) -> list[str]:
    metric = record["metric"]
    lines = [f"live performance: {metric} {_num(record['value'])} "
             f"[{_num(record['ci_low'])}, {_num(record['ci_high'])}] on {record['labeled_rows']} labelled rows; "
             f"offline {_num(record.get('baseline'))} (champion v{record.get('champion_version') or '-'})"]
    why = explain_decay(record, tolerance=record.get("tolerance", 0.02), min_rows=record.get("min_labeled_rows", 100))
    lines.append(f"decay: {'yes' if record['decayed'] else 'no'}: {why}")
    return lines


def day_lines(day: str, drift: dict[str, Any] | None, live: dict[str, Any] | None) -> list[str]:
    """Everything known about one day; says plainly what has not been computed yet."""
    lines = [f"monitoring for {day}"]
    lines += drift_lines(drift) if drift else ["drift: not computed for this day yet"]
    lines += live_lines(live) if live else ["live performance: not computed for this day yet"]
    return lines
