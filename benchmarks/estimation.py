"""Benchmark of CBPE (``mlops_assets.core.cbpe``) and DLE (``mlops_assets.core.dle``) against NannyML 0.13 on the
same data.

Run as ``.venv/bin/python benchmarks/estimation.py [--reference N] [--chunk N] [--chunks K]``. The data has a known
covariate shift that grows over the analysis chunks (the law of y given x never changes, so performance
estimation is valid): a binary classifier's inputs move toward its decision boundary, and a regressor's toward
a noisier region. NannyML lives in its own venv (``benchmarks/.venv-nannyml``, created on first use from
``requirements-nannyml.txt``) because its pins clash with the project's; this same file runs there as a worker
(``--worker``) over Parquet files and reports the time of the estimation alone (fit on reference + estimate
on analysis, not imports or file reading), the best of ``--repeats`` runs on each side. Ours is timed in-process
on the same frames. Times are printed, never asserted.
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
from peer_venv import peer_python

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-nannyml.txt"
DEFAULT_VENV = HERE / ".venv-nannyml"
FEATURES = ["x0", "x1", "x2", "x3"]


def classification_frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    """Four features; y's law given x is fixed, a saturating function of a linear index, so a logistic model ranks
    rows right but its probabilities are miscalibrated (CBPE must calibrate). ``shift`` narrows x0 and x1, which
    moves rows toward the decision boundary where the model errs most; x3 drifts but does not matter."""
    x = rng.normal(0.0, 1.0, (rows, 4))
    x[:, 0] = x[:, 0] * (1.0 - 0.6 * shift)
    x[:, 1] = x[:, 1] * (1.0 - 0.6 * shift)
    x[:, 3] = x[:, 3] + 2.0 * shift
    index = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * x[:, 2]
    logits = 3.0 * np.tanh(index) + 0.3
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    return pd.DataFrame(x, columns=FEATURES).assign(y=y)


def regression_frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    """The noise grows with |x0|; ``shift`` moves x0 outward, so the same model errs more."""
    x = rng.normal(0.0, 1.0, (rows, 4))
    x[:, 0] = x[:, 0] + 1.5 * shift
    noise = 0.3 + 0.7 * np.abs(x[:, 0])
    y = 2.0 * x[:, 0] + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] + rng.normal(0.0, 1.0, rows) * noise
    return pd.DataFrame(x, columns=FEATURES).assign(y=y)


def make_data(task: str, reference_rows: int, chunk: int, chunks: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and analysis frames with the model's outputs: ``proba``/``pred`` (classification) or ``pred``.
    Analysis chunk i has shift i / (chunks - 1): the first is unshifted, the last fully shifted."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    draw = classification_frame if task == "classification" else regression_frame
    train = draw(rng, 20_000, 0.0)
    reference = draw(rng, reference_rows, 0.0)
    analysis = pd.concat([draw(rng, chunk, i / max(chunks - 1, 1)) for i in range(chunks)], ignore_index=True)
    if task == "classification":
        model = LogisticRegression().fit(train[FEATURES], train["y"])
        for frame in (reference, analysis):
            frame["proba"] = model.predict_proba(frame[FEATURES])[:, 1]
            frame["pred"] = model.predict(frame[FEATURES])
    else:
        model = HistGradientBoostingRegressor(max_iter=100, random_state=seed).fit(train[FEATURES], train["y"])
        for frame in (reference, analysis):
            frame["pred"] = model.predict(frame[FEATURES])
    return reference, analysis


def worker(task: str, reference_path: str, analysis_path: str, chunk: int, repeats: int, out: str) -> None:
    """Runs inside the NannyML venv: writes per-chunk estimates and the estimation time (best of ``repeats``) as
    JSON to ``out`` (LightGBM prints to stdout, so stdout is no channel)."""
    import nannyml

    reference, analysis = pd.read_parquet(reference_path), pd.read_parquet(analysis_path).drop(columns="y")
    metrics = ["accuracy", "roc_auc", "f1"] if task == "classification" else ["mae", "rmse"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if task == "classification":
            estimator = nannyml.CBPE(
                y_pred_proba="proba",
                y_pred="pred",
                y_true="y",
                metrics=metrics,
                problem_type="classification_binary",
                chunk_size=chunk,
            )
        else:
            estimator = nannyml.DLE(
                feature_column_names=FEATURES, y_pred="pred", y_true="y", metrics=metrics, chunk_size=chunk
            )
        estimator.fit(reference)
        result = estimator.estimate(analysis).filter(period="analysis").to_df()
        times.append(time.perf_counter() - start)
    estimates = {m: [float(v) for v in result[(m, "value")]] for m in metrics}
    Path(out).write_text(json.dumps({"seconds": min(times), "version": nannyml.__version__, "estimates": estimates}))


def ours(
    task: str,
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    chunk: int,
    repeats: int,
) -> tuple[dict[str, list], float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = _ours_once(task, reference, analysis, chunk)
        times.append(time.perf_counter() - start)
    return {m: [r[m] for r in rows] for m in rows[0]}, min(times)


def _ours_once(task: str, reference: pd.DataFrame, analysis: pd.DataFrame, chunk: int) -> list[dict[str, float]]:
    from mlops_assets.core.cbpe import CBPE
    from mlops_assets.core.dle import DLE
    from mlops_assets.core.estimation import chunk_bounds

    if task == "classification":

        def two_columns(frame: pd.DataFrame) -> np.ndarray:
            p = frame["proba"].to_numpy()
            return np.column_stack([1 - p, p])

        estimator = CBPE.fit(two_columns(reference), reference["y"], [0, 1], reference["pred"])
        proba, pred = two_columns(analysis), analysis["pred"].to_numpy()
        rows = [estimator.estimate(proba[a:b], pred[a:b]) for a, b in chunk_bounds(len(analysis), chunk)]
    else:
        dle = DLE.fit(reference[FEATURES], reference["pred"], reference["y"])
        rows = [
            dle.estimate(analysis[FEATURES].iloc[a:b], analysis["pred"].iloc[a:b])
            for a, b in chunk_bounds(len(analysis), chunk)
        ]
    return rows


def realized(task: str, analysis: pd.DataFrame, chunk: int) -> dict[str, list[float]]:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score, root_mean_squared_error

    from mlops_assets.core.estimation import chunk_bounds

    parts = [analysis.iloc[a:b] for a, b in chunk_bounds(len(analysis), chunk)]
    if task == "classification":
        return {
            "accuracy": [accuracy_score(p["y"], p["pred"]) for p in parts],
            "roc_auc": [roc_auc_score(p["y"], p["proba"]) for p in parts],
            "f1": [f1_score(p["y"], p["pred"]) for p in parts],
        }
    return {
        "mae": [mean_absolute_error(p["y"], p["pred"]) for p in parts],
        "rmse": [root_mean_squared_error(p["y"], p["pred"]) for p in parts],
    }


def compare(task: str, args: argparse.Namespace, python: Path) -> bool:
    """Runs both on one task and prints the table; True when ours meets the closeness target on the first
    metric (accuracy / MAE)."""
    reference, analysis = make_data(task, args.reference, args.chunk, args.chunks, args.seed)
    mine, ours_seconds = ours(task, reference, analysis, args.chunk, args.repeats)
    truth = realized(task, analysis, args.chunk)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, "reference.parquet"), os.path.join(tmp, "analysis.parquet")]
        reference.to_parquet(paths[0])
        analysis.to_parquet(paths[1])
        out = os.path.join(tmp, "nannyml.json")
        command = [str(python), __file__, "--worker", task, *paths, str(args.chunk), str(args.repeats), out]
        completed = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        )
        if completed.returncode != 0:
            print(completed.stderr, file=sys.stderr)
            raise SystemExit(f"NannyML worker failed on {task}")
        theirs = json.loads(Path(out).read_text())
    method = "CBPE" if task == "classification" else "DLE"
    print(
        f"\n== {task} ({method}): reference {len(reference):,} rows, {args.chunks} analysis chunks of "
        f"{args.chunk:,} rows, covariate shift growing from chunk 0 (none) to chunk {args.chunks - 1} (full)"
    )
    met = True
    for n, metric in enumerate(mine):
        real, nml, our = (
            np.asarray(v, dtype=float) for v in (truth[metric], theirs["estimates"][metric], mine[metric])
        )
        print(f"\n{metric}\n{'chunk':>5} {'realized':>9} {'nannyml':>9} {'ours':>9}")
        for i in range(len(real)):
            print(f"{i:5d} {real[i]:9.4f} {nml[i]:9.4f} {our[i]:9.4f}")
        ours_real, nml_real, ours_nml = (
            float(np.mean(np.abs(a - b))) for a, b in ((our, real), (nml, real), (our, nml))
        )
        print(
            f"mean |ours - realized| {ours_real:.4f}   mean |nannyml - realized| {nml_real:.4f}   "
            f"mean |ours - nannyml| {ours_nml:.4f}"
        )
        if n == 0:
            scale = 1.0 if task == "classification" else float(np.mean(real))  # MAE: relative to its size
            met = (ours_real - nml_real) / scale <= 0.01
    speedup = theirs["seconds"] / ours_seconds
    print(f"\ntime ours:    {ours_seconds:8.3f} s  (fit on reference + estimate every chunk; best of {args.repeats})")
    print(f"time nannyml: {theirs['seconds']:8.3f} s  (NannyML {theirs['version']} {method}, the same)")
    print(f"speedup:      {speedup:8.1f}x")
    return met and speedup >= 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=int, default=50_000, help="reference rows (labelled)")
    parser.add_argument("--chunk", type=int, default=5_000, help="rows per analysis chunk")
    parser.add_argument("--chunks", type=int, default=10, help="analysis chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="classification,regression")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="NannyML venv (created if missing)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the best is reported")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        task, reference, analysis, chunk, repeats, out = args.worker
        worker(task, reference, analysis, int(chunk), int(repeats), out)
        return 0
    sys.path.insert(0, str(HERE.parent))
    python = peer_python(args.venv, REQUIREMENTS)
    verdicts = {task: compare(task, args, python) for task in args.tasks.split(",")}
    print(
        "\ntarget (first metric within 0.01 of NannyML's mean |estimate - realized|, >= 10x faster): "
        + ", ".join(f"{task} {'met' if ok else 'NOT met'}" for task, ok in verdicts.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
