"""Approvals under access control: a real `mlflow server --app-name basic-auth` on loopback. Approving or
rejecting needs MANAGE on the registered model; a user with EDIT may move tags but may not approve, and the
approver's MLflow user name is what the audit trail records."""

from pathlib import Path

import pytest
from mlflow.server import get_app_client

from mlops_assets.core.contracts import APPROVAL_TAG, ApprovalStatus, AuditAction
from mlops_assets.core.registry import ApprovalError, ModelRegistry
from tests.resources.test_tracking_access import (
    ADMIN_PASSWORD,
    PLATFORM_PASSWORD,
    READER_PASSWORD,
    _as,
    auth_server,  # noqa: F401 (the fixture)
)

MODEL = "approval-access-model"


def test_only_a_manager_may_approve_and_the_trail_names_them(
    auth_server,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    _as(monkeypatch, "admin", ADMIN_PASSWORD)
    admin = get_app_client("basic-auth", tracking_uri=auth_server)
    admin.create_user("platform", PLATFORM_PASSWORD)
    admin.create_user("editor", READER_PASSWORD)

    _as(monkeypatch, "platform", PLATFORM_PASSWORD)  # creates the model, so it holds MANAGE on it
    registry = ModelRegistry(
        tracking_uri=auth_server, registry_uri=auth_server, model_name=MODEL, lock_dir=str(tmp_path / "locks")
    )
    client = registry.client()
    client.create_registered_model(MODEL)
    run = client.create_run(client.create_experiment("approval-access"))
    version = client.create_model_version(
        MODEL, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    registry.request_approval(str(version), {"strategy": "blue_green"}, why={"trigger": "manual"})

    _as(monkeypatch, "admin", ADMIN_PASSWORD)
    admin.grant_user_permission("editor", "registered_model", MODEL, "EDIT")
    _as(monkeypatch, "editor", READER_PASSWORD)
    with pytest.raises(ApprovalError, match="'editor' has EDIT .* needs MANAGE"):
        registry.decide_approval(str(version), approve=True, reason="I wrote it, ship it")
    assert client.get_model_version(MODEL, version).tags[APPROVAL_TAG] == ApprovalStatus.PENDING

    _as(monkeypatch, "platform", PLATFORM_PASSWORD)
    entry = registry.decide_approval(str(version), approve=True, reason="four-eyes review done")
    assert (entry["action"], entry["who"]) == (AuditAction.APPROVE, "platform")
    assert [(e["action"], e["who"]) for e in registry.audit_trail()] == [
        (AuditAction.APPROVAL_REQUESTED, "platform"),
        (AuditAction.APPROVE, "platform"),
    ]
