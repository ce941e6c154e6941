"""Tables from the files users hand the CLI (CSV or Parquet), with errors worded for them.

Shared by ``mlops drift`` and ``mlops schema infer``. pandas is imported only when a frame is built: a
Parquet file of numbers reaches the drift engine as numpy arrays read from Arrow buffers, so ``mlops drift``
on such files starts without pandas (most of its start-up time on a loaded machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pandas as pd


class TableInputError(Exception):
    """A problem with an input file or option, reported to the user without a traceback."""


def read_table(path: str) -> pd.DataFrame:
    """CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) by extension."""
    import pandas as pd

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


def _is_number_type(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)


def _float64(chunk: pa.Array) -> np.ndarray:
    """An integer or floating Arrow array as float64, nulls as NaN, straight from its buffers.

    pyarrow's own ``to_numpy`` imports pandas to do this; the result is the same as pandas' ``to_numpy(
    dtype=float64, na_value=nan)`` of the column. Read-only (a view of Arrow's memory) when nothing changes.
    """
    kind = "f" if pa.types.is_floating(chunk.type) else "u" if pa.types.is_unsigned_integer(chunk.type) else "i"
    end = chunk.offset + len(chunk)
    validity, data = chunk.buffers()
    raw = np.frombuffer(data, dtype=f"{kind}{chunk.type.bit_width // 8}", count=end)[chunk.offset:]
    values = raw.astype(np.float64, copy=chunk.null_count > 0)
    if chunk.null_count:
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), count=end, bitorder="little")[chunk.offset:]
        values[bits == 0] = np.nan
    return values


class ParquetColumns:
    """A Parquet file as a table whose columns are read one at a time, when asked for: ``detect_drift`` then
    holds only the columns in flight, however large the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
        pandas_meta = schema.pandas_metadata or {}
        index = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
        self.columns = [name for name in schema.names if name not in index]  # a stored index is not data
        self._types = {name: schema.field(name).type for name in self.columns}
        self._rows = file.metadata.num_rows

    def __len__(self) -> int:
        return self._rows

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def _read(self, name: str) -> pa.ChunkedArray:
        if name not in self._types:
            raise KeyError(name)
        # A ParquetFile per read (not shared) so that threads can read columns at once; the footer is small.
        return pq.ParquetFile(self.path).read(columns=[name], use_pandas_metadata=False).column(0)

    def __getitem__(self, name: str) -> pd.Series:
        return self._read(name).to_pandas().rename(name)

    def get(self, name: str, default: pd.Series | None = None) -> pd.Series | None:
        return self[name] if name in self._types else default

    def stores_floats(self, name: str) -> bool:
        """Whether the column is stored as floating point numbers: known from the schema, nothing is read."""
        return pa.types.is_floating(self._types[name])

    def floats(self, name: str) -> np.ndarray | None:
        """The column as float64 with nulls as NaN when stored as integers or floats (no pandas); None else."""
        if not _is_number_type(self._types[name]):
            return None
        chunks = [_float64(chunk) for chunk in self._read(name).chunks]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks or [np.empty(0)])


if TYPE_CHECKING:
    Table: TypeAlias = pd.DataFrame | ParquetColumns


def open_table(path: str) -> Table:
    """``read_table`` for column-at-a-time readers: a Parquet file is opened (``ParquetColumns``), not loaded."""
    if "".join(Path(path).suffixes[-2:]).lower().endswith((".parquet", ".pq")) and Path(path).is_file():
        try:
            return ParquetColumns(path)
        except Exception as exc:  # any reader failure is a user-facing input problem
            raise _unreadable(path, exc) from exc
    return read_table(path)
