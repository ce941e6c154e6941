"""Reading, validating and content-addressing data batches; dataset versions as manifests of hashes.

A batch that fails gets a ``BatchRejected`` naming the file and, per failed rule, the column, the check,
how many rows fail and a sample of them: what the quarantine report and the Dagster UI show.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from mlops_assets.core.spec import DatasetSpec

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
FRAME_CHECKS = {"column_in_dataframe": "missing column", "column_in_schema": "unexpected column"}
PARTITION_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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


def partition_key_for(path: Path) -> str:
    """The batch's partition key: its file name without the suffix, checked to be a safe key."""
    key = path.stem if path.suffix.lower() in SUPPORTED_SUFFIXES else path.name
    if not PARTITION_KEY.match(key):
        raise BatchRejected(path.name, "file name must start with a letter or digit and use only "
                                       "letters, digits, '_', '.' and '-' (at most 128 characters)")
    return key


def read_batch(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read a CSV or Parquet batch; any unreadable file becomes a ``BatchRejected`` naming the problem."""
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BatchRejected(name, f"unsupported file type {suffix or '(none)'}; use .csv or .parquet")
    if path.stat().st_size == 0:
        raise BatchRejected(name, "file is empty")
    categorical = {c.name: "string" for c in spec.categorical}
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=categorical, encoding="utf-8", encoding_errors="strict")
        else:
            frame = pq.read_table(path).to_pandas()
    except UnicodeDecodeError as exc:
        raise BatchRejected(name, f"not UTF-8 text (byte {exc.start}): re-export the file as UTF-8") from exc
    except pd.errors.EmptyDataError as exc:
        raise BatchRejected(name, "file has no columns (empty or blank)") from exc
    except pd.errors.ParserError as exc:
        raise BatchRejected(name, f"malformed CSV: {exc}".strip()) from exc
    except (pa_arrow.ArrowException, OSError) as exc:
        raise BatchRejected(name, f"unreadable Parquet (truncated or corrupt?): {exc}") from exc
    except ValueError as exc:
        raise BatchRejected(name, f"unreadable file: {exc}") from exc
    if len(frame.columns) == 1 and len(spec.raw_columns) > 1 and any(d in frame.columns[0] for d in ";\t|"):
        raise BatchRejected(name, f"found one column {frame.columns[0]!r}: the file looks like it uses another "
                                  "delimiter; CSV batches must be comma-separated")
    if frame.empty:
        raise BatchRejected(name, "file has a header but no rows")
    return frame


def _null_fraction_check(limit: float) -> pa.Check:
    return pa.Check(lambda s: s.isna().mean() <= limit, element_wise=False, ignore_na=False,
                    name=f"null_fraction<={limit}", error=f"share of nulls <= {limit}")


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


def canonical_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Columns in spec order, rows in id order: the same data always gives the same bytes."""
    frame = frame[spec.raw_columns]
    if spec.id_column:
        frame = frame.sort_values(spec.id_column, kind="stable")
    return frame.reset_index(drop=True)


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes (no pandas index, fixed compression)."""
    buf = io.BytesIO()
    table = pa_arrow.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def schema_hash(schema: pa.DataFrameSchema) -> str:
    return sha256_bytes(schema.to_json().encode("utf-8"))[:16]


def build_manifest(batches: list[dict[str, Any]], *, spec_name: str, schema_digest: str) -> dict[str, Any]:
    """A dataset version: the sorted list of its batches' hashes; its id is the hash of that list.

    Only content goes into the id (not the time), so the same accepted batches always give the same id.
    """
    entries = sorted(({"partition": b["partition"], "sha256": b["sha256"], "rows": int(b["rows"])}
                      for b in batches), key=lambda e: e["partition"])
    content = {"spec": spec_name, "schema_hash": schema_digest, "batches": entries}
    digest = sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())
    return {
        "id": digest[:16],
        "digest": digest,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": sum(e["rows"] for e in entries),
        **content,
    }


def stable_holdout_mask(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Rows go to the holdout by a hash of their id, so a row keeps its side across dataset versions
    and the champion and the challenger are always compared on rows neither trained on."""
    if spec.id_column:
        keys = pd.util.hash_pandas_object(frame[spec.id_column], index=False).to_numpy()
    else:
        keys = pd.util.hash_pandas_object(frame[spec.feature_names + [spec.target]], index=False).to_numpy()
    return (keys % 10_000) < int(spec.holdout_fraction * 10_000)
