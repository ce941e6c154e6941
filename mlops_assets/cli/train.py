"""``mlops train``: launch the training job on the platform's own Dagster instance, wait, and say what it
decided (the gate's verdict and the champion), without any Dagster command line."""

import argparse
import sys

from mlops_assets import settings
from mlops_assets.cli._instance import embedded_instance


def cmd_train(args: argparse.Namespace) -> int:
    from mlops_assets.core.contracts import CHAMPION, LINEAGE_DATASET
    from mlops_assets.definitions import build_definitions
    from mlops_assets.headless.training import run_training

    lay = settings.layout()
    defs = build_definitions(lay)
    print("training_job: dataset -> features -> train -> gate -> register -> deploy ...", flush=True)
    with embedded_instance(lay) as instance:
        outcome = run_training(defs, instance)
    dataset = outcome.metadata.get("dataset", {})
    if outcome.dataset_id:
        print(f"dataset version {outcome.dataset_id}: {dataset.get('batches')} batches, {dataset.get('rows')} rows")
    candidate = outcome.metadata.get("candidate_model", {})
    if outcome.trained:
        scores = ", ".join(f"{k.removeprefix('holdout_')}={v:.4f}" for k, v in sorted(candidate.items())
                           if k.startswith("holdout_") and isinstance(v, float))
        print(f"candidate: MLflow run {candidate.get('mlflow_run_id')}; holdout {scores}")
    elif outcome.success:
        print("candidate: nothing to retrain (the champion was trained on this dataset version with the same "
              "config and code)")
    if outcome.gate_passed is not None:
        print(f"quality gate: {'PASSED' if outcome.gate_passed else 'REFUSED'}"
              + (f": {outcome.gate_detail}" if outcome.gate_detail else ""))
    champion = defs.resources["tracking"].version_by_alias(CHAMPION)
    print(f"champion: v{champion.version} (dataset {champion.tags.get(LINEAGE_DATASET)})" if champion
          else "champion: none yet")
    print(f"run {outcome.run_id}: see it in the Dagster UI (`mlops up`)")
    if not outcome.success or outcome.gate_passed is False:
        for error in outcome.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run the training job now (train, gate, register, deploy) and wait for it")
    p.set_defaults(func=cmd_train)
