"""Validation and training from 10^4 to 10^7 rows on one machine: time and peak memory per size, so the growth
curve is visible.

Run as ``.venv/bin/python benchmarks/scale.py [--max-rows N] [--format csv|parquet]``. For each size the batch of
``benchmarks/ingest.py`` (30 columns, deterministic) is generated in a temp dir, then two fresh subprocesses run:

- validation: ``DataStore.ingest`` (what the ``raw_batches`` asset runs: chunked pandera validation, canonical
  Parquet, content-addressed store);
- training: the stored batch loaded as the features asset loads it, split by row-id hash, then
  ``core.training.fitting_rows`` + ``fit`` with the default estimator (hist_gradient_boosting, what
  ``candidate_model`` runs first) and holdout metrics. ``fitting_rows`` caps the fitted rows at
  ``DEFAULT_MAX_TRAIN_ROWS``; ``--max-train-rows 0`` fits on every row instead.

Peak memory is the subprocess's ``ru_maxrss``, which includes the interpreter and imports (printed once).
Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import ROOT, peak_rss, write_batch

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


def validate_worker(path: Path, spec_path: Path, home: Path) -> dict:
    from mlops_assets.core import data
    from resources import DataStore

    store = DataStore(root=str(home / "store"), landing_dir=str(home / "landing"),
                      quarantine_dir=str(home / "quarantine"), spec_path=str(spec_path))
    digest = data.schema_hash(data.raw_schema(store.spec()))
    baseline = peak_rss()
    start = time.perf_counter()
    record, _ = store.ingest("bench", path, source_sha256=data.sha256_file(path), schema_hash=digest)
    return {"seconds": time.perf_counter() - start, "peak_rss": peak_rss(), "baseline_rss": baseline,
            "sha256": record["sha256"], "rows": record["rows"]}


def train_worker(spec_path: Path, home: Path, sha256: str, max_train_rows: int) -> dict:
    from mlops_assets.core import training
    from mlops_assets.core.features import split
    from resources import DataStore

    store = DataStore(root=str(home / "store"), landing_dir=str(home / "landing"),
                      quarantine_dir=str(home / "quarantine"), spec_path=str(spec_path))
    spec = store.spec()
    baseline = peak_rss()
    start = time.perf_counter()
    parts = split(store.load_object(sha256), spec)
    loaded = time.perf_counter()
    load_peak = peak_rss()
    rows = training.fitting_rows(parts.train, spec, max_train_rows)
    result = training.fit(rows, spec, "hist_gradient_boosting", {}, seed=42)
    metrics = training.compute_metrics(result.model, parts.holdout, spec)
    return {"load_seconds": loaded - start, "fit_seconds": time.perf_counter() - loaded,
            "load_peak_rss": load_peak, "peak_rss": peak_rss(), "baseline_rss": baseline,
            "train_rows": len(parts.train), "fit_rows": len(rows), "roc_auc": metrics["roc_auc"]}


def run_worker(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def gb(n: float) -> str:
    return f"{n / 2**30:6.2f} GB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=SIZES[-1], help="largest size to run (default 10^7)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="landed file format")
    parser.add_argument("--max-train-rows", type=int, default=None,
                        help="training cap (default: the platform's DEFAULT_MAX_TRAIN_ROWS; 0: no cap)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.worker:
        kind, *rest = args.worker
        if kind == "validate":
            out = validate_worker(Path(rest[0]), Path(rest[1]), Path(rest[2]))
        else:
            out = train_worker(Path(rest[0]), Path(rest[1]), rest[2], int(rest[3]))
        print(json.dumps(out))
        return 0

    from mlops_assets.core.training import DEFAULT_MAX_TRAIN_ROWS

    cap = DEFAULT_MAX_TRAIN_ROWS if args.max_train_rows is None else args.max_train_rows
    fitted = f"at most about {cap:,} rows" if cap else "every row"
    print(f"30-column batches landed as {args.format}; training: hist_gradient_boosting fitted on {fitted}")
    header = (f"{'rows':>11} | {'validate s':>10} {'rows/s':>9} {'peak RSS':>9} | {'load s':>6} {'fit s':>6} "
              f"{'fit rows':>9} {'load peak':>9} {'peak RSS':>9} {'AUC':>6}")
    print(header)
    print("-" * len(header))
    baseline = None
    for rows in (n for n in SIZES if n <= args.max_rows):
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            folder = Path(tmp)
            paths = write_batch(folder, rows, formats=(args.format,))
            v = run_worker("validate", str(paths[args.format]), str(paths["spec"]), str(folder / "home"))
            paths[args.format].unlink()  # the landed file is no longer needed: leave the disk to the store
            t = run_worker("train", str(paths["spec"]), str(folder / "home"), v["sha256"], str(cap))
        baseline = baseline or (v["baseline_rss"], t["baseline_rss"])
        print(f"{rows:>11,} | {v['seconds']:10.2f} {rows / v['seconds']:9,.0f} {gb(v['peak_rss'])} | "
              f"{t['load_seconds']:6.1f} {t['fit_seconds']:6.1f} {t['fit_rows']:9,} {gb(t['load_peak_rss'])} "
              f"{gb(t['peak_rss'])} {t['roc_auc']:6.3f}", flush=True)
    if baseline:
        print(f"(peaks include the process after its imports: {gb(baseline[0]).strip()} for validation, "
              f"{gb(baseline[1]).strip()} for training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
