"""The drift report: per-column verdicts and the dataset verdict, and their renderings (JSON, text, HTML).

Apart from the engine (``core.drift``) so that what a report says and how it looks can change without
touching the statistics, and so that the asset, the CLI and the tests share one rendering.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

DRIFT = "drift"
NO_DRIFT = "no_drift"
INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class ColumnDrift:
    """Verdict on one column; ``p_value`` is None for distance tests, ``statistic`` None when untested."""

    column: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    status: str
    psi: float | None
    reference_size: int
    current_size: int
    detail: str


@dataclass(frozen=True)
class DriftReport:
    """Per-column verdicts and the dataset verdict (drift when the drifted share reaches the threshold)."""

    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool
    status: str
    drift_share_threshold: float
    reference_size: int
    current_size: int

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """The report back from ``to_dict`` (a stored drift record), so it renders the same way again."""
        names = {f.name for f in fields(cls)} - {"columns"}
        return cls(columns=[ColumnDrift(**c) for c in data["columns"]], **{k: data[k] for k in names})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: non-finite floats (a chi-square with unseen categories) become None."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "columns"}
        out["drifted_columns"] = self.drifted_columns
        out["columns"] = [{k: _json_number(v) for k, v in asdict(c).items()} for c in self.columns]
        return out

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # only here: the CLI renders reports without pandas

        names = [f.name for f in fields(ColumnDrift)]
        return pd.DataFrame([asdict(c) for c in self.columns], columns=names)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}"


_VERDICTS = {DRIFT: "DRIFT", NO_DRIFT: "ok", INSUFFICIENT: "insufficient data"}


def _dataset_line(report: DriftReport) -> str:
    tested = sum(c.status != INSUFFICIENT for c in report.columns)
    if report.status == INSUFFICIENT:
        return f"Dataset: insufficient data (no column of {len(report.columns)} could be tested)"
    verdict = "DRIFT" if report.dataset_drift else "no drift"
    return (f"Dataset: {verdict} ({len(report.drifted_columns)} of {tested} tested columns drifted, "
            f"share {report.share_drifted:.2f}, threshold {report.drift_share_threshold:.2f})")


def _table_rows(report: DriftReport) -> tuple[list[str], list[list[str]]]:
    header = ["column", "kind", "test", "statistic", "p-value", "threshold", "psi", "verdict"]
    rows = [[c.column, c.kind, c.test or "-", _fmt(c.statistic), _fmt(c.p_value), _fmt(c.threshold),
             _fmt(c.psi), _VERDICTS[c.status]] for c in report.columns]
    return header, rows


def format_table(report: DriftReport) -> str:
    """Fixed-width text table of the per-column verdicts, followed by the dataset verdict."""
    header, rows = _table_rows(report)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {c.column}: {c.detail}" for c in report.columns if c.detail]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", _dataset_line(report)]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.35rem .6rem;text-align:left}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fde2e2}tr.insufficient_data td{background:#fff4d6}
.verdict{font-size:1.15rem;font-weight:600;margin:1rem 0}
.drift{color:#b00020}.no_drift{color:#1b7a2f}.insufficient_data{color:#8a6d00}
"""


def render_html(report: DriftReport) -> str:
    """A self-contained HTML page (inline CSS, no scripts or external assets) with the per-column table."""
    header, rows = _table_rows(report)
    numeric_cells = {"statistic", "p-value", "threshold", "psi"}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*header, "detail"])
    body = []
    for column, row in zip(report.columns, rows, strict=True):
        cells = "".join(
            f'<td class="num">{html.escape(v)}</td>' if h in numeric_cells else f"<td>{html.escape(v)}</td>"
            for h, v in zip(header, row, strict=True)
        )
        body.append(f'<tr class="{column.status}">{cells}<td>{html.escape(column.detail)}</td></tr>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data drift report</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>Data drift report</h1>\n"
        f"<p>Reference rows: {report.reference_size} &middot; current rows: {report.current_size}</p>\n"
        f'<p class="verdict {report.status}">{html.escape(_dataset_line(report))}</p>\n'
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        "<p>Tests and thresholds follow Evidently 0.7 DataDriftPreset defaults: p-value tests drift "
        "below the threshold, distances at or above it.</p>\n</body></html>\n"
    )


# --------------------------------------------------------------------------------------------- CLI
