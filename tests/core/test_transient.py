"""What counts as a transient fault (retried) and what never does (issue 15, item 5): real failures from real
sockets, a real HTTP server and MLflow's client, not hand-made lookalikes where a real one is at hand."""

import http.server
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pandera.pandas as pa
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops_assets.core.transient import is_transient
from tests.support.servers import free_port


def raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the exception is the subject of the test
        return exc
    raise AssertionError("expected a failure")


@pytest.fixture
def answering() -> Iterator[str]:
    """A real HTTP server on loopback answering each path's number as its status (/503 -> 503)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_connection_refused_and_timeouts_are_transient(monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    assert is_transient(raised(lambda: requests.get(closed, timeout=5)))
    assert is_transient(raised(lambda: httpx.get(closed, timeout=5)))
    assert is_transient(TimeoutError("read timed out"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = raised(lambda: MlflowClient(tracking_uri=closed).search_experiments())
    assert isinstance(down, MlflowException) and is_transient(down)  # MLflow re-raises it as a plain message


def test_server_errors_are_transient_client_errors_are_not(answering):
    for status, transient in ((500, True), (502, True), (503, True), (429, True), (400, False), (404, False)):
        response = requests.get(f"{answering}/{status}", timeout=5)
        assert is_transient(raised(response.raise_for_status)) is transient, status
        response = httpx.get(f"{answering}/{status}", timeout=5)
        assert is_transient(raised(response.raise_for_status)) is transient, status


def test_verdicts_on_data_models_and_config_are_never_retried(tmp_path: Path):
    schema = pa.DataFrameSchema({"age": pa.Column(int, pa.Check.ge(0))})
    assert not is_transient(raised(lambda: schema.validate(pd.DataFrame({"age": [-1]}))))
    assert not is_transient(ValueError("canary_percent must be a number from 0 to 100"))
    assert not is_transient(raised((tmp_path / "missing.csv").read_bytes))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    missing = raised(lambda: MlflowClient(tracking_uri=store).get_model_version("nope", "1"))
    assert isinstance(missing, MlflowException) and not is_transient(missing)


def test_a_locked_sqlite_file_is_transient_a_wrong_query_is_not(tmp_path: Path):
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    assert is_transient(raised(lambda: other.execute("SELECT * FROM t")))
    holder.rollback()
    assert not is_transient(raised(lambda: other.execute("SELECT * FROM no_such_table")))


def test_the_cause_chain_is_followed():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("could not log the model") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
