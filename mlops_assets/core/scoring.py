"""Batch scoring: a landed file of inputs scored by one model version, in bounded memory.

The file is read a chunk at a time (``ingestion.read_chunks``: the parser and file row numbers of ingestion)
and each chunk is validated against the raw schema without the target, with the rules a single row can break
(types, ranges, categories, nulls; ``validation.chunk_schema``). Rows that break a rule are never scored: they
go to a report (rules in the quarantine report's words, samples with their file line and raw text) and a CSV of
the rejected rows, and the good rows are scored. A file whose columns cannot be scored at all (a feature
missing, unreadable) is rejected whole. Scored rows are appended to a Parquet file (moved into place at the end)
and to the prediction log as lines of at most ``line_rows`` rows with slot ``batch``, exactly as online
predictions are logged, so monitoring sees batch and online traffic alike. Memory: one chunk, its predictions
and one Parquet row group, whatever the file's size.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from mlops_assets.core import ingestion
from mlops_assets.core.contracts import BATCH, CHAMPION
from mlops_assets.core.predictions import PREDICTIONS, JsonlLog, prediction_line
from mlops_assets.core.probabilities import Predicted, Predictor, proba_column
from mlops_assets.core.registry import RegistryOperations
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.validation import BatchRejected, chunk_schema, explain, failure_summary, raw_schema

DEFAULT_CHUNK_ROWS = ingestion.DEFAULT_CHUNK_ROWS
LOG_LINE_ROWS = 1000  # rows per prediction-log line of a batch: lines stay small for the readers that parse them
LOG_FLUSH_SECONDS = 120.0  # the longest a chunk waits for its lines to reach the log (a slow object store)
ROW, PREDICTION, MODEL_VERSION, BATCH_ID = "row", "prediction", "model_version", "batch_id"


def input_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The raw schema without the target and without the whole-file rules (unique ids, shares of nulls and of
    unseen categories): what each row to score must pass on its own."""
    raw = raw_schema(spec)
    return chunk_schema(raw.remove_columns([spec.target])).set_name(f"{spec.name}_scoring")


def choose_model(registry: RegistryOperations, pinned: str | None) -> tuple[str, Predictor]:
    """The pinned registry version, else the champion now, loaded as the gateway loads it (skops, this
    registry's own URIs). Raises ``ValueError`` saying what exists when there is no such version."""
    if pinned:
        known = [v.version for v in registry.versions()]
        if str(pinned) not in known:
            raise ValueError(f"model {registry.model_name!r} has no version {pinned}; it has "
                             f"{', '.join(known) or 'none yet'}")
        version = str(pinned)
    else:
        champion = registry.version_by_alias(CHAMPION)
        if champion is None:
            raise ValueError(f"model {registry.model_name!r} has no champion yet: train one (`mlops train`) or "
                             "pin a registered version")
        version = champion.version
    return version, Predictor.of(registry.load_version(version))


@contextlib.contextmanager
def log_writer(root: str | Path) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """A ``log`` for ``score_file``: each chunk's lines are written before the next chunk is read, so memory
    stays bounded, with the gateway's own writer (per-process files, one directory per UTC day)."""
    log = JsonlLog(root, PREDICTIONS)

    def write(lines: list[dict[str, Any]]) -> None:
        for line in lines:
            log.write(line)
        log.flush(timeout=LOG_FLUSH_SECONDS)

    try:
        yield write
    finally:
        log.close(timeout=LOG_FLUSH_SECONDS)


@dataclass
class ScoringRejected(BatchRejected):
    """A file that could not be scored at all (unreadable, a feature missing, no row passing), with its report."""

    report_path: Path | None = None


@dataclass
class ScoredBatch:
    """What scoring one file did: the counts, where the results and the report are, and by which model."""

    batch_id: str
    file: str
    model_version: str
    output: Path
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    log_lines: int = 0
    report: Path | None = None
    ignored_columns: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "file": self.file, "model_version": self.model_version,
                "rows": self.rows, "scored": self.scored, "rejected": self.rejected, "log_lines": self.log_lines,
                "output": str(self.output), "report": str(self.report) if self.report else None,
                "ignored_columns": self.ignored_columns}


class _Rejects:
    """Rejected rows of a file: their failures merged over chunks, and the rows themselves in a CSV."""

    def __init__(self, csv: Path) -> None:
        self.csv = csv
        self.failures: dict[tuple[str, str], dict[str, Any]] = {}
        self.rows = 0

    def add(self, chunk: pd.DataFrame, bad: pd.Index, failures: list[dict[str, Any]]) -> None:
        ingestion._merge_failures(self.failures, failures)
        rows = chunk.loc[bad]
        rows.insert(0, ROW, rows.index)
        rows.to_csv(self.csv, mode="a", header=self.rows == 0, index=False)
        self.rows += len(rows)


def _split_bad_rows(chunk: pd.DataFrame, schema: pa.DataFrameSchema,
                    file: str) -> tuple[pd.DataFrame, pd.Index, list[dict[str, Any]]]:
    """The chunk's valid rows (coerced to the schema's types), the index of its bad rows and their failures.
    A failure that names no row (a missing column) cannot be scored around: the file is rejected."""
    try:
        return schema.validate(chunk, lazy=True), pd.Index([], dtype=np.int64), []
    except pa.errors.SchemaErrors as err:
        failures = failure_summary(err)
        located = err.failure_cases["index"].dropna()
        unlocated = [f for f in failures if not f["samples"]]
        if unlocated or located.empty:
            raise BatchRejected(file, "cannot be scored: "
                                      + "; ".join(f"{f['column']}: {f['rule']}" for f in unlocated or failures),
                                failures) from err
    bad = pd.Index(located.astype(np.int64).unique())
    return schema.validate(chunk.drop(index=bad), lazy=True), bad, failures


