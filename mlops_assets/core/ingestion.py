"""Reading a landed CSV or Parquet batch and storing it as canonical Parquet, in bounded memory.

Canonical: columns in spec order, rows in id order, fixed compression and row groups, so the same data
always gives the same bytes (and the same content hash, ``core.versions``) whatever the file's row or
column order or the chunk size it was read in. A file of any size is read, validated
(``core.validation``) and written a chunk at a time: sorted runs are spilled to disk, then merged into row groups.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.validation import (
    SAMPLES,
    BatchRejected,
    UnseenCounts,
    chunk_schema,
    explain,
    failure_summary,
    null_limits,
    null_share_failures,
    raw_schema,
    rejected_reason,
)
from mlops_assets.core.versions import PARTITION_KEY, sha256_file

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
# Rows read, validated and converted at a time: what bounds ingestion's working memory beside one row group.
DEFAULT_CHUNK_ROWS = 64 * 1024
# pyarrow's default row group, what ``to_parquet_bytes`` writes: the streaming writer cuts the same row groups,
# so a batch has the same bytes however it was read. It holds one row group in memory at a time.
ROW_GROUP_ROWS = 1024 * 1024
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


def partition_key_for(path: Path) -> str:
    """The batch's partition key: its file name without the suffix, checked to be a safe key."""
    key = path.stem if path.suffix.lower() in SUPPORTED_SUFFIXES else path.name
    if not PARTITION_KEY.match(key):
        raise BatchRejected(path.name, "file name must start with a letter or digit and use only "
                                       "letters, digits, '_', '.' and '-' (at most 128 characters)")
    return key


def read_chunks(path: Path, spec: DatasetSpec, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A CSV or Parquet batch ``chunk_rows`` rows at a time, each chunk indexed by its rows' numbers in the file
    (0 = the first data row), so failure reports name the file's rows. Any unreadable file, or one damaged in a
    later chunk, becomes a ``BatchRejected`` naming the problem.

    CSV goes through pandas' chunked C parser, the parser (float rounding, NA tokens, dtypes) of a whole-file
    read. pandas' default float parser is not correctly rounded and pyarrow's is: they disagree on many
    full-precision floats, so switching parsers would change the hash of batches already stored.
    """
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BatchRejected(name, f"unsupported file type {suffix or '(none)'}; use .csv or .parquet")
    if path.stat().st_size == 0:
        raise BatchRejected(name, "file is empty")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    categorical = {c.name: "string" for c in spec.categorical}
    rows, first = 0, True
    try:
        if suffix == ".csv":
            chunks = pd.read_csv(path, dtype=categorical, encoding="utf-8", encoding_errors="strict",
                                 chunksize=chunk_rows, thousands=spec.thousands)
        else:
            chunks = _parquet_chunks(path, chunk_rows)
        for chunk in chunks:
            if first and len(chunk.columns) == 1 and len(spec.raw_columns) > 1 \
                    and any(d in chunk.columns[0] for d in ";\t|"):
                raise BatchRejected(name, f"found one column {chunk.columns[0]!r}: the file looks like it uses "
                                          "another delimiter; CSV batches must be comma-separated")
            first = False
            rows += len(chunk)
            if len(chunk):
                yield chunk
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
    if rows == 0:
        raise BatchRejected(name, "file has a header but no rows")


def _parquet_chunks(path: Path, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    start = 0
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=chunk_rows, columns=columns):
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(start, start + len(frame))  # row numbers in the file, not a stored index
        start += len(frame)
        yield frame


def canonical_frame(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Columns in spec order, rows in id order: the same data always gives the same bytes."""
    frame = frame[spec.raw_columns]
    if spec.id_column:
        frame = frame.sort_values(spec.id_column, kind="stable")
    return frame.reset_index(drop=True)


def to_parquet_bytes(frame: pd.DataFrame, *, row_group_rows: int = ROW_GROUP_ROWS) -> bytes:
    """Deterministic Parquet bytes (no pandas index, fixed compression and row groups)."""
    buf = io.BytesIO()
    table = pa_arrow.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, buf, row_group_size=row_group_rows, **PARQUET_OPTIONS)
    return buf.getvalue()


