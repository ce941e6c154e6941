"""The rules a batch must pass, and the report of what failed: pandera schemas of raw batches and features.

A batch that fails gets a ``BatchRejected`` naming the file and, per failed rule, the column, the check,
how many rows fail and a sample of them: what the quarantine report and the Dagster UI show.

Rules a chunk cannot decide alone (unique ids, share of nulls) are split out (``chunk_schema``,
``null_limits``, ``null_share_failures``) so that streaming callers (``core.ingestion``, ``core.features``)
count them over the whole table and reject it for the same rules as a whole-table read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.core.spec import DatasetSpec

FRAME_CHECKS = {"column_in_dataframe": "missing column", "column_in_schema": "unexpected column"}
NULL_FRACTION = "null_fraction"


@dataclass
class BatchRejected(Exception):
    """A batch that cannot be accepted, with a report a person and a program can read."""

    file: str
    reason: str
    failures: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.reason}"]
        for f in self.failures[:20]:
            sample = f", e.g. rows {f['sample_rows']}" if f.get("sample_rows") else ""
            values = f" values {f['sample_values']}" if f.get("sample_values") else ""
            lines.append(f"  - column {f['column']!r} failed {f['check']} in {f['count']} row(s){sample}{values}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more failed rules")
        return "\n".join(lines)

    def report(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason, "failures": self.failures}


def _null_fraction_check(limit: float) -> pa.Check:
    return pa.Check(lambda s: s.isna().mean() <= limit, element_wise=False, ignore_na=False,
                    name=f"{NULL_FRACTION}<={limit}", error=_null_fraction_error(limit))


def _null_fraction_error(limit: float) -> str:
    return f"share of nulls <= {limit}"


def _finite_check() -> pa.Check:
    return pa.Check(lambda s: ~np.isinf(s.astype(float)), name="finite", error="finite (no +/-inf)",
                    ignore_na=True)


def raw_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The pandera schema every raw batch must pass: columns, types, ranges, categories, nulls, ids, label."""
    columns: dict[str, pa.Column] = {}
    if spec.id_column:
        columns[spec.id_column] = pa.Column(pa.Int64, unique=True, nullable=False, coerce=True,
                                            description="row identity")
    if spec.timestamp_column:
        columns[spec.timestamp_column] = pa.Column(pa.DateTime, nullable=False, coerce=True)
    for col in spec.numeric:
        checks = [_finite_check()]
        if col.min is not None:
            checks.append(pa.Check.ge(col.min))
        if col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col.nullable:
            checks.append(_null_fraction_check(col.max_null_fraction))
        columns[col.name] = pa.Column(pa.Float64, checks=checks, nullable=col.nullable, coerce=True)
    for col in spec.categorical:
        checks = [pa.Check.isin(col.categories)]
        if col.nullable:
            checks.append(_null_fraction_check(col.max_null_fraction))
        columns[col.name] = pa.Column(pa.String, checks=checks, nullable=col.nullable, coerce=True)
    if spec.task == "classification":
        target_type = pa.Int64 if all(isinstance(c, int) for c in spec.classes or []) else pa.String
        columns[spec.target] = pa.Column(target_type, checks=[pa.Check.isin(list(spec.classes or []))],
                                         nullable=False, coerce=True, description="label")
    else:
        columns[spec.target] = pa.Column(pa.Float64, checks=[_finite_check()], nullable=False, coerce=True,
                                         description="label")
    return pa.DataFrameSchema(columns, strict=True, ordered=False, name=f"{spec.name}_raw",
                              description=f"Raw batches of the {spec.name!r} data set")


def feature_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The schema of model inputs plus label: the raw schema without identity columns."""
    raw = raw_schema(spec)
    keep = spec.feature_names + [spec.target]
    return pa.DataFrameSchema({k: raw.columns[k] for k in keep}, strict=True, name=f"{spec.name}_features",
                              description=f"Model inputs and label of {spec.name!r}")


def failure_summary(err: pa.errors.SchemaErrors) -> list[dict[str, Any]]:
    """Group pandera's failure cases by (column, check): counts plus a few sample rows and values."""
    cases = err.failure_cases.copy()
    frame_level = cases["schema_context"].eq("DataFrameSchema")
    # Frame-level failures (a missing or unexpected column) carry the column name as the failure case.
    cases.loc[frame_level, "column"] = cases.loc[frame_level, "failure_case"]
    cases["column"] = cases["column"].astype(str)
    cases["check"] = cases["check"].astype(str).replace(FRAME_CHECKS)
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=True):
        rows = sorted(int(i) for i in group["index"].dropna().tolist())[:5]
        values = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
                  for v in group["failure_case"].tolist()[:5]]
        out.append({"column": column, "check": check, "count": int(len(group)), "sample_rows": rows,
                    "sample_values": [str(v) for v in values]})
    return out


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema, *, file: str) -> pd.DataFrame:
    """Validate lazily (every failure, not the first) and return the coerced frame."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        failures = failure_summary(err)
        raise BatchRejected(file, f"failed validation against schema {schema.name!r} "
                                  f"({sum(f['count'] for f in failures)} failure(s))", failures) from err


def chunk_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """``schema`` without the rules a chunk cannot decide alone (unique ids, share of nulls): streaming
    callers count those over the whole table (``null_limits``, ``null_share_failures``)."""
    return schema.update_columns({
        name: {"unique": False, "checks": [c for c in col.checks if not (c.name or "").startswith(NULL_FRACTION)]}
        for name, col in schema.columns.items()
    })


def null_limits(spec: DatasetSpec) -> dict[str, float]:
    """The largest share of nulls each nullable column may have, over a whole batch or data set."""
    return {c.name: c.max_null_fraction for c in [*spec.numeric, *spec.categorical] if c.nullable}


def null_share_failures(nulls: dict[str, int], rows: int, limits: dict[str, float]) -> list[dict[str, Any]]:
    """The share-of-nulls rule over null counts gathered chunk by chunk, as failure records (columns without
    a limit are not nullable: the per-chunk rules judge those)."""
    return [{"column": col, "check": _null_fraction_error(limits[col]), "count": 1, "sample_rows": [],
             "sample_values": [f"{count} of {rows} rows null"]}
            for col, count in sorted(nulls.items()) if col in limits and rows and count / rows > limits[col]]
