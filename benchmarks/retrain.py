"""Benchmark of a retrain through the platform (``training_job``) against a plain scikit-learn script doing the
same ML on the same rows.

Run as ``.venv/bin/python benchmarks/retrain.py [--rows 100000 1000000] [--rounds R]``. For each size the demo
generator (``core/demo.py``) writes one batch into a throw-away ``MLOPS_HOME``, which is ingested the way the
``raw_batches`` asset does it; a first training run makes the champion. Then, in interleaved rounds (the order
alternates, so the load of a shared machine hits both sides alike), each side runs as a fresh subprocess:

* the platform, the way ``mlops train`` runs it: ``training_job`` (dataset -> features -> train -> evaluate and
  gate -> register -> deploy) executed in process on the embedded Dagster instance, with the tuning loop off
  (``tuning_candidates: 0``) and the seed of the round, so every round really retrains against a champion;
* the plain script: read the dataset's Parquet, split it by the same row-id hash, fit the pipeline the platform
  builds (``core.training.build_pipeline``) with the same params and seed, score the holdout, and
  ``mlflow.sklearn.log_model`` (the same skops format and signature) into the same MLflow store.

Both are timed as whole processes (start, imports, work). It prints the medians, the ratio, and where the
Dagster run's time went: each step's wall time from its start and success events on the instance. ``mlops
train`` is measured rather than ``dagster job execute`` because it is the command the README gives users; the
latter adds the multiprocess executor (a Python process per step) and is what ``--executor multiprocess``
times. Times are printed, never asserted.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("dataset", "features", "candidate_model", "model_evaluation", "registered_model", "deployment")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))}
    return {**env, "MLOPS_HOME": str(home), "PYTHONPATH": str(ROOT)}


def prepare_worker(rows: int) -> dict:
    """One demo batch of ``rows`` rows landed as Parquet and stored as the ``raw_batches`` asset stores it."""
    from mlops_assets import settings
    from mlops_assets.core import demo, validation, versions
    from mlops_assets.definitions import build_resources

    lay = settings.layout()
    store = build_resources(lay)["store"]
    path = store.landing / "batch_bench.parquet"
    demo.make_batch(rows, seed=7).to_parquet(path, index=False)
    digest = versions.schema_hash(validation.raw_schema(store.spec()))
    store.ingest("batch_bench", path, source_sha256=versions.sha256_file(path), schema_hash=digest)
    path.unlink()
    return {"rows": rows}


def job_worker(seed: int, executor: str, cv_folds: int) -> dict:
    """``mlops train``'s way (``headless.training.run_training``), with the run config of the benchmark."""
    from mlops_assets import settings
    from mlops_assets.cli._instance import embedded_instance
    from mlops_assets.core.contracts import RUN_KIND, TRIGGER, RunKind, Trigger
    from mlops_assets.definitions import build_definitions

    lay = settings.layout()
    defs = build_definitions(lay)
    run_config = {"ops": {"candidate_model": {"config": {"tuning_candidates": 0, "cv_folds": cv_folds,
                                                              "seed": seed}}},
                  "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    start = time.perf_counter()
    with embedded_instance(lay) as instance:
        job = defs.resolve_job_def("training_job")
        tags = {TRIGGER: Trigger.MANUAL, RUN_KIND: RunKind.TRAINING}
        if executor == "in_process":
            result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                            run_config=run_config)
            run_id, success = result.run_id, result.success
        else:  # a launched run (`dg launch`, sensors, `dagster job execute`): a process per step
            from dagster import execute_job, reconstructable

            target = training_job_definition if executor == "multiprocess" else spawn_training_job_definition
            with execute_job(reconstructable(target), instance=instance, tags=tags, run_config=run_config,
                             raise_on_error=False) as result:
                run_id, success = result.run_id, result.success
        seconds = time.perf_counter() - start
        events = instance.all_logs(run_id)
        steps: dict[str, dict[str, float]] = {}
        for e in events:
            kind = e.dagster_event.event_type_value if e.dagster_event else None
            if e.step_key and kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                steps.setdefault(e.step_key, {})["start" if kind == "STEP_START" else "end"] = e.timestamp
        run_start = min(e.timestamp for e in events)
        run_end = max(e.timestamp for e in events)
        gate = [e for e in events if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
        passed = gate[0].dagster_event.event_specific_data.passed if gate else None
    return {"seconds": seconds, "success": success, "gate_passed": passed, "run_seconds": run_end - run_start,
            "steps": {k: v["end"] - v["start"] for k, v in steps.items() if "start" in v and "end" in v}}


def training_job_definition():
    """The job as each step process rebuilds it (``reconstructable``)."""
    from mlops_assets.definitions import defs

    return defs.resolve_job_def("training_job")


def spawn_training_job_definition():
    """The same job with Dagster's default multiprocess executor (a fresh Python per step): the "before"."""
    from dagster import Definitions, define_asset_job, multiprocess_executor

    from mlops_assets.definitions import ASSETS, build_resources
    from mlops_assets.jobs import training_job

    job = define_asset_job("training_job", selection=training_job.selection, executor_def=multiprocess_executor,
                           tags=training_job.tags)
    return Definitions(assets=ASSETS, jobs=[job], resources=build_resources()).resolve_job_def("training_job")


def plain_worker(seed: int) -> dict:
    """The same ML as a user's script: Parquet, split, fit, score, log the model."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from mlops_assets import settings
    from mlops_assets.core.metrics import compute_metrics
    from mlops_assets.core.spec import demo_spec
    from mlops_assets.core.training import build_pipeline, skops_trusted_types
    from mlops_assets.core.versions import stable_holdout_mask

    start = time.perf_counter()
    lay = settings.layout()
    spec = demo_spec()
    frame = pd.concat([pd.read_parquet(p) for p in sorted(Path(lay.store, "objects").rglob("*.parquet"))],
                      ignore_index=True)
    mask = stable_holdout_mask(frame, spec)
    train, holdout = frame.loc[~mask], frame.loc[mask]
    model = build_pipeline(spec, "hist_gradient_boosting", {}, seed)
    x = train[spec.feature_names]
    model.fit(x, train[spec.target])
    metrics = compute_metrics(model, holdout, spec)
    mlflow.set_tracking_uri(settings.tracking_uri(lay))
    mlflow.set_experiment("plain-script")
    with mlflow.start_run():
        mlflow.log_params({"seed": seed, "estimator": "hist_gradient_boosting"})
        mlflow.log_metrics(metrics)
        example = x.head(5)
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(example, model.predict(example)),
                                 input_example=example, serialization_format="skops",
                                 skops_trusted_types=skops_trusted_types(model))
    return {"seconds": time.perf_counter() - start, "roc_auc": metrics["roc_auc"]}


def run_worker(home: Path, *args: str) -> dict:
    """A worker as a fresh process; its wall time from spawn to exit is the time a user waits."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(home))
    wall = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-4000:]}")
    return {**json.loads(done.stdout.splitlines()[-1]), "wall": wall, "cpu": cpu}