def _output_frame(valid: pd.DataFrame, spec: DatasetSpec, predicted: Predicted, classes: tuple | None,
                  version: str, batch_id: str) -> pd.DataFrame:
    keys = [c for c in (spec.id_column, spec.timestamp_column) if c]
    out = valid[keys].copy()
    out.insert(len(keys), ROW, valid.index.to_numpy(dtype=np.int64))
    out[PREDICTION] = predicted.labels
    for i, cls in enumerate(classes or ()):
        out[proba_column(cls)] = predicted.proba[:, i]
    out[MODEL_VERSION] = version
    out[BATCH_ID] = batch_id
    return out.reset_index(drop=True)


def _log_lines(valid: pd.DataFrame, spec: DatasetSpec, predicted: Predicted, classes: tuple | None, *,
               model_name: str, version: str, batch_id: str, first_line: int, line_rows: int,
               latency_ms: float) -> list[dict[str, Any]]:
    """The chunk's rows as prediction-log lines (``<batch id>:<line>``), features with the id and timestamp."""
    columns = [c for c in (spec.id_column, spec.timestamp_column) if c] + spec.feature_names
    table = valid[columns].astype(object)
    data = table.where(table.notna(), None).to_numpy().tolist()
    labels = predicted.labels.tolist()
    proba = None if predicted.proba is None else predicted.proba.tolist()
    lines = []
    for n, start in enumerate(range(0, len(data), line_rows)):
        stop = start + line_rows
        lines.append(prediction_line(
            f"{batch_id}:{first_line + n}", model_name=model_name, model_version=version, slot=BATCH,
            columns=columns, data=data[start:stop], outputs=labels[start:stop], latency_ms=latency_ms,
            probabilities=None if proba is None else proba[start:stop],
            classes=list(classes) if proba is not None else None))
    return lines


def score_file(path: Path, spec: DatasetSpec, predictor: Predictor, *, model_name: str, model_version: str,
               batch_id: str, output: Path, report_dir: Path, log: Callable[[list[dict[str, Any]]], None],
               chunk_rows: int = DEFAULT_CHUNK_ROWS, line_rows: int = LOG_LINE_ROWS) -> ScoredBatch:
    """Validate and score ``path`` a chunk at a time; ``log`` receives each chunk's prediction lines (and may
    block until they are written, which bounds memory). Raises ``BatchRejected`` (with its report written) when
    the file cannot be scored at all or no row passes."""
    schema = input_schema(spec)
    wanted = list(schema.columns)
    result = ScoredBatch(batch_id, path.name, model_version, output)
    report_dir.mkdir(parents=True, exist_ok=True)
    rejects = _Rejects(report_dir / f"{batch_id}.rejected.csv")
    rejects.csv.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in ingestion.read_chunks(path, spec, chunk_rows):
            if not result.rows:
                result.ignored_columns = [str(c) for c in chunk.columns if c not in wanted]
            result.rows += len(chunk)
            valid, bad, failures = _split_bad_rows(chunk[[c for c in chunk.columns if c in wanted]], schema,
                                                   path.name)
            if len(bad):
                rejects.add(chunk, bad, failures)
            if valid.empty:
                continue
            started = time.perf_counter()
            predicted = predictor.predict(valid[spec.feature_names])
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            table = pa_arrow.Table.from_pandas(_output_frame(valid, spec, predicted, predictor.classes,
                                                             model_version, batch_id), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema.remove_metadata(), compression="zstd")
            writer.write_table(table.cast(writer.schema))
            lines = _log_lines(valid, spec, predicted, predictor.classes, model_name=model_name,
                               version=model_version, batch_id=batch_id, first_line=result.log_lines,
                               line_rows=line_rows, latency_ms=latency_ms)
            log(lines)
            result.log_lines += len(lines)
            result.scored += len(valid)
        if writer is not None:
            writer.close()
            writer = None
        result.rejected = rejects.rows
        if rejects.rows:
            failures = [explain(f, schema) for f in ingestion._with_raw_text(
                path, [rejects.failures[k] for k in sorted(rejects.failures)], chunk_rows)]
            result.failures = failures
            result.report = _write_report(report_dir, batch_id, {
                **result.summary(), "reason": f"{rejects.rows} of {result.rows} row(s) break the rules of "
                                              f"{schema.name!r} and were not scored",
                "rejected_rows": str(rejects.csv), "failures": failures})
        if not result.scored:
            raise BatchRejected(path.name, f"none of its {result.rows} rows passes {schema.name!r}: nothing "
                                           "was scored", result.failures)
        partial.replace(output)
    except BatchRejected as rejected:
        if result.report is None:
            result.report = _write_report(report_dir, batch_id, {**result.summary(), **rejected.report()})
        raise ScoringRejected(rejected.file, rejected.reason, rejected.failures, result.report) from rejected
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    if not rejects.rows:
        rejects.csv.unlink(missing_ok=True)
        stale = report_dir / f"{batch_id}.report.json"
        stale.unlink(missing_ok=True)  # a report of an earlier run of this batch no longer holds
    return result


def _write_report(report_dir: Path, batch_id: str, report: dict[str, Any]) -> Path:
    target = report_dir / f"{batch_id}.report.json"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    tmp.replace(target)
    return target
