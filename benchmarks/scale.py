"""Validation and training from 10^4 to 10^7 rows on one machine: time and peak memory per size, so the growth
curve is visible.

Run as ``.venv/bin/python benchmarks/scale.py [--max-rows N] [--format csv|parquet]``. For each size the batch of
``benchmarks/ingest.py`` (30 columns, deterministic) is generated in a temp dir, then two fresh subprocesses run:

- validation: ``DataStore.ingest`` (what the ``raw_batches`` asset runs: chunked pandera validation, canonical
  Parquet, content-addressed store);
- features: what the ``features`` asset runs: the dataset version streamed a chunk at a time
  (``DataStore.iter_dataset``), split by row-id hash, validated and profiled (``core.features.build_features``),
  written as train and holdout tables (``DataStore.feature_tables``);
- training: what ``candidate_model`` runs first: ``DataStore.sample_features`` streams the train table and keeps
  at most ``DEFAULT_MAX_TRAIN_ROWS`` rows (a row-id hash sample; ``--max-train-rows 0`` keeps every row), then
  ``fit`` with the default estimator (hist_gradient_boosting) and metrics on ``DataStore.holdout`` (a sample of at
  most ``max_holdout_rows``, 1,000,000 by default).

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
    from mlops_assets.core import validation, versions
    from resources import DataStore

    store = DataStore(root=str(home / "store"), landing_dir=str(home / "landing"),
                      quarantine_dir=str(home / "quarantine"), spec_path=str(spec_path))
    digest = versions.schema_hash(validation.raw_schema(store.spec()))
    baseline = peak_rss()
    start = time.perf_counter()
    record, _ = store.ingest("bench", path, source_sha256=versions.sha256_file(path), schema_hash=digest)
    return {"seconds": time.perf_counter() - start, "peak_rss": peak_rss(), "baseline_rss": baseline,
            "sha256": record["sha256"], "rows": record["rows"]}


def _store(spec_path: Path, home: Path):
    from resources import DataStore

    return DataStore(root=str(home / "store"), landing_dir=str(home / "landing"),
                     quarantine_dir=str(home / "quarantine"), spec_path=str(spec_path))


def features_worker(spec_path: Path, home: Path, sha256: str) -> dict:
    from mlops_assets.core import versions
    from mlops_assets.core.features import build_features

    store = _store(spec_path, home)
    spec = store.spec()
    record = store.batch_record("bench")
    manifest = store.save_dataset(versions.build_manifest([record], spec_name=spec.name,
                                                      schema_digest=record["schema_hash"]))
    assert record["sha256"] == sha256
    baseline = peak_rss()
    start = time.perf_counter()
    with store.feature_tables(manifest["id"], ("train", "holdout")) as write:
        profiles = build_features(store.iter_dataset(manifest["id"]), spec, write)
    return {"seconds": time.perf_counter() - start, "peak_rss": peak_rss(), "baseline_rss": baseline,
            "dataset_id": manifest["id"], "train_rows": profiles["train"].rows}


def train_worker(spec_path: Path, home: Path, dataset_id: str, max_train_rows: int) -> dict:
    from mlops_assets.core import training
    from mlops_assets.core.metrics import compute_metrics

    store = _store(spec_path, home)
    spec = store.spec()
    baseline = peak_rss()
    start = time.perf_counter()
    rows, train_rows = store.sample_features(dataset_id, "train", max_train_rows)
    holdout = store.holdout(dataset_id)
    loaded = time.perf_counter()
    load_peak = peak_rss()
    result = training.fit(rows, spec, "hist_gradient_boosting", {}, seed=42)
    metrics = compute_metrics(result.model, holdout, spec)
    return {"load_seconds": loaded - start, "fit_seconds": time.perf_counter() - loaded,
            "load_peak_rss": load_peak, "peak_rss": peak_rss(), "baseline_rss": baseline,
            "train_rows": train_rows, "fit_rows": len(rows), "roc_auc": metrics["roc_auc"]}


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
        elif kind == "features":
            out = features_worker(Path(rest[0]), Path(rest[1]), rest[2])
        else:
            out = train_worker(Path(rest[0]), Path(rest[1]), rest[2], int(rest[3]))
        print(json.dumps(out))
        return 0

    from mlops_assets.core.training import DEFAULT_MAX_TRAIN_ROWS

    cap = DEFAULT_MAX_TRAIN_ROWS if args.max_train_rows is None else args.max_train_rows
    fitted = f"at most about {cap:,} rows" if cap else "every row"
    print(f"30-column batches landed as {args.format}; training: hist_gradient_boosting fitted on {fitted}")
    header = (f"{'rows':>11} | {'validate s':>10} {'rows/s':>9} {'peak RSS':>9} | {'features s':>10} {'peak RSS':>9} | "
              f"{'load s':>6} {'fit s':>6} {'fit rows':>9} {'load peak':>9} {'peak RSS':>9} {'AUC':>6}")
    print(header)
    print("-" * len(header))
    baseline = None
    for rows in (n for n in SIZES if n <= args.max_rows):
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            folder = Path(tmp)
            home = str(folder / "home")
            paths = write_batch(folder, rows, formats=(args.format,))
            v = run_worker("validate", str(paths[args.format]), str(paths["spec"]), home)
            paths[args.format].unlink()  # the landed file is no longer needed: leave the disk to the store
            f = run_worker("features", str(paths["spec"]), home, v["sha256"])
            t = run_worker("train", str(paths["spec"]), home, f["dataset_id"], str(cap))
        baseline = baseline or (v["baseline_rss"], f["baseline_rss"], t["baseline_rss"])
        print(f"{rows:>11,} | {v['seconds']:10.2f} {rows / v['seconds']:9,.0f} {gb(v['peak_rss'])} | "
              f"{f['seconds']:10.2f} {gb(f['peak_rss'])} | "
              f"{t['load_seconds']:6.1f} {t['fit_seconds']:6.1f} {t['fit_rows']:9,} {gb(t['load_peak_rss'])} "
              f"{gb(t['peak_rss'])} {t['roc_auc']:6.3f}", flush=True)
    if baseline:
        print(f"(peaks include the process after its imports: {gb(baseline[0]).strip()} for validation, "
              f"{gb(baseline[1]).strip()} for features, {gb(baseline[2]).strip()} for training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