def _children_cpu() -> float:
    """CPU seconds of finished children: a shared machine's load stretches wall time, CPU time much less."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(rows: int, rounds: int, executor: str, cv_folds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        home = Path(tmp, "home")
        run_worker(home, "prepare", str(rows))
        # The first champion; every later round retrains against it.
        first = run_worker(home, "job", "0", executor, str(cv_folds))
        if not first["success"]:
            raise RuntimeError("the first training run failed")
        ours, plain = [], []
        for r in range(1, rounds + 1):
            order = ("job", "plain") if r % 2 else ("plain", "job")
            for side in order:
                if side == "job":
                    ours.append(run_worker(home, "job", str(r), executor, str(cv_folds)))
                    if not ours[-1]["success"]:
                        raise RuntimeError(f"training run of round {r} failed")
                else:
                    plain.append(run_worker(home, "plain", str(r)))
                done = (ours if side == "job" else plain)[-1]
                print(f"  round {r} {side:5}: {done['wall']:6.1f} s wall, {done['cpu']:5.1f} s cpu", flush=True)
    return {"ours": ours, "plain": plain}


def report(rows: int, out: dict) -> float:
    ours, plain = out["ours"], out["plain"]
    o_wall = statistics.median(x["wall"] for x in ours)
    p_wall = statistics.median(x["wall"] for x in plain)
    o_run = statistics.median(x["run_seconds"] for x in ours)
    p_work = statistics.median(x["seconds"] for x in plain)
    o_cpu = statistics.median(x["cpu"] for x in ours)
    p_cpu = statistics.median(x["cpu"] for x in plain)
    ratio = o_wall / p_wall
    gates = sorted({str(x["gate_passed"]) for x in ours})
    print(f"{rows:>10,} rows | training_job {o_wall:6.1f} s (run {o_run:5.1f} s, cpu {o_cpu:5.1f} s) | plain script "
          f"{p_wall:6.1f} s (work {p_work:5.1f} s, cpu {p_cpu:5.1f} s) | ratio {ratio:4.2f}x wall, "
          f"{o_cpu / p_cpu:4.2f}x cpu | gate passed: {', '.join(gates)}", flush=True)
    steps = " ".join(f"{s} {statistics.median(x['steps'].get(s, 0.0) for x in ours):.1f}"
                     for s in STEPS)
    print(f"{'':>10}        steps (median s): {steps}", flush=True)
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="data set sizes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size (default 3)")
    parser.add_argument("--executor", choices=("in_process", "multiprocess", "spawn"), default="in_process",
                        help="in_process: `mlops train` (default); multiprocess: a launched run (the job's forkserver "
                             "executor); spawn: the same with Dagster's default executor, a fresh Python per step")
    parser.add_argument("--cv-folds", type=int, default=0,
                        help="the job's cv_folds (default 0: no cross-validation, the plain script's ML; 3: the "
                             "platform's default, three more fits)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind == "prepare":
            out = prepare_worker(int(rest[0]))
        elif kind == "job":
            out = job_worker(int(rest[0]), rest[1], int(rest[2]))
        else:
            out = plain_worker(int(rest[0]))
        print(json.dumps(out))
        return 0
    print(f"training_job ({args.executor}, tuning off) vs a plain scikit-learn script, whole processes, "
          f"{args.rounds} interleaved rounds")
    for rows in args.rows:
        report(rows, bench(rows, args.rounds, args.executor, args.cv_folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
