"""`mlops score FILE`: a real file scored by the real champion of the platform's MLflow store, printed counts, a
report for the rejected row, the scored Parquet, the prediction log; in a subprocess, without Dagster."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets import settings
from mlops_assets.cli import main
from mlops_assets.core.predictions import read_predictions, utc_now
from tests.support.tiny_models import Store, Trap, data, log_model, train

SCRIPT = ("import sys; from mlops_assets.cli import main; code = main(sys.argv[1:]); "
          "print('DAGSTER-IMPORTED' if 'dagster' in sys.modules else 'no-dagster'); sys.exit(code)")


@pytest.fixture
def home(lay: settings.Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> settings.Layout:
    """A platform home whose spec fits the tiny model, and that model registered as champion v1."""
    spec = {"name": "tiny", "task": "classification", "target": "y", "id_column": "id",
            "numeric": [{"name": "x"}], "categorical": [{"name": "colour", "categories": ["red", "green", "blue"]}],
            "classes": [0, 1]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET", str(tmp_path / "tiny.yaml"))
    store = Store.create(lay.mlflow_dir)  # the platform's default store: $MLOPS_HOME/mlflow/mlflow.db
    store.alias(store.register(train(1), name=settings.DEFAULT_MODEL_NAME), name=settings.DEFAULT_MODEL_NAME)
    return lay


def test_mlops_score_prints_counts_report_and_output(home, tmp_path: Path, capsys):
    lay = home
    rows, _ = data(50, 3)
    rows.insert(0, "id", np.arange(50) + 100)
    rows.loc[7, "colour"] = "purple"  # file line 9: not an allowed category
    path = tmp_path / "week-48.csv"
    rows.to_csv(path, index=False)

    # As a user runs it: its own process, no stack trace, and no Dagster import (it scores in this process).
    done = subprocess.run([sys.executable, "-c", SCRIPT, "score", str(path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "with model v1 (champion)" in out and "no-dagster" in out
    assert f"scored   49 of 50 rows -> {lay.scoring_output / 'week-48.parquet'}" in out
    assert f"rejected 1 row(s), not scored: report {lay.scoring_reports / 'week-48.report.json'}" in out
    assert "- colour: not one of the allowed categories" in out
    scored = pd.read_parquet(lay.scoring_output / "week-48.parquet")
    expected = train(1).predict_proba(rows.drop(index=7)[["x", "colour"]])
    np.testing.assert_allclose(scored[["proba_0", "proba_1"]], expected)
    assert 107 not in set(scored["id"]) and set(scored["batch_id"]) == {"week-48"}
    logged = read_predictions(lay.home, utc_now().date())
    assert len(logged) == 49 and set(logged["slot"]) == {"batch"} and set(logged["request_id"]) == {"week-48:0"}

    other = tmp_path / "elsewhere.parquet"
    assert main(["score", str(path), "--version", "1", "-o", str(other)]) == 0
    assert len(pd.read_parquet(other)) == 49 and "with model v1 (pinned)" in capsys.readouterr().out

    assert main(["score", str(path), "--version", "4"]) == 2
    assert capsys.readouterr().err.strip() == "error: model 'mlops-model' has no version 4; it has 1"
    rows.drop(columns="x").to_csv(path, index=False)
    assert main(["score", str(path)]) == 1
    err = capsys.readouterr().err
    assert "x: missing required column" in err and f"report: {lay.scoring_reports / 'week-48.report.json'}" in err


def test_mlops_score_refuses_a_pickled_version_with_the_reason_and_never_runs_it(home, tmp_path: Path, capsys):
    marker = tmp_path / "the-pickle-ran"
    uri = f"sqlite:///{home.mlflow_dir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("gateway-tests")
    _, version = log_model(Trap(marker), settings.DEFAULT_MODEL_NAME, serialization_format="pickle")
    rows, _ = data(5, 3)
    rows.insert(0, "id", np.arange(5))
    path = tmp_path / "pinned.csv"
    rows.to_csv(path, index=False)
    assert main(["score", str(path), "--version", version]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after MLflow's own warning about logging a pickle
    assert last.startswith(f"error: models:/{settings.DEFAULT_MODEL_NAME}/{version}: the model is saved as 'pickle'")
    assert "serialization_format='skops'" in last and "Traceback" not in err
    assert not marker.exists(), "scoring ran the pickle's code"
