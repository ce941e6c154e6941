"""`mlops registry list` and `show` on a real store answer without importing MLflow, and print exactly what the
MLflow-client path prints (issue 12, item 9)."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets import settings
from mlops_assets.cli import registry as registry_cli
from mlops_assets.core import contracts as c
from mlops_assets.core import registry_view
from mlops_assets.core.registry import ModelRegistry

PROBE = (
    "import sys; from mlops_assets.cli import main; code = main(sys.argv[1:]); "
    "print('IMPORTED:' + ','.join(m for m in ('mlflow', 'dagster') if m in sys.modules), file=sys.stderr); "
    "sys.exit(code)"
)


@pytest.fixture
def home(lay: settings.Layout, tmp_path: Path) -> settings.Layout:
    """A platform home whose MLflow store holds two versions, one champion and one previous."""
    registry = ModelRegistry(
        tracking_uri=settings.tracking_uri(lay),
        registry_uri=settings.registry_uri(lay),
        model_name=settings.model_name(),
        lock_dir=str(lay.locks),
    )
    client = registry.client()
    client.create_registered_model(settings.model_name())
    for n in (1, 2):
        client.create_model_version(
            settings.model_name(),
            str(tmp_path / f"m{n}"),
            description=f"v{n}",
            tags={c.LINEAGE_DATASET: f"ds{n}", "metric.roc_auc": f"0.{n}"},
        )
        registry.promote(str(n))
    return lay


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300)


def through_mlflows_client(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The same command in-process with the fast readers switched off: MLflow's client answers."""
    monkeypatch.setattr(registry_view, "fast_reader", lambda *a, **k: None)
    namespace = argparse.Namespace(registry_cmd=args[0], version=args[1] if len(args) > 1 else None)
    code = registry_cli.cmd_registry(namespace)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_listing_prints_what_the_mlflow_client_path_prints_without_importing_it(home, monkeypatch, capsys):
    fast = {
        tuple(command): cli("registry", *command)
        for command in (["list"], ["show", "1"], ["show", "2"], ["show", "99"])
    }
    for command, done in fast.items():
        assert done.stderr.splitlines()[-1] == "IMPORTED:", done.stderr
        code, out, err = through_mlflows_client(monkeypatch, capsys, *command)
        assert (done.returncode, done.stdout, done.stderr.splitlines()[:-1]) == (code, out, err.splitlines())
        assert code == (2 if command[-1] == "99" else 0) and (out or err)
    assert fast[("list",)].stdout.splitlines()[1].startswith("v2    champion  ")