@dataclass(frozen=True)
class CanonicalBatch:
    """A validated batch written as canonical Parquet: what the store needs to keep it."""

    path: Path
    sha256: str
    rows: int
    bytes: int
    columns: list[str]
    preview: pd.DataFrame  # its first rows, for the UI
    unseen: dict[str, dict[str, int]]  # values accepted outside their column's categories (``unseen: accept``)


def ingest_file(path: Path, spec: DatasetSpec, out: Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                row_group_rows: int = ROW_GROUP_ROWS) -> CanonicalBatch:
    """Validate a CSV or Parquet batch chunk by chunk and write it to ``out`` as canonical Parquet.

    Rules that need the whole file (unique ids, share of nulls) are counted across chunks, so a batch fails
    for the same rules, with the same row numbers, as when it is read whole. Memory is bounded by one chunk,
    one row group and 8 to 16 bytes per row for the ids (to check uniqueness exactly and to sort by them).
    Valid chunks are sorted by id and spilled to an Arrow file beside ``out``, then merged into row groups:
    the bytes equal ``to_parquet_bytes(canonical_frame(...), row_group_rows=...)`` of the whole file.
    """
    schema = raw_schema(spec)
    per_chunk = chunk_schema(schema)
    limits = null_limits(spec)
    nulls = dict.fromkeys(limits, 0)
    unseen = UnseenCounts.of(spec)
    failures: dict[tuple[str, str], dict[str, Any]] = {}
    ids: list[tuple[int, np.ndarray, np.ndarray | None]] = []  # per chunk: first row, ids, mask of usable ids
    run_rows: list[int] = []
    columns: list[str] = []
    rows = 0
    arrow_schema: pa_arrow.Schema | None = None
    spill = out.with_name(f"{out.name}.spill.arrow")
    writer: ipc.RecordBatchFileWriter | None = None
    try:
        for chunk in read_chunks(path, spec, chunk_rows):
            columns = columns or [str(c) for c in chunk.columns]
            rows += len(chunk)
            for col in limits.keys() & set(chunk.columns):
                nulls[col] += int(chunk[col].isna().sum())
            unseen.update(chunk)
            if spec.id_column in chunk.columns:
                ids.append((int(chunk.index[0]), *_row_ids(chunk[spec.id_column])))
            try:
                valid = per_chunk.validate(chunk, lazy=True)
            except pa.errors.SchemaErrors as err:
                _merge_failures(failures, failure_summary(err))
                continue
            if failures:
                continue  # the batch is rejected: keep validating for the report, stop writing
            table = _canonical_table(valid, spec, arrow_schema, path.name)
            if writer is None:
                arrow_schema = table.schema
                writer = ipc.new_file(spill, arrow_schema)
            writer.write_table(table)
            run_rows.append(table.num_rows)
        if writer is not None:
            writer.close()
            writer = None
        failures.update({(f["column"], f["check"]): f for f in null_share_failures(
            {c: n for c, n in nulls.items() if c in columns}, rows, limits)})
        failures.update({(f["column"], f["check"]): f for f in unseen.failures(rows)})
        sorted_ids = _unique_ids(ids, spec.id_column, failures)
        if failures:
            report = [explain(f, schema) for f in _with_raw_text(path, [failures[k] for k in sorted(failures)],
                                                                 chunk_rows)]
            raise BatchRejected(path.name, rejected_reason(schema.name, report), report)
        runs = [np.sort(chunk_ids) for _, chunk_ids, _ in ids] if spec.id_column else None
        del ids
        _merge_runs(spill, run_rows, runs, sorted_ids, out, arrow_schema, spec.id_column, row_group_rows)
    finally:
        if writer is not None:
            writer.close()
        spill.unlink(missing_ok=True)
    preview = next(pq.ParquetFile(out).iter_batches(batch_size=5)).to_pandas()
    return CanonicalBatch(path=out, sha256=sha256_file(out), rows=rows, bytes=out.stat().st_size,
                          columns=list(spec.raw_columns), preview=preview, unseen=unseen.counts())


