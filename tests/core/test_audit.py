"""The audit trail of releases: the entry encoding, every release move recorded in a real MLflow store, and
concurrent writers (separate processes, separate clients) that never lose an entry."""

import json
import multiprocessing
from pathlib import Path

import pytest

from mlops_assets.core import audit
from mlops_assets.core.contracts import AUDIT_TAG_PREFIX, CANARY, CHAMPION, PREVIOUS, AuditAction
from mlops_assets.core.registry import ApprovalError, ModelRegistry


def _entry(**why: object) -> dict:
    return audit.new_entry(
        action=AuditAction.PROMOTE, alias=CHAMPION, from_version="1", to_version=2, who="ana", why=why
    )


def test_an_entry_round_trips_through_its_tag():
    entry = _entry(dagster_run_id="r-1", trigger="drift", gate="min_score roc_auc 0.9700 vs 0.8000")
    key = audit.tag_key(7, entry["id"])
    assert key.startswith(AUDIT_TAG_PREFIX) and audit.parse_key(key) == (7, entry["id"])
    back = audit.decode(key, audit.encode(entry))
    assert back == {**entry, "seq": 7} and back["to_version"] == "2"
    assert "seq" not in json.loads(audit.encode(entry))  # the key holds the number, once
    assert audit.parse_key("mlops.canary_percent") is None and audit.parse_key(f"{AUDIT_TAG_PREFIX}12.abc") is None


def test_long_evidence_is_cut_to_fit_the_tag_limit_and_too_much_is_refused():
    entry = _entry(evidence="x" * 20_000, trigger="canary")
    value = audit.encode(entry)
    assert len(value) <= audit.MAX_VALUE_CHARS
    assert json.loads(value)["why"]["evidence"].endswith("...") and json.loads(value)["why"]["trigger"] == "canary"
    with pytest.raises(ValueError, match="limit is 5000"):
        audit.encode(_entry(**{f"k{i}": "y" * 1000 for i in range(20)}))


def test_history_orders_by_sequence_and_lists_a_moving_entry_once():
    a, b = _entry(n=1), _entry(n=2)
    tags = {
        audit.tag_key(2, b["id"]): audit.encode(b),
        audit.tag_key(1, a["id"]): audit.encode(a),
        audit.tag_key(3, a["id"]): audit.encode(a),
        "mlops.release_mode": "canary",
    }
    assert [(e["seq"], e["why"]["n"]) for e in audit.history(tags)] == [(1, 1), (2, 2)]
    assert audit.next_seq(tags) == 4 and audit.next_seq({}) == 1
    line = audit.format_line(audit.history(tags)[0])
    assert "promote" in line and "champion v1 -> v2" in line and "n=1" in line


