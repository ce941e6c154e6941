"""Ingestion of a 1,000,000-row x 30-column batch in bounded memory, against a plain pandas read of the same file.

Run as ``.venv/bin/python benchmarks/ingest.py [--rows N] [--chunk-rows N] [--shuffled]``. Generates a
deterministic batch (CSV and Parquet, written chunk by chunk) and its dataset spec in a temp dir, then measures,
each in a fresh subprocess so that peaks do not mix: our ingestion (``DataStore.ingest`` after hashing the
source, what the ``raw_batches`` asset runs: read in chunks, pandera-validate, write canonical Parquet, store by
sha256) and ``pandas.read_csv`` / ``read_parquet`` of the same file. Peak memory is the process's
``ru_maxrss``; "net" subtracts what the process held after its imports. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
FLOATS, COUNTS, CATEGORIES = 20, 4, {"c0": 4, "c1": 6, "c2": 8, "c3": 12}  # + id + label = 30 columns
NULLABLE = ("x00", "x01", "x02", "x03")
GENERATE_ROWS = 131_072  # rows generated (and Parquet row groups written) at a time


def spec_yaml() -> str:
    """The dataset spec of the generated batch: 20 measurements, 4 counts, 4 categories, an id and a label."""
    numeric = []
    for i in range(FLOATS):
        bounds = {"min": -1000.0, "max": 1000.0} if i % 2 == 0 else {"min": 0.0}
        column = {"name": f"x{i:02d}", **bounds}
        if column["name"] in NULLABLE:
            column.update(nullable=True, max_null_fraction=0.05)
        numeric.append(column)
    numeric += [{"name": f"n{i}", "min": 0.0} for i in range(COUNTS)]
    categorical = [{"name": name, "categories": [f"{name}_{j}" for j in range(k)]} for name, k in CATEGORIES.items()]
    return yaml.safe_dump({"name": "bench", "task": "classification", "target": "label", "id_column": "row_id",
                           "numeric": numeric, "categorical": categorical, "classes": [0, 1]}, sort_keys=False)


def make_chunk(start: int, rows: int, seed: int, ids: np.ndarray) -> pa.Table:
    """Rows ``start`` to ``start + rows`` of the batch: the same seed always gives the same values."""
    rng = np.random.default_rng([seed, start])
    columns: dict[str, np.ndarray] = {"row_id": ids[start:start + rows]}
    signal = np.zeros(rows)
    for i in range(FLOATS):
        x = rng.normal(0, 50, rows) if i % 2 == 0 else rng.lognormal(2, 1, rows)
        signal += x / (50 if i % 2 == 0 else 20) * (1 if i < 6 else 0.1)
        x = np.round(x, 4)
        if f"x{i:02d}" in NULLABLE:
            x[rng.random(rows) < 0.01] = np.nan
        columns[f"x{i:02d}"] = x
    for i in range(COUNTS):
        columns[f"n{i}"] = rng.poisson(3 + i, rows)
    for name, k in CATEGORIES.items():
        codes = rng.integers(0, k, rows)
        signal += 0.3 * (codes == 0)
        columns[name] = np.array([f"{name}_{j}" for j in range(k)], dtype=object)[codes]
    columns["label"] = (rng.random(rows) < 1 / (1 + np.exp(-(signal - 1)))).astype(np.int64)
    arrays = {k: pa.array(v, from_pandas=True) for k, v in columns.items()}
    return pa.table(arrays)


def write_batch(folder: Path, rows: int, *, seed: int = 0, shuffled: bool = False,
                formats: tuple[str, ...] = ("csv", "parquet")) -> dict[str, Path]:
    """The batch as CSV and/or Parquet plus its spec, written chunk by chunk (bounded memory at any size)."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    ids = np.random.default_rng(seed).permutation(rows) if shuffled else np.arange(rows)
    paths = {"spec": folder / "bench.yaml"}
    paths["spec"].write_text(spec_yaml(), encoding="utf-8")
    writers = {}
    try:
        for start in range(0, rows, GENERATE_ROWS):
            table = make_chunk(start, min(GENERATE_ROWS, rows - start), seed, ids)
            if not writers:
                if "csv" in formats:
                    paths["csv"] = folder / "batch.csv"
                    writers["csv"] = pa_csv.CSVWriter(paths["csv"], table.schema)
                if "parquet" in formats:
                    paths["parquet"] = folder / "batch.parquet"
                    writers["parquet"] = pq.ParquetWriter(paths["parquet"], table.schema)
            for writer in writers.values():
                writer.write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def peak_rss() -> int:
    """The process's peak resident memory in bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(kind: str, path: str, spec_path: str, chunk_rows: int) -> None:
    """One measurement in a fresh process; prints JSON."""
    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imported before the baseline, as pandas.read_parquet needs it)

    source = Path(path)
    if kind == "ours":
        sys.path.insert(0, str(ROOT))
        from mlops_assets.core import validation, versions
        from resources import DataStore

        home = source.parent / f"home-{source.suffix[1:]}"
        store = DataStore(root=str(home / "store"), landing_dir=str(home / "landing"),
                          quarantine_dir=str(home / "quarantine"), spec_path=spec_path)
        schema_hash = versions.schema_hash(validation.raw_schema(store.spec()))
        baseline = peak_rss()
        start = time.perf_counter()
        record, _ = store.ingest("bench", source, source_sha256=versions.sha256_file(source), schema_hash=schema_hash,
                                 chunk_rows=chunk_rows)
        seconds = time.perf_counter() - start
        out = {"rows": record["rows"], "sha256": record["sha256"], "stored_bytes": record["bytes"]}
    else:
        baseline = peak_rss()
        start = time.perf_counter()
        frame = pd.read_csv(source) if source.suffix == ".csv" else pd.read_parquet(source)
        seconds = time.perf_counter() - start
        out = {"rows": len(frame), "in_memory_bytes": int(frame.memory_usage(deep=True, index=False).sum())}
    json.dump({**out, "seconds": seconds, "peak_rss": peak_rss(), "baseline_rss": baseline,
               "arrow_peak": pa.default_memory_pool().max_memory()}, sys.stdout)


def measure(kind: str, path: Path, spec_path: Path, chunk_rows: int) -> dict:
    command = [sys.executable, __file__, "--worker", kind, str(path), str(spec_path), str(chunk_rows)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed on {path.name}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: the asset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffled", action="store_true", help="ids in random order (the merge has to sort)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, path, spec_path, chunk_rows = args.worker
        worker(kind, path, spec_path, int(chunk_rows))
        return 0
    sys.path.insert(0, str(ROOT))
    from mlops_assets.core.ingestion import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        started = time.perf_counter()
        paths = write_batch(Path(tmp), args.rows, seed=args.seed, shuffled=args.shuffled)
        print(f"batch: {args.rows:,} rows x 30 columns (20 float, 4 count, 4 categorical, id, label), ids "
              f"{'shuffled' if args.shuffled else 'in order'}, generated in {time.perf_counter() - started:.1f} s; "
              f"chunk_rows={chunk_rows:,}")
        print(f"\n{'':8} {'':26} {'seconds':>8} {'rows/s':>11} {'peak RSS':>10} {'net':>10} {'net/in-mem':>10}")
        digests = []
        for fmt in ("csv", "parquet"):
            path = paths[fmt]
            plain = measure("plain", path, paths["spec"], chunk_rows)
            ours = measure("ours", path, paths["spec"], chunk_rows)
            digests.append(ours["sha256"])
            in_memory = plain["in_memory_bytes"]
            print(f"{fmt:8} file {mb(path.stat().st_size)}, in memory (pandas) {mb(in_memory)}")
            reader = "pandas.read_csv" if fmt == "csv" else "pandas.read_parquet"
            for name, m in ((reader, plain), ("ours: validate + store", ours)):
                net = m["peak_rss"] - m["baseline_rss"]
                print(f"{'':8} {name:26} {m['seconds']:8.2f} {m['rows'] / m['seconds']:11,.0f} "
                      f"{mb(m['peak_rss']):>10} {mb(net):>10} {net / in_memory:9.2f}x")
            net_ours, net_plain = (m["peak_rss"] - m["baseline_rss"] for m in (ours, plain))
            memory = f"{net_ours / net_plain:.2f}x" if net_plain > 2**20 else "n/a (the read fit in freed memory)"
            print(f"{'':8} ours / plain read: time {ours['seconds'] / plain['seconds']:.2f}x, net peak memory "
                  f"{memory}; stored {mb(ours['stored_bytes'])} (Arrow pool peak {mb(ours['arrow_peak'])})\n")
        print(f"same stored sha256 from CSV and Parquet: {digests[0] == digests[1]} ({digests[0][:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
