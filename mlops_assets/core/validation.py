"""The rules a batch must pass, and the report of what failed: pandera schemas of raw batches and features.

A batch that fails gets a ``BatchRejected`` naming the file and, per failed rule, the column, the check,
how many rows fail and a sample of them: what the quarantine report and the Dagster UI show.

Rules a chunk cannot decide alone (unique ids, share of nulls) are split out (``chunk_schema``,
``null_limits``, ``null_share_failures``) so that streaming callers (``core.ingestion``, ``core.features``)
count them over the whole table and reject it for the same rules as a whole-table read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_assets.core.spec import DatasetSpec

FRAME_CHECKS = {"column_in_dataframe": "missing column", "column_in_schema": "unexpected column"}
NULL_FRACTION = "null_fraction"
UNSEEN_FRACTION = "unseen_fraction"


SAMPLES = 5  # rows shown per failed rule


@dataclass
class BatchRejected(Exception):
    """A batch that cannot be accepted, with a report a person and a program can read.

    ``failures`` holds one entry per (column, rule): ``column``, ``check`` (pandera's name, stable for programs),
    ``rule`` (plain words), ``count`` (distinct rows that break it), ``samples`` (``{"line"|"row": n, "value":
    raw text}``, each row paired with its own value) and, where one exists, a ``hint``.
    """

    file: str
    reason: str
    failures: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.reason}"]
        if any("line" in s for f in self.failures for s in f.get("samples", [])):
            lines.append("  (line numbers are the file's: line 1 is the header, the first data row is line 2)")
        for f in self.failures[:20]:
            lines.append(f"  - {f['column']}: {f.get('rule') or f['check']}{_rows_text(f)}")
            if f.get("hint"):
                lines.append(f"    hint: {f['hint']}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more failed rules")
        return "\n".join(lines)

    def report(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason, "failures": self.failures}

    def table(self) -> list[dict[str, Any]]:
        """The failures as rows of a table (the Dagster UI's check metadata), in the words of ``str(self)``."""
        return [{"column": f["column"], "rule": f["rule"], "rows": f["count"],
                 "examples": "; ".join(_sample_text(s) for s in f.get("samples", [])), "hint": f.get("hint", "")}
                for f in self.failures]


def _sample_text(sample: dict[str, Any]) -> str:
    where = f"line {sample['line']}" if "line" in sample else f"row {sample['row']}"
    return f"{where} {sample['value']!r}"


def _rows_text(failure: dict[str, Any]) -> str:
    if not failure.get("samples"):
        return ""
    count = failure["count"]
    shown = ", ".join(_sample_text(s) for s in failure["samples"])
    more = f", ... ({count - len(failure['samples'])} more)" if count > len(failure["samples"]) else ""
    return f" in {count} row(s): {shown}{more}"


def rejected_reason(schema_name: str, failures: list[dict[str, Any]]) -> str:
    """The one-line reason of a batch that broke rules: how many rules, each named below it."""
    return f"failed validation against schema {schema_name!r}: {len(failures)} rule(s) broken"


def _null_fraction_check(limit: float) -> pa.Check:
    return pa.Check(lambda s: s.isna().mean() <= limit, element_wise=False, ignore_na=False,
                    name=f"{NULL_FRACTION}<={limit}", error=_null_fraction_error(limit))


def _null_fraction_error(limit: float) -> str:
    return f"share of nulls <= {limit}"


def _unseen_fraction_check(categories: list[str], limit: float) -> pa.Check:
    return pa.Check(lambda s: (s.notna() & ~s.isin(categories)).mean() <= limit, element_wise=False,
                    ignore_na=False, name=f"{UNSEEN_FRACTION}<={limit}", error=_unseen_error(limit),
                    statistics={"categories": categories, "limit": limit})


def _unseen_error(limit: float) -> str:
    return f"share of unseen categories <= {limit}"


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
        checks = [pa.Check.isin(col.categories)] if col.unseen == "quarantine" else []
        if col.unseen == "accept" and col.max_unseen_fraction is not None:
            checks.append(_unseen_fraction_check(col.categories, col.max_unseen_fraction))
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
    """One entry per (column, rule): the distinct rows that break it, each paired with its own value.

    pandera names a failed type coercion twice (``coerce_dtype`` and ``dtype``): it is one rule here. The
    checks that could not even run on such a column (their "value" is an exception's text) are left out.
    """
    cases = err.failure_cases.copy()
    frame_level = cases["schema_context"].eq("DataFrameSchema")
    # Frame-level failures (a missing or unexpected column) carry the column name as the failure case.
    cases.loc[frame_level, "column"] = cases.loc[frame_level, "failure_case"]
    cases["column"] = cases["column"].astype(str)
    cases["check"] = cases["check"].astype(str).replace(FRAME_CHECKS).str.replace(r"^coerce_dtype\(", "dtype(",
                                                                                   regex=True)
    uncoerced = set(cases.loc[cases["check"].str.startswith("dtype("), "column"])
    cases = cases[~(cases["index"].isna() & cases["column"].isin(uncoerced) & ~frame_level)]
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=True):
        located = group.dropna(subset=["index"]).drop_duplicates("index")
        located = located.assign(index=located["index"].astype(np.int64)).sort_values("index")
        samples = [{"row": int(i), "value": _text(v)}
                   for i, v in zip(located["index"][:SAMPLES], located["failure_case"][:SAMPLES], strict=True)]
        failure = {"column": column, "check": check, "count": max(1, len(located)), "samples": samples}
        if check.startswith((NULL_FRACTION, "share of nulls")):
            nulls = int(err.data[column].isna().sum())
            failure = null_share_failures({column: nulls}, len(err.data), {column: _limit(check)})[0]
        elif check.startswith((UNSEEN_FRACTION, "share of unseen")):
            counts = UnseenCounts({column: (_categories(err.schema, column), _limit(check))})
            counts.update(err.data)
            failure = counts.failures(len(err.data))[0]
        out.append(explain(failure, err.schema))
    return out


def _text(value: Any) -> str:
    """A failure case as the file would show it: ``""`` for a missing value (never ``None`` or ``nan``)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value.item() if hasattr(value, "item") else value)


def _limit(check: str) -> float:
    return float(re.findall(r"-?\d+(?:\.\d*)?(?:e[+-]?\d+)?", check)[-1])


WHOLE_NUMBER = re.compile(r"^\s*[+-]?\d+\s*$")
THOUSANDS = re.compile(r"^\s*[+-]?\d{1,3}(,\d{3})+(\.\d*)?\s*$")
INT64_MAX = 2**63 - 1


def explain(failure: dict[str, Any], schema: pa.DataFrameSchema) -> dict[str, Any]:
    """``failure`` with its rule in plain words and, where the values suggest a fix, a hint."""
    column, check = failure["column"], failure["check"]
    col = schema.columns.get(column)
    label = col is not None and col.description == "label"
    values = [s["value"] for s in failure.get("samples", [])]
    rule, hint = failure.get("rule", check), None
    if check == "missing column":
        rule = "missing required column" + (" (the label)" if label else "")
    elif check == "unexpected column":
        rule, hint = "unexpected column (not in the spec)", "drop it from the file, or add it to the spec"
    elif check.startswith("dtype("):
        rule, hint = _type_rule(str(col.dtype) if col is not None else check, values)
    elif check.startswith("isin("):
        allowed = check[len("isin("):-1]
        rule = f"not one of the known classes {allowed}" if label else f"not one of the allowed categories {allowed}"
        hint = "add it to `classes` in the spec if it is a real class" if label else \
            "add the value to `categories` in the spec, or set `unseen: accept` on the column"
    elif check.startswith("greater_than_or_equal_to("):
        rule = f"below the minimum {_limit(check):g}"
    elif check.startswith("less_than_or_equal_to("):
        rule = f"above the maximum {_limit(check):g}"
    elif check.startswith("finite"):
        rule = "infinite (+/-inf)"
    elif check == "not_nullable":
        rule = "missing value in a column that is not nullable"
        marker = next((v for v in values if v.strip()), None)
        if marker is not None:
            hint = (f"the file marks missing values as {marker!r}: if they are allowed, set `nullable: true` and a "
                    "`max_null_fraction` on the column")
    elif check == "field_uniqueness":
        rule = "duplicate id" if col is not None and col.description == "row identity" else "duplicate value"
    return {**failure, "rule": rule, **({"hint": hint} if hint else {})}


def _type_rule(dtype: str, values: list[str]) -> tuple[str, str | None]:
    if any(THOUSANDS.match(v) for v in values):
        return ("not a number", "looks like a thousands separator: remove ',' or set `thousands: ','` in the spec")
    if dtype.startswith("int"):
        if values and all(WHOLE_NUMBER.match(v) and abs(int(v)) > INT64_MAX for v in values):
            return "out of int64 range", "ids and integer labels must lie within +/-9,223,372,036,854,775,807"
        return "not a whole number", None
    if dtype.startswith("float"):
        return "not a number", None
    if dtype.startswith("datetime"):
        return "not a date/time", "write timestamps as ISO 8601, e.g. 2026-11-01T12:00:00"
    return f"not of type {dtype}", None


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema, *, file: str) -> pd.DataFrame:
    """Validate lazily (every failure, not the first) and return the coerced frame."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        failures = failure_summary(err)
        raise BatchRejected(file, rejected_reason(schema.name, failures), failures) from err


def chunk_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """``schema`` without the rules a chunk cannot decide alone (unique ids, shares of nulls and of unseen
    categories): streaming callers count those over the whole table (``null_share_failures``, ``UnseenCounts``)."""
    whole = (NULL_FRACTION, UNSEEN_FRACTION)
    return schema.update_columns({
        name: {"unique": False, "checks": [c for c in col.checks if not (c.name or "").startswith(whole)]}
        for name, col in schema.columns.items()
    })


def null_limits(spec: DatasetSpec) -> dict[str, float]:
    """The largest share of nulls each nullable column may have, over a whole batch or data set."""
    return {c.name: c.max_null_fraction for c in [*spec.numeric, *spec.categorical] if c.nullable}


def null_share_failures(nulls: dict[str, int], rows: int, limits: dict[str, float]) -> list[dict[str, Any]]:
    """The share-of-nulls rule over null counts gathered chunk by chunk, as failure records (columns without
    a limit are not nullable: the per-chunk rules judge those)."""
    return [{"column": col, "check": _null_fraction_error(limits[col]), "count": count, "samples": [],
             "rule": f"null share {count / rows:.0%} above the allowed {limits[col]:.0%} ({count} of {rows} rows)",
             "hint": "fill the missing values, or raise `max_null_fraction` in the spec if that share is expected"}
            for col, count in sorted(nulls.items()) if col in limits and rows and count / rows > limits[col]]


def _categories(schema: pa.DataFrameSchema, column: str) -> list[str]:
    check = next(c for c in schema.columns[column].checks if (c.name or "").startswith(UNSEEN_FRACTION))
    return list(check.statistics["categories"])


class UnseenCounts:
    """Values outside their column's categories in ``unseen: accept`` columns, counted chunk by chunk: what the
    batch's record shows, and the share judged against ``max_unseen_fraction`` over the whole batch."""

    def __init__(self, columns: dict[str, tuple[list[str], float | None]]) -> None:
        self.columns = columns  # column -> (its categories, the largest share of rows with an unseen value)
        self.values: dict[str, dict[str, int]] = {c: {} for c in columns}
        self.samples: dict[str, list[dict[str, Any]]] = {c: [] for c in columns}

    @classmethod
    def of(cls, spec: DatasetSpec) -> UnseenCounts:
        return cls({c.name: (c.categories, c.max_unseen_fraction) for c in spec.categorical if c.unseen == "accept"})

    def update(self, chunk: pd.DataFrame) -> None:
        for column, (categories, _) in self.columns.items():
            if column not in chunk.columns:
                continue
            values = chunk[column]
            new = values[values.notna() & ~values.astype(str).isin(categories)].astype(str)
            for value, n in new.value_counts(sort=False).items():
                self.values[column][value] = self.values[column].get(value, 0) + int(n)
            room = SAMPLES - len(self.samples[column])
            self.samples[column] += [{"row": int(i), "value": v} for i, v in new.head(max(room, 0)).items()]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per column, each unseen value with its number of rows (columns without any left out)."""
        return {c: dict(sorted(v.items())) for c, v in self.values.items() if v}

    def failures(self, rows: int) -> list[dict[str, Any]]:
        out = []
        for column, (_, limit) in sorted(self.columns.items()):
            count = sum(self.values[column].values())
            if limit is not None and rows and count / rows > limit:
                out.append({"column": column, "check": _unseen_error(limit), "count": count,
                            "samples": self.samples[column],
                            "rule": f"values outside the categories in {count / rows:.0%} of rows, above the "
                                    f"allowed {limit:.0%}",
                            "hint": "add the frequent ones to `categories`, or raise `max_unseen_fraction`"})
        return out
