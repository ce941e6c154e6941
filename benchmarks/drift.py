"""Benchmark of ``mlops drift`` (the whole command) against Evidently 0.7's ``DataDriftPreset`` report.

Run as ``.venv/bin/python benchmarks/drift.py [--rows N] [--cols K] [--rounds R] [--evidently-rounds E]``.
Two Parquet files of numeric columns (normal, skewed and bounded shapes; mean, scale and shape shifts in
some columns; a few NaNs) are written once, then, in interleaved rounds so that the load of a shared machine
hits every side alike:

* ours: ``mlops drift REF CUR --json`` as a subprocess: process start, imports, reading, tests, JSON;
* the floor: one numpy sort per column per side of the same data, on a thread per core, in this process;
* Evidently (its own venv, ``benchmarks/.venv-evidently``, created on first use from
  ``requirements-evidently.txt`` because its pins clash with ours): this file runs there as a worker
  (``--worker``) and reports the time of the report alone (dataset typing + report run; not its imports or
  file reading), which is the number ours is compared with.

Each Evidently run sits between two runs of ours (rounds are spread so), and the headline ratio is the
median over Evidently runs of its time over the mean of those two neighbours: the fairest number on a shared
machine whose load changes over the minutes an Evidently run takes. It also prints medians, CPU seconds next
to wall seconds (load stretches wall time, CPU time much less) and the per-column comparison with Evidently.
Exit code 1 when any verdict differs. Times are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from peer_venv import peer_python

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
# What happens to column i of current (i % 5); "small" moves the mean by 2% of a std: no drift.
CHANGES = ("none", "mean", "scale", "shape", "small")


def standard(rng: np.random.Generator, family: int, size: int) -> np.ndarray:
    """Mean 0, std 1 draws of a normal (0), skewed lognormal (1) or bounded uniform (2) shape."""
    if family == 0:
        return rng.standard_normal(size)
    if family == 1:
        mean, var = np.exp(0.18), (np.exp(0.36) - 1) * np.exp(0.36)
        return (rng.lognormal(0.0, 0.6, size) - mean) / np.sqrt(var)
    return rng.uniform(-np.sqrt(3), np.sqrt(3), size)


def make_frames(rows: int, cols: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Reference and current float columns (10 + 2 z), each current column changed as ``CHANGES`` says;
    every other column has a few NaNs (0.05% of reference rows, 0.1% of current rows)."""
    rng = np.random.default_rng(seed)
    reference, current, changes = {}, {}, {}
    for i in range(cols):
        name, family, change = f"f{i:02d}", i % 3, CHANGES[i % len(CHANGES)]
        ref = 10.0 + 2.0 * standard(rng, family, rows)
        z = standard(rng, (family + 1) % 3 if change == "shape" else family, rows)
        cur = 10.0 + {"mean": 0.5, "small": 0.04}.get(change, 0.0) + 2.0 * (1.3 if change == "scale" else 1.0) * z
        if i % 2:
            ref[rng.choice(rows, rows // 2000, replace=False)] = np.nan
            cur[rng.choice(rows, rows // 1000, replace=False)] = np.nan
        reference[name], current[name], changes[name] = ref, cur, change
    return pd.DataFrame(reference), pd.DataFrame(current), changes


def worker(reference_path: str, current_path: str) -> None:
    """Runs inside the Evidently venv: prints per-column results and the report's wall and CPU time as JSON."""
    import evidently
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    start, cpu = time.perf_counter(), time.process_time()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current), reference_data=Dataset.from_pandas(reference)
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
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
    json.dump({"seconds": seconds, "cpu": cpu, "version": evidently.__version__, "share": share,
               "columns": columns}, sys.stdout)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(command: list[str], out_path: str) -> tuple[float, float]:
    """Wall and CPU seconds of one whole ``mlops drift`` process (exit 0 or 1 are verdicts, 2 an error)."""
    cpu, start = children_cpu(), time.perf_counter()
    with open(out_path, "w") as out:
        completed = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"mlops drift failed ({completed.returncode}): {completed.stderr}")
    return seconds, cpu


def run_floor(columns: list[np.ndarray]) -> tuple[float, float]:
    """One numpy sort per column per side on a thread per core: the work no exact test can skip."""
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(np.sort, columns):
            pass
    return time.perf_counter() - start, time.process_time() - cpu


def run_evidently(python: Path, paths: list[str]) -> dict:
    completed = subprocess.run([str(python), __file__, "--worker", *paths], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"Evidently worker failed: {completed.stderr}")
    return json.loads(completed.stdout)


def relative_difference(ours: float, theirs: float) -> float:
    if ours == theirs:
        return 0.0
    return abs(ours - theirs) / max(abs(theirs), 1e-300)


def compare(ours: dict, theirs: dict, changes: dict[str, str]) -> int:
    """Per-column table of ours against Evidently; returns how many columns have the same test and verdict."""
    print(f"\n{'column':8} {'change':7} {'test':12} {'ours':>12} {'evidently':>12} {'rel diff':>9}  ours/evidently")
    agree, max_diff = 0, 0.0
    for column in ours["columns"]:
        name, other = column["column"], theirs["columns"][column["column"]]
        score = column["p_value"] if column["p_value"] is not None else column["statistic"]
        same_test = EVIDENTLY_TESTS.get(other["test"]) == column["test"]
        diff = relative_difference(score, other["score"])
        max_diff = max(max_diff, diff)
        agree += same_test and column["drifted"] == other["drift"]
        verdicts = f"{'drift' if column['drifted'] else 'ok'}/{'drift' if other['drift'] else 'ok'}"
        test = column["test"] if same_test else f"{column['test']}!={other['test']}"
        print(f"{name:8} {changes.get(name, '?'):7} {test:12} {score:12.6g} {other['score']:12.6g} {diff:9.2e}  "
              f"{verdicts}")
    print(f"max relative statistic difference: {max_diff:.2e}")
    print(f"share of drifted columns: ours {ours['share_drifted']:.2f}, evidently {theirs['share']:.2f}")
    return agree


def ours_command(reference: str, current: str) -> list[str]:
    """The installed ``mlops`` script of this interpreter's venv (what a user runs), else ``-m``."""
    script = Path(sys.executable).parent / "mlops"
    start = [str(script)] if script.exists() else [sys.executable, "-m", "mlops_assets.cli"]
    return [*start, "drift", reference, current, "--json"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in reference and in current")
    parser.add_argument("--cols", type=int, default=20, help="numeric columns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="runs of ours and of the floor")
    parser.add_argument("--evidently-rounds", type=int, default=2,
                        help="runs of Evidently (minutes each at full size), each between two runs of ours")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="Evidently venv (created if missing)")
    parser.add_argument("--worker", nargs=2, metavar=("REFERENCE", "CURRENT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if args.evidently_rounds < 1 or args.rounds <= args.evidently_rounds:
        parser.error("--evidently-rounds must be >= 1 and --rounds above it (ours runs before and after each)")

    python = peer_python(args.venv, REQUIREMENTS)
    reference, current, changes = make_frames(args.rows, args.cols, args.seed)
    print(f"data: {args.rows:,} rows x {args.cols} float columns in reference and current "
          f"(a few NaNs in every other column); changed in current: "
          + ", ".join(f"{name} {change}" for name, change in changes.items() if change != "none"))
    columns = [frame[name].to_numpy() for frame in (reference, current) for name in frame.columns]
    ours, floor, evidently = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, "reference.parquet"), os.path.join(tmp, "current.parquet")]
        reference.to_parquet(paths[0])
        current.to_parquet(paths[1])
        del reference, current
        command, out_path = ours_command(*paths), os.path.join(tmp, "ours.json")
        # Evidently after ours round i when the rounds' share of Evidently runs ticks over: evenly spread, and
        # never after the last round, so ours runs on both sides of each.
        after = {(j * args.rounds) // args.evidently_rounds for j in range(args.evidently_rounds)}
        print(f"ours: {' '.join(command[:2])} REF CUR --json; {args.rounds} rounds, Evidently after rounds "
              f"{', '.join(str(i + 1) for i in sorted(after))}")
        neighbours = []
        for i in range(args.rounds):
            ours.append(run_ours(command, out_path))
            floor.append(run_floor(columns))
            print(f"  round {i + 1}: ours {ours[-1][0]:.2f} s, floor {floor[-1][0]:.2f} s", flush=True)
            if evidently and len(neighbours) < len(evidently):
                neighbours.append((ours[-2][0] + ours[-1][0]) / 2)
            if i in after:
                evidently.append(run_evidently(python, paths))
                print(f"  evidently {evidently[-1]['seconds']:.1f} s", flush=True)
        ours_report = json.loads(Path(out_path).read_text())

    agree = compare(ours_report, evidently[-1], changes)
    median = statistics.median
    ours_wall, ours_cpu = median(s for s, _ in ours), median(c for _, c in ours)
    floor_wall, floor_cpu = median(s for s, _ in floor), median(c for _, c in floor)
    ev_wall, ev_cpu = median(e["seconds"] for e in evidently), median(e["cpu"] for e in evidently)
    print(f"\n{'median of':40} {'wall s':>8} {'cpu s':>8}")
    print(f"{'ours (whole mlops drift command)':40} {ours_wall:8.2f} {ours_cpu:8.2f}   ({len(ours)} runs)")
    print(f"{'evidently (DataDriftPreset report only)':40} {ev_wall:8.2f} {ev_cpu:8.2f}   ({len(evidently)} runs, "
          f"Evidently {evidently[-1]['version']})")
    print(f"{'floor (one numpy sort per column & side)':40} {floor_wall:8.2f} {floor_cpu:8.2f}   ({len(floor)} runs, "
          f"{len(columns)} sorts on {os.cpu_count()} threads)")
    paired = median(e["seconds"] / pair for e, pair in zip(evidently, neighbours, strict=True))
    print(f"\nevidently / ours: {paired:6.1f}x  (each Evidently run over the mean of ours just before and after)")
    print(f"                  {ev_wall / ours_wall:6.1f}x wall medians, {ev_cpu / ours_cpu:6.1f}x cpu medians")
    print(f"ours / floor:     {ours_wall / floor_wall:6.1f}x wall, {ours_cpu / floor_cpu:6.1f}x cpu")
    print(f"verdicts identical: {agree}/{len(ours_report['columns'])} columns (same test and same verdict)")
    return 0 if agree == len(ours_report["columns"]) else 1


if __name__ == "__main__":
    sys.exit(main())