def _row_ids(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """A chunk's ids as int64 and a mask of the rows whose id is a whole number (None: all of them)."""
    values = pd.to_numeric(series, errors="coerce")
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.to_numpy(dtype=np.int64), None
    floats = values.to_numpy(dtype=np.float64, na_value=np.nan)
    # Beyond int64 an id cannot be stored: the type rule reports it, the uniqueness rule must not see garbage.
    usable = np.isfinite(floats) & (floats == np.round(floats)) & (np.abs(floats) < 2.0**63)
    return np.where(usable, floats, 0).astype(np.int64), usable


def _unique_ids(ids: list[tuple[int, np.ndarray, np.ndarray | None]], id_column: str | None,
                failures: dict[tuple[str, str], dict[str, Any]]) -> np.ndarray | None:
    """Every id of the file, sorted; duplicates anywhere in the file are added to ``failures`` with all their
    rows, as pandera's uniqueness check reports them."""
    if not id_column or not ids:
        return None
    every = np.concatenate([chunk_ids if usable is None else chunk_ids[usable] for _, chunk_ids, usable in ids])
    every.sort()
    repeated = np.unique(every[1:][every[1:] == every[:-1]])
    if repeated.size:
        count, samples = 0, []
        for first, chunk_ids, usable in ids:
            hit = np.isin(chunk_ids, repeated) if usable is None else np.isin(chunk_ids, repeated) & usable
            positions = np.flatnonzero(hit)
            count += len(positions)
            samples += [{"row": first + int(p), "value": str(chunk_ids[p])} for p in positions[:SAMPLES]]
        failures[(id_column, "field_uniqueness")] = {
            "column": id_column, "check": "field_uniqueness", "count": count, "samples": samples[:SAMPLES]}
    return every


def _merge_failures(into: dict[tuple[str, str], dict[str, Any]], failures: list[dict[str, Any]]) -> None:
    """Add one chunk's failures: failing rows add up; outcomes without rows (a missing column, a check that
    raised) are the same in every chunk and count once."""
    for failure in failures:
        key = (failure["column"], failure["check"])
        seen = into.get(key)
        if seen is None:
            into[key] = dict(failure)
        elif failure["samples"]:  # chunks come in file order: the first samples stay the first rows
            seen["count"] += failure["count"]
            seen["samples"] = (seen["samples"] + failure["samples"])[:SAMPLES]


def _with_raw_text(path: Path, failures: list[dict[str, Any]], chunk_rows: int) -> list[dict[str, Any]]:
    """``failures`` with each sample's value as the file has it (a second, text-only read of the few columns
    and rows named) and, for CSV, its row given as the file's line number (line 1 is the header)."""
    wanted: dict[int, set[str]] = {}
    for failure in failures:
        for sample in failure["samples"]:
            wanted.setdefault(sample["row"], set()).add(failure["column"])
    columns = sorted(set().union(*wanted.values())) if wanted else []
    raw: dict[tuple[int, str], str] = {}
    if columns:
        for chunk in _text_chunks(path, columns, chunk_rows):
            for row in wanted.keys() & set(chunk.index):
                raw.update({(row, col): str(chunk.at[row, col]) for col in wanted[row]})
    csv = path.suffix.lower() == ".csv"
    return [{**f, "samples": [{("line" if csv else "row"): s["row"] + 2 if csv else s["row"],
                               "value": raw.get((s["row"], f["column"]), s["value"])} for s in f["samples"]]}
            for f in failures]


def _text_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The named columns as text, exactly as written (no missing-value markers turned into NaN)."""
    if path.suffix.lower() == ".csv":
        yield from pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False, chunksize=chunk_rows)
        return
    for chunk in _parquet_chunks(path, chunk_rows, columns):
        yield chunk.astype("string").fillna("")


def _canonical_table(valid: pd.DataFrame, spec: DatasetSpec, schema: pa_arrow.Schema | None,
                     file: str) -> pa_arrow.Table:
    """A validated chunk in canonical column and row order, with the Arrow types of the first chunk."""
    try:
        return to_arrow(canonical_frame(valid, spec), schema)
    except (pa_arrow.ArrowInvalid, pa_arrow.ArrowTypeError) as exc:
        first, last = int(valid.index.min()), int(valid.index.max())
        raise BatchRejected(file, f"column types change in rows {first}-{last} from those of the first rows: "
                                  f"{exc}") from exc


def to_arrow(frame: pd.DataFrame, schema: pa_arrow.Schema | None = None) -> pa_arrow.Table:
    """One chunk of a table as Arrow, with the types of the table's first chunk (``schema``) when given.

    A text column with no value in the first chunk has no type yet: it becomes text.
    """
    if schema is None:
        table = pa_arrow.Table.from_pandas(frame, preserve_index=False)
        schema = pa_arrow.schema([pa_arrow.field(f.name, pa_arrow.string()) if pa_arrow.types.is_null(f.type)
                                  else f for f in table.schema])
        return table.cast(schema).replace_schema_metadata(None)
    return pa_arrow.Table.from_pandas(frame, schema=schema, preserve_index=False).replace_schema_metadata(None)


def _merge_runs(spill: Path, run_rows: list[int], runs: list[np.ndarray] | None, sorted_ids: np.ndarray | None,
                out: Path, schema: pa_arrow.Schema, id_column: str | None, row_group_rows: int) -> None:
    """Write the spilled runs (each sorted by id) to ``out`` one row group at a time, in id order.

    A row group's rows from one run are a contiguous slice of it (the run is sorted), found by the id that
    ends the row group. Each row group is built column by column from a fresh memory map of the spill, so
    beside the row group itself only one column's pages are resident at a time.
    """
    starts = np.cumsum([0, *run_rows[:-1]])
    lengths = np.asarray(run_rows)
    cursors = np.zeros(len(run_rows), dtype=np.int64)
    total = int(lengths.sum())
    with pq.ParquetWriter(out, schema, **PARQUET_OPTIONS) as writer:
        for begin in range(0, total, row_group_rows):
            stop = min(begin + row_group_rows, total)
            if runs is None:  # no id: file order
                ends = np.clip(stop - starts, 0, lengths)
            else:
                ends = np.array([np.searchsorted(run, sorted_ids[stop - 1], side="right") for run in runs])
            slices = [(r, int(cursors[r]), int(ends[r] - cursors[r])) for r in range(len(run_rows))
                      if ends[r] > cursors[r]]
            order = None
            if id_column and len(slices) > 1:
                keys = _spilled_column(spill, schema.get_field_index(id_column), slices).to_numpy()
                if not np.all(keys[1:] > keys[:-1]):
                    order = pa_arrow.array(np.argsort(keys, kind="stable"))
            # Contiguous buffers per column: the Parquet pages then equal those of a whole-file write.
            writer.write_table(pa_arrow.Table.from_arrays(
                [_spilled_column(spill, i, slices, order) for i in range(len(schema))], schema=schema))
            cursors = ends  # (the row group is freed before the next one is built)


def _spilled_column(spill: Path, index: int, slices: list[tuple[int, int, int]],
                    order: pa_arrow.Array | None = None) -> pa_arrow.Array:
    """One column of a row group: the runs' slices concatenated (and put in ``order``), copied out of the map."""
    with pa_arrow.memory_map(str(spill)) as source:
        reader = ipc.open_file(source)
        pieces = [reader.get_batch(r).column(index).slice(start, size) for r, start, size in slices]
        column = pa_arrow.concat_arrays(pieces)
        return column if order is None else column.take(order)
