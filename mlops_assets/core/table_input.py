"""Tables from the files users hand the CLI (CSV or Parquet), with errors worded for them.

Shared by ``mlops drift`` and ``mlops schema infer``; pure pandas/pyarrow, so any front end can use it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


class TableInputError(Exception):
    """A problem with an input file or option, reported to the user without a traceback."""


def read_table(path: str) -> pd.DataFrame:
    """CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) by extension."""
    suffixes = "".join(Path(path).suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif suffixes.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv
    else:
        raise TableInputError(f"{path}: unsupported file type (expected .csv, .csv.gz, .parquet or .pq)")
    if not Path(path).is_file():
        raise TableInputError(f"{path}: no such file")
    try:
        return reader(path)
    except Exception as exc:  # any parser failure is a user-facing input problem
        raise _unreadable(path, exc) from exc


def _unreadable(path: str, exc: Exception) -> TableInputError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TableInputError(f"{path}: cannot read ({message})")


class ParquetColumns:
    """A Parquet file as a table whose columns are read one at a time, when asked for: ``detect_drift`` then
    holds only the columns in flight (at most 4 per side), however large the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        meta = pq.read_schema(path)
        pandas_meta = meta.pandas_metadata or {}
        index = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
        self.columns = [name for name in meta.names if name not in index]  # a stored index is not data
        self._rows = pq.read_metadata(path).num_rows

    def __len__(self) -> int:
        return self._rows

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self.columns:
            raise KeyError(name)
        return pq.read_table(self.path, columns=[name]).column(0).to_pandas().rename(name)

    def get(self, name: str, default: pd.Series | None = None) -> pd.Series | None:
        return self[name] if name in self.columns else default


Table = pd.DataFrame | ParquetColumns


def open_table(path: str) -> Table:
    """``read_table`` for column-at-a-time readers: a Parquet file is opened (``ParquetColumns``), not loaded."""
    if "".join(Path(path).suffixes[-2:]).lower().endswith((".parquet", ".pq")) and Path(path).is_file():
        try:
            return ParquetColumns(path)
        except Exception as exc:  # any reader failure is a user-facing input problem
            raise _unreadable(path, exc) from exc
    return read_table(path)
