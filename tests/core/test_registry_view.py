"""The listing commands' MLflow-free registry readers answer exactly what MLflow's client answers, on a real
SQLite store and through a real `mlflow server` (issue 12, item 9)."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.store.db.utils import _get_latest_schema_revision

from mlops_assets.core import contracts as c
from mlops_assets.core.registry import ModelRegistry
from mlops_assets.core.registry_view import (
    KNOWN_SCHEMA_REVISIONS,
    ClientReader,
    ModelState,
    NoSuchVersion,
    RestReader,
    SqliteReader,
    fast_reader,
)
from tests.support.servers import MlflowServer

MODEL = "view-model"
NO_AUTH = (None, None, None)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A real store with what the platform leaves there: versions with lineage tags, several aliases on one
    version, a model-level tag, a deleted version and another model beside it."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    registry = ModelRegistry(tracking_uri=uri, registry_uri=uri, model_name=MODEL, lock_dir=str(tmp_path / "locks"))
    client = registry.client()
    for name in (MODEL, "other-model"):
        client.create_registered_model(name)
    for n in range(1, 5):
        client.create_model_version(
            MODEL,
            str(tmp_path / f"model-{n}"),
            description=f"version {n}",
            tags={c.LINEAGE_DATASET: f"ds{n}", "metric.roc_auc": f"0.{n}"},
        )
        client.set_model_version_tag(MODEL, str(n), "aa.late", "added after creation")
    client.create_model_version("other-model", str(tmp_path / "other"))
    client.delete_model_version(MODEL, "3")
    client.set_registered_model_tag(MODEL, c.CANARY_PERCENT_TAG, "10")
    registry.promote("1")
    registry.promote("2")
    for alias in (c.CHALLENGER, c.CANARY):
        client.set_registered_model_alias(MODEL, alias, "4")
    return db


def client_reader(uri: str, tmp_path: Path) -> ClientReader:
    return ClientReader(
        ModelRegistry(tracking_uri=uri, registry_uri=uri, model_name=MODEL, lock_dir=str(tmp_path / "locks"))
    )


def assert_same_answers(fast, reference) -> None:
    assert fast.versions() == reference.versions()
    assert [v.version for v in fast.versions()] in ([1, 2, 4], ["1", "2", "4"])
    for number in ("1", "2", "4", "02"):
        assert fast.version(number) == reference.version(number)
    for missing in ("3", "99"):
        for reader in (fast, reference):
            with pytest.raises(NoSuchVersion):
                reader.version(missing)
            with pytest.raises(NoSuchVersion):
                reader.download_uri(missing)
    # What the gateway follows and loads from.
    assert fast.state() == reference.state()
    assert fast.state().aliases == {c.CHAMPION: "2", c.PREVIOUS: "1", c.CHALLENGER: "4", c.CANARY: "4"}
    assert fast.state().tags[c.CANARY_PERCENT_TAG] == "10"
    for number in ("1", "2", "4"):
        assert fast.download_uri(number) == reference.download_uri(number)


def test_a_model_not_registered_yet_has_no_aliases(store: Path, tmp_path: Path):
    """The gateway starts before the first training run: no aliases, no tags, no error."""
    uri = f"sqlite:///{store}"
    fast = SqliteReader.open(store, "not-yet")
    reference = ClientReader(ModelRegistry(tracking_uri=uri, registry_uri=uri, model_name="not-yet",
                                           lock_dir=str(tmp_path / "locks")))
    assert fast.state() == reference.state() == ModelState()


def test_the_pinned_mlflow_schema_is_one_the_sqlite_reader_was_checked_against():
    """Fails when MLflow's schema moves on: check the registry tables, then add the new revision."""
    assert _get_latest_schema_revision() in KNOWN_SCHEMA_REVISIONS


def test_the_sqlite_reader_answers_what_mlflow_answers(store: Path, tmp_path: Path):
    fast = fast_reader(f"sqlite:///{store}", MODEL, auth=NO_AUTH, customised=False)
    assert isinstance(fast, SqliteReader)
    assert_same_answers(fast, client_reader(f"sqlite:///{store}", tmp_path))
    assert fast.version("4").aliases == [c.CANARY, c.CHALLENGER]


def test_the_rest_reader_answers_what_mlflow_answers(store: Path, tmp_path: Path):
    server = MlflowServer(f"sqlite:///{store}", tmp_path / "artifacts").start()
    try:
        fast = fast_reader(server.url, MODEL, auth=NO_AUTH, customised=False)
        assert isinstance(fast, RestReader)
        assert_same_answers(fast, client_reader(server.url, tmp_path))
    finally:
        server.stop()


def test_stores_the_readers_do_not_know_go_to_mlflows_client(store: Path, tmp_path: Path):
    unknown = tmp_path / "unknown.db"
    shutil.copy(store, unknown)
    with sqlite3.connect(unknown) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert fast_reader(f"sqlite:///{unknown}", MODEL, auth=NO_AUTH, customised=False) is None
    assert fast_reader(f"sqlite:///{tmp_path / 'absent.db'}", MODEL, auth=NO_AUTH, customised=False) is None
    assert fast_reader("postgresql://u@127.0.0.1/mlflow", MODEL, auth=NO_AUTH, customised=False) is None
    assert fast_reader("databricks", MODEL, auth=NO_AUTH, customised=False) is None
    assert fast_reader("https://mlflow.example", MODEL, auth=NO_AUTH, customised=True) is None
    MlflowClient(tracking_uri=f"sqlite:///{store}")  # the original is untouched by the reader
    assert fast_reader(f"sqlite:///{store}", MODEL, auth=NO_AUTH, customised=False) is not None
