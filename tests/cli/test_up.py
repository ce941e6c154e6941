"""`mlops up` as a service manager runs it: the MLflow UI answers from the platform's store, and SIGTERM stops
the whole process tree (dg dev's webserver, daemon and code server, the gateway, mlflow server) within 30 s,
leaving no run recorded as in progress (issue 15, items 1 and 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from mlops_assets import settings
from mlops_assets.core.waiting import wait_until
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _tree(root: int) -> set[int]:
    """``root`` and every descendant, read from /proc (parent pid is the 4th field of /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def up(tmp_path: Path):
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))}
    ports = {"port": free_port(), "gateway-port": free_port(), "mlflow-port": free_port()}
    env = {**keep, "MLOPS_HOME": str(tmp_path / "home"), "MLOPS_EXPERIMENT": "up-test"}
    args = [a for name, port in ports.items() for a in (f"--{name}", str(port))]
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlops_assets.cli", "up", "--workspace",
                             str(REPO / "workspace.yaml"), *args], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    yield proc, ports, tmp_path / "home", tmp_path / "up.log"
    for pid in _tree(proc.pid):  # only if the test failed half-way
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    log.close()


def test_sigterm_stops_every_process_of_the_tree_and_the_mlflow_ui_serves_the_platforms_store(up):
    proc, ports, home, log = up
    mlflow_api = f"http://127.0.0.1:{ports['mlflow-port']}/api/2.0/mlflow/experiments/search?max_results=50"
    ready = wait_until(lambda: _answers(mlflow_api) and _answers(f"http://127.0.0.1:{ports['port']}/server_info")
                       and _answers(f"http://127.0.0.1:{ports['gateway-port']}/version"), 180, 1)
    assert ready, log.read_text()[-3000:]
    names = [e["name"] for e in httpx.get(mlflow_api, timeout=10).json()["experiments"]]
    assert "up-test" in names  # the platform's experiment, created in its store before the UI started

    # A run the instance records as in progress, whose process will never report back.
    with DagsterInstance.from_config(str(settings.Layout(home).dagster_home)) as instance:
        run_id = make_new_run_id()
        instance.add_run(DagsterRun(job_name="training_job", run_id=run_id, status=DagsterRunStatus.STARTED))
        # dg dev's code server comes up last: wait until the tree is complete before taking it
        assert wait_until(lambda: any(b"code-server" in _cmdline(p) for p in _tree(proc.pid)), 60, 0.5)
        tree = _tree(proc.pid)
        assert len(tree) >= 6, tree  # mlops up, mlflow server (+ uvicorn), gateway, dg dev and its children

        proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: not any(_alive(pid) for pid in tree), 30, 0.2), \
            [(pid, _cmdline(pid)[:80]) for pid in tree if _alive(pid)]
        assert proc.wait(timeout=5) == 0
        assert instance.get_run_by_id(run_id).status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
    output = log.read_text()
    assert "stopping (SIGTERM received)" in output and "marked canceled" in output, output[-3000:]


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""