def _registry(store: Path, model: str, lock_dir: str = "locks") -> ModelRegistry:
    uri = f"sqlite:///{store / 'mlflow.db'}"
    return ModelRegistry(tracking_uri=uri, registry_uri=uri, model_name=model, lock_dir=str(store / lock_dir))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real SQLite MLflow store for the module (creating one runs its migrations: seconds); a model per test."""
    return tmp_path_factory.mktemp("audit-store")


@pytest.fixture
def registry(store: Path, request: pytest.FixtureRequest) -> ModelRegistry:
    """A registered model of its own with three versions (no artifacts needed to move aliases)."""
    reg = _registry(store, request.node.name[:60])
    client = reg.client()
    client.create_registered_model(reg.model_name)
    (store / "model").mkdir(exist_ok=True)
    for _ in range(3):
        client.create_model_version(reg.model_name, source=str(store / "model"))
    return reg


def test_every_release_move_is_recorded_with_who_and_why(registry, store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "release-bot")
    run = {"dagster_run_id": "run-1", "trigger": "new_data"}
    registry.promote("1", why=run)
    registry.promote("2", why=run)
    registry.start_canary("3", percent=10.0, mode=CANARY, why=run)
    registry.set_canary_percent(40, why={"via": "test"})
    registry.end_canary(promote=False, why={"evidence": "accuracy 0.61 vs champion 0.80"})
    registry.rollback(why={"via": "test"})
    registry.restore("2", "1", why={"failed": "gateway"})

    trail = registry.audit_trail()
    moves = [(e["action"], e["alias"], e["from_version"], e["to_version"]) for e in trail]
    assert moves == [
        (AuditAction.PROMOTE, CHAMPION, None, "1"),
        (AuditAction.PROMOTE, PREVIOUS, None, "1"),
        (AuditAction.PROMOTE, CHAMPION, "1", "2"),
        (AuditAction.CANARY_START, CANARY, None, "3"),
        (AuditAction.CANARY_SHARE, CANARY, "3", "3"),
        (AuditAction.CANARY_ROLLBACK, CANARY, "3", None),
        (AuditAction.ROLLBACK, CHAMPION, "2", "1"),
        (AuditAction.ROLLBACK, PREVIOUS, "1", "2"),
        (AuditAction.RESTORE, PREVIOUS, "2", "1"),
        (AuditAction.RESTORE, CHAMPION, "1", "2"),
    ]
    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    assert {e["who"] for e in trail} == {"release-bot"}
    assert trail[0]["why"] == run and trail[3]["why"]["percent"] == 10.0
    assert trail[4]["why"]["percent_from"] == "10.0" and trail[4]["why"]["percent_to"] == 40.0
    assert registry.audit_for_run("run-1") == trail[:4]

    # The trail is in the store, not in the process: a new client on the same store reads the same history.
    assert _registry(store, registry.model_name, "other-locks").audit_trail() == trail


def test_approval_decisions_are_recorded_and_need_a_pending_version(registry, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    release = {"strategy": "blue_green", "canary_percent": 10.0}
    assert registry.request_approval("2", release, why={"trigger": "manual"}) is None
    with pytest.raises(ApprovalError, match="needs a reason"):
        registry.decide_approval("2", approve=True, reason="  ")
    with pytest.raises(ApprovalError, match="v3 .* is not waiting for approval"):
        registry.decide_approval("3", approve=True, reason="looks good")
    decision = registry.decide_approval("2", approve=False, reason="bias review pending")
    assert decision["action"] == AuditAction.REJECT and decision["who"]  # the OS user, without access control
    with pytest.raises(ApprovalError, match="status: rejected"):
        registry.decide_approval("2", approve=True, reason="changed my mind")
    assert registry.request_approval("2", release) == "rejected"  # a rerun never undoes the decision
    assert [e["action"] for e in registry.audit_trail()] == [AuditAction.APPROVAL_REQUESTED, AuditAction.REJECT]


def _append_many(store: str, model: str, lock_dir: str, writer: int, count: int) -> None:
    reg = _registry(Path(store), model, lock_dir)
    client = reg.client()
    for i in range(count):
        entry = audit.new_entry(
            action=AuditAction.CANARY_SHARE,
            alias=CANARY,
            from_version="1",
            to_version="1",
            who=f"writer-{writer}",
            why={"i": i},
        )
        with reg.registry_lock():
            audit.append(client, model, entry)


def test_concurrent_writers_in_separate_processes_never_lose_an_entry(registry, store):
    count = 20
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: separate MLflow clients and connections
    # Writers 0 and 1 share a lock directory (one machine); writer 2 has its own, as on another machine whose
    # lock they never see: only the claim-and-check of the sequence number keeps it from colliding with them.
    lock_dirs = ["machine-a", "machine-a", "machine-b"]
    writers = [
        ctx.Process(target=_append_many, args=(str(store), registry.model_name, lock_dirs[w], w, count))
        for w in range(3)
    ]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=240)
        assert p.exitcode == 0
    trail = registry.audit_trail()
    assert sorted((e["who"], e["why"]["i"]) for e in trail) == sorted(
        (f"writer-{w}", i) for w in range(3) for i in range(count)
    )
    seqs = [e["seq"] for e in trail]
    assert len(set(seqs)) == len(seqs) == 3 * count  # unique numbers, every entry once
    raw = registry.client().get_registered_model(registry.model_name).tags
    assert sum(1 for k in raw if audit.parse_key(k)) == 3 * count  # no duplicate key left behind
