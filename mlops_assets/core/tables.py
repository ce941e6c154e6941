"""Markdown tables for Dagster metadata (no extra dependency for a dozen rows)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")[:120]


def markdown_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]], max_rows: int = 50) -> str:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return "_(none)_"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for rec in frame.head(max_rows).itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in rec) + " |")
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows_")
    return "\n".join(lines)
