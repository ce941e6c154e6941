"""Benchmark of ``mlops_assets.core.drift`` against Evidently 0.7's ``DataDriftPreset`` on the same data.

Run as ``.venv/bin/python benchmarks/drift.py [--rows N] [--cols K]``. Evidently lives in its own venv
(``benchmarks/.venv-evidently``, created on first use from ``requirements-evidently.txt``) because its pins
clash with the project's; this same file runs there as a worker (``--worker``) over Parquet files and
reports the time of the computation alone (dataset typing + report run, not imports or file reading).
Ours is timed in-process on the same frames. Times are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-evidently.txt"
DEFAULT_VENV = HERE / ".venv-evidently"

# Evidently's display names of the tests the preset picks, mapped to ours.
EVIDENTLY_TESTS = {
    "K-S p_value": "ks",
    "Wasserstein distance (normed)": "wasserstein",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Jensen-Shannon distance": "jensenshannon",
}


def draw(rng: np.random.Generator, shape: int, size: int, shift: float) -> np.ndarray:
    """Normal, skewed or bounded values, so the statistics are checked on more than one shape."""
    if shape == 0:
        return rng.normal(10.0 + shift, 2.0, size)
    if shape == 1:
        return rng.lognormal(0.5 * shift, 0.6, size)
    return rng.uniform(-1.0 + shift, 1.0 + shift, size)


def make_frames(rows: int, cols: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current frames of float columns; every fourth column is shifted in current."""
    rng = np.random.default_rng(seed)
    reference, current, shifted = {}, {}, []
    for i in range(cols):
        name = f"f{i:02d}"
        shift = 0.4 if i % 4 == 0 else 0.0
        reference[name] = draw(rng, i % 3, rows, 0.0)
        current[name] = draw(rng, i % 3, rows, shift)
        if shift:
            shifted.append(name)
    return pd.DataFrame(reference), pd.DataFrame(current), shifted


def evidently_python(venv: Path) -> Path:
    """The Evidently venv's interpreter, creating the venv from the pinned requirements when missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {venv} from {REQUIREMENTS.name} (one-off)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n")  # keep the venv out of git wherever it is created
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return python


def worker(reference_path: str, current_path: str) -> None:
    """Runs inside the Evidently venv: prints per-column results and the computation time as JSON."""
    import evidently
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current), reference_data=Dataset.from_pandas(reference)
    )
    seconds = time.perf_counter() - start
    result = snapshot.dict()
    verdicts = {
        test["metric_config"]["params"]["column"]: test["status"] == "FAIL"
        for test in result["tests"]
        if test["metric_config"]["params"]["type"].endswith(":ValueDrift")
    }
    columns, share = {}, None
    for metric in result["metrics"]:
        if metric["config"]["type"].endswith(":DriftedColumnsCount"):
            share = metric["value"]["share"]
        elif metric["config"]["type"].endswith(":ValueDrift"):
            name = metric["config"]["column"]
            columns[name] = {"test": metric["config"]["method"], "score": metric["value"],
                             "threshold": metric["config"]["threshold"], "drift": verdicts[name]}
    json.dump({"seconds": seconds, "version": evidently.__version__, "share": share, "columns": columns},
              sys.stdout)


def relative_difference(ours: float, theirs: float) -> float:
    if ours == theirs:
        return 0.0
    return abs(ours - theirs) / max(abs(theirs), 1e-300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in reference and in current")
    parser.add_argument("--cols", type=int, default=20, help="numeric columns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="Evidently venv (created if missing)")
    parser.add_argument("--worker", nargs=2, metavar=("REFERENCE", "CURRENT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0

    sys.path.insert(0, str(HERE.parent))
    from mlops_assets.core.drift import detect_drift

    python = evidently_python(args.venv)
    reference, current, shifted = make_frames(args.rows, args.cols, args.seed)
    print(f"data: {args.rows:,} rows x {args.cols} numeric columns in reference and current; "
          f"shifted columns: {', '.join(shifted)}")

    start = time.perf_counter()
    report = detect_drift(reference, current)
    ours_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, "reference.parquet"), os.path.join(tmp, "current.parquet")]
        reference.to_parquet(paths[0])
        current.to_parquet(paths[1])
        del reference, current  # the worker needs the memory more than we do
        command = [str(python), __file__, "--worker", *paths]
        completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        print(completed.stderr, file=sys.stderr)
        print("Evidently worker failed", file=sys.stderr)
        return 1
    theirs = json.loads(completed.stdout)

    print(f"\n{'column':8} {'test':12} {'ours':>12} {'evidently':>12} {'rel diff':>9}  ours/evidently")
    agree, max_diff = 0, 0.0
    for column in report.columns:
        other = theirs["columns"][column.column]
        score = column.p_value if column.p_value is not None else column.statistic
        same_test = EVIDENTLY_TESTS.get(other["test"]) == column.test
        diff = relative_difference(score, other["score"])
        max_diff = max(max_diff, diff)
        agree += same_test and column.drifted == other["drift"]
        verdicts = f"{'drift' if column.drifted else 'ok'}/{'drift' if other['drift'] else 'ok'}"
        test = column.test if same_test else f"{column.test}!={other['test']}"
        print(f"{column.column:8} {test:12} {score:12.6g} {other['score']:12.6g} {diff:9.2e}  {verdicts}")

    print(f"\ntime ours:      {ours_seconds:8.2f} s")
    print(f"time evidently: {theirs['seconds']:8.2f} s  (Evidently {theirs['version']}, DataDriftPreset)")
    print(f"speedup:        {theirs['seconds'] / ours_seconds:8.1f}x")
    print(f"verdict agreement: {agree}/{len(report.columns)} columns (same test and same verdict)")
    print(f"max relative statistic difference: {max_diff:.2e}")
    print(f"share of drifted columns: ours {report.share_drifted:.2f}, evidently {theirs['share']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
