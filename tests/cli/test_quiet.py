"""The `mlops` command as a user runs it, in a subprocess: expected failures print the platform's words, never a
stack trace, and the listing commands do not import the orchestrator (issue 12, items 8 and 9)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.demo import make_batch


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))}
    return {**keep, "MLOPS_HOME": str(tmp_path / "home"), "MLOPS_SETTLE_SECONDS": "0",
            "MLOPS_GATEWAY_URL": "http://127.0.0.1:9"}


def mlops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_quarantined_file_is_reported_without_dagster_logs_or_tracebacks(env, tmp_path: Path):
    bad = tmp_path / "loans_thousands.csv"
    frame = make_batch(200, seed=1)
    frame["income"] = frame["income"].map(lambda v: f"{v:,.0f}")
    frame.to_csv(bad, index=False)
    done = mlops(env, "ingest", str(bad))
    assert done.returncode == 1
    assert "quarantined loans_thousands.csv" in done.stdout and "- income: not a number in " in done.stdout
    assert "thousands separator" in done.stdout
    assert "Traceback" not in done.stderr and "Stack Trace" not in done.stderr
    assert " - dagster - " not in done.stderr and len(done.stderr.splitlines()) <= 2


def test_an_unknown_model_version_is_one_line_and_exit_2(env):
    done = mlops(env, "registry", "show", "99")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["error: model 'mlops-model' has no version 99 (see `mlops registry "
                                                "list`)"]


@pytest.mark.parametrize("command", [["data", "versions"], ["registry", "list"], ["registry", "show", "1"],
                                     ["registry", "history"]])
def test_listing_commands_do_not_import_dagster(env, command):
    script = ("import sys; from mlops_assets.cli import main; code = main(sys.argv[1:]); "
              "print('DAGSTER-IMPORTED' if 'dagster' in sys.modules else 'no-dagster'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, *command], env=env, capture_output=True, text=True,
                          timeout=300)
    assert "no-dagster" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
