"""Approval before production: with require_approval on, a model that passed the gate waits and does not serve;
`mlops registry approve` lets the approval sensor release it, `reject` keeps it out for good. Real Dagster
instance and sensor evaluation, real MLflow store, the real CLI."""

import json

from mlops_assets.cli import main
from mlops_assets.core.contracts import APPROVAL_TAG, CHAMPION, ApprovalStatus, AuditAction, Trigger
from mlops_assets.core.demo import write_batches
from mlops_assets.definitions import build_definitions
from mlops_assets.headless.sensor_runner import Runner


def _train(runner: Runner, lay, seed: int) -> None:
    write_batches(lay.landing, batches=1, rows=800, seed=seed)
    runner.tick("new_data_sensor")
    runs = runner.tick("new_dataset_sensor").runs
    assert runs and all(r.success for r in runs)


def test_approve_releases_through_the_sensor_and_reject_never_does(lay, instance, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_REQUIRE_APPROVAL", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reviewer-ana")
    defs = build_definitions(lay)
    tracking = defs.resources["tracking"]
    runner = Runner(defs, instance, lay.io / "cursors.json")

    _train(runner, lay, seed=81)  # the gate passes (first model), then the release waits
    assert tracking.version_by_alias(CHAMPION) is None
    v1 = tracking.client().get_model_version(tracking.model_name, "1")
    assert v1.tags[APPROVAL_TAG] == ApprovalStatus.PENDING
    assert runner.tick("approval_sensor").skip_message == "no approved version waiting for release"

    assert main(["registry", "approve", "1", "--reason", "reviewed the holdout report"]) == 0
    released = runner.tick("approval_sensor").runs
    assert [(r.job, r.success, r.tags.get("mlops/trigger")) for r in released] == [
        ("approved_release_job", True, Trigger.APPROVAL)
    ]
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert runner.tick("approval_sensor").skip_message == "approved v1 is already serving"

    _train(runner, lay, seed=82)
    assert tracking.version_by_alias(CHAMPION).version == "1"  # v2 passed the gate but does not serve
    assert main(["registry", "reject", "2", "--reason", "fails the fairness review"]) == 0
    assert runner.tick("approval_sensor").skip_message == "approved v1 is already serving"
    assert tracking.version_by_alias(CHAMPION).version == "1"
    assert main(["registry", "approve", "2", "--reason", "too late"]) == 2  # a rejection is final
    assert "status: rejected" in capsys.readouterr().err

    capsys.readouterr()
    assert main(["registry", "history", "--json"]) == 0
    trail = json.loads(capsys.readouterr().out)
    moves = [(e["action"], e["alias"], e["to_version"], e["who"]) for e in trail]
    assert moves == [
        (AuditAction.APPROVAL_REQUESTED, None, "1", "reviewer-ana"),
        (AuditAction.APPROVE, None, "1", "reviewer-ana"),
        (AuditAction.PROMOTE, CHAMPION, "1", "reviewer-ana"),
        (AuditAction.APPROVAL_REQUESTED, None, "2", "reviewer-ana"),
        (AuditAction.REJECT, None, "2", "reviewer-ana"),
    ]
    assert trail[1]["why"] == {"reason": "reviewed the holdout report"}
    assert trail[2]["why"]["trigger"] == Trigger.APPROVAL and trail[2]["why"]["dagster_run_id"] == released[0].run_id
    assert "roc_auc" in trail[0]["why"]["gate"] and trail[0]["why"]["strategy"] == "blue_green"
    assert main(["registry", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(trail) and "reject" in lines[-1] and "fails the fairness review" in lines[-1]
