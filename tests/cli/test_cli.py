"""The `mlops` command line, run in-process against a temporary home."""

import hashlib
import json

import pytest

from mlops_assets.cli import main
from mlops_assets.core.demo import make_batch, write_batches


@pytest.fixture
def cli_home(lay, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(lay.dagster_home))
    return lay


def test_ingest_reports_each_file_and_fails_on_quarantine(cli_home, tmp_path, capsys):
    good = tmp_path / "batch_good.csv"
    make_batch(300, seed=1).to_csv(good, index=False)
    bad = tmp_path / "batch_bad.csv"
    make_batch(300, seed=2, start_id=1000).drop(columns="age").to_csv(bad, index=False)
    code = main(["ingest", str(good), str(bad)])
    out = capsys.readouterr().out
    assert code == 1
    assert "accepted    batch_good.csv: partition batch_good, 300 rows" in out
    assert "quarantined batch_bad.csv" in out and "- age: missing required column" in out
    assert (cli_home.quarantine / next(p.name for p in cli_home.quarantine.iterdir()
                                       if p.name.endswith("batch_bad.csv"))).exists()

    assert main(["ingest"]) == 0  # nothing new: same file never ingests twice
    assert "no new files" in capsys.readouterr().out


def test_data_versions_diff_and_checkout_round_trip(cli_home, defs, instance, tmp_path, capsys):
    from mlops_assets.headless.sensor_runner import Runner

    runner = Runner(defs, instance, cli_home.io / "sensor_cursors.json")
    write_batches(cli_home.landing, batches=2, rows=300, seed=3)
    runner.tick("new_data_sensor")
    dataset_job = defs.resolve_job_def("training_job")
    first = dataset_job.execute_in_process(instance=instance, op_selection=["dataset"])
    assert first.success
    write_batches(cli_home.landing, batches=1, rows=300, seed=4)
    runner.tick("new_data_sensor")
    assert dataset_job.execute_in_process(instance=instance, op_selection=["dataset"]).success

    assert main(["data", "versions", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)
    assert [v["batches"] for v in versions] == [2, 3]
    assert {"id", "created", "batches", "rows", "schema_hash"} <= set(versions[0])
    a, b = versions[0]["id"], versions[1]["id"]

    assert main(["data", "diff", a, b]) == 0
    diff = capsys.readouterr().out
    assert "rows 600 -> 900 (+300)" in diff and diff.count("\n  + ") == 1

    target = tmp_path / "checkout"
    assert main(["data", "checkout", a, str(target)]) == 0
    manifest = json.loads((target / "manifest.json").read_text())
    for batch in manifest["batches"]:
        payload = (target / f"{batch['partition']}.parquet").read_bytes()
        assert hashlib.sha256(payload).hexdigest() == batch["sha256"]

    assert main(["data", "diff", a, "doesnotexist"]) == 2


def test_schema_infer_then_the_pipeline_enforces_it(cli_home, tmp_path, monkeypatch, capsys):
    """A user's own data set: infer a spec from a sample, point MLOPS_DATASET at it, ingest."""
    sample = make_batch(400, seed=8).rename(columns={"default": "churned", "application_id": "customer"})
    sample_path = tmp_path / "sample.csv"
    sample.to_csv(sample_path, index=False)
    spec_path = tmp_path / "churn.yaml"
    assert main(["schema", "infer", str(sample_path), "--target", "churned", "--id-column", "customer",
                 "--name", "churn", "-o", str(spec_path)]) == 0
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    assert main(["schema", "show", str(spec_path)]) == 0
    shown = capsys.readouterr().out
    assert "schema churn_raw" in shown and "isin([0, 1])" in shown

    good = tmp_path / "churn_2026-01-01.csv"
    make_batch(300, seed=9, start_id=5000).rename(
        columns={"default": "churned", "application_id": "customer"}).to_csv(good, index=False)
    bad = tmp_path / "churn_2026-01-02.csv"
    make_batch(300, seed=10, start_id=9000).rename(
        columns={"default": "churned", "application_id": "customer"}).assign(region="mars").to_csv(bad, index=False)
    assert main(["ingest", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "accepted    churn_2026-01-01.csv" in out
    assert "- region: not one of the allowed categories ['east', 'north', 'south', 'west'] in 300 row(s): " \
           "line 2 'mars'" in out

    assert main(["schema", "infer", str(sample_path), "--target", "nope"]) == 2


def test_registry_commands_and_one_step_rollback(cli_home, defs, instance, capsys):
    from mlops_assets.core.contracts import CHAMPION
    from mlops_assets.headless.sensor_runner import Runner

    runner = Runner(defs, instance, cli_home.io / "sensor_cursors.json")
    for seed in (11, 12):
        write_batches(cli_home.landing, batches=1, rows=800, seed=seed)
        runner.tick("new_data_sensor")
        assert all(r.success for r in runner.tick("new_dataset_sensor").runs)
    capsys.readouterr()

    assert main(["registry", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("v1") and "previous" in listed[0]
    assert listed[1].startswith("v2") and "champion" in listed[1]
    assert main(["registry", "show", "2"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["aliases"] == ["champion"] and shown["tags"]["mlops.dataset_version"]
    assert "Gate passed against champion v1" in shown["description"]

    assert main(["deploy", "rollback"]) == 0
    assert "champion rolled back: v2 -> v1" in capsys.readouterr().out
    assert defs.resources["tracking"].version_by_alias(CHAMPION).version == "1"

    assert main(["registry", "history"]) == 0  # the audit trail: both promotions, then the manual rollback
    history = [" ".join(line.split()[3:8]) for line in capsys.readouterr().out.splitlines()]
    assert history == ["promote champion v- -> v1", "promote previous v- -> v1", "promote champion v1 -> v2",
                       "rollback champion v2 -> v1", "rollback previous v1 -> v2"]


def test_the_embedded_instance_queues_one_training_run_at_a_time(cli_home):
    from mlops_assets.cli._instance import embedded_instance
    from mlops_assets.core import contracts

    with embedded_instance(cli_home) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": contracts.RUN_KIND, "value": "training", "limit": 1} in limits
    assert (cli_home.dagster_home / "dagster.yaml").exists()


def test_schema_infer_reads_several_files_and_says_which_task_and_why(tmp_path, capsys):
    """Issue 12 items 4 and 5: a 0.0/1.0 label is a classifier's, said on stderr with the override."""
    sample = make_batch(200, seed=11).assign(repaid=lambda f: f["default"].astype(float)).drop(columns="default")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    sample.iloc[:100].to_csv(first, index=False)
    sample.iloc[100:].assign(region="islands").to_csv(second, index=False)
    out_path = tmp_path / "loans.yaml"
    assert main(["schema", "infer", str(first), str(second), "--target", "repaid", "-o", str(out_path)]) == 0
    err = capsys.readouterr().err
    assert "task: classification, inferred: the target is numeric with 2 distinct whole value(s) [0.0, 1.0]" in err
    assert "--task regression" in err
    from mlops_assets.core.spec import load_spec

    spec = load_spec(out_path)
    assert spec.task == "classification" and spec.classes == [0, 1] and spec.name == "a"
    assert "islands" in next(c for c in spec.categorical if c.name == "region").categories
    assert main(["schema", "infer", str(first), "--target", "repaid", "--task", "regression"]) == 0
    assert "task: regression (set by --task)" in capsys.readouterr().err


def test_version_names_the_platform_and_its_stack(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"mlops-assets {version('mlops-assets')} (")
    assert f"dagster {version('dagster')}" in out and f"mlflow {version('mlflow')}" in out


def test_ingest_prints_a_line_per_file_and_retries_after_a_spec_fix(cli_home, tmp_path, monkeypatch, capsys):
    """Issue 12, cases 2 and 3: never silent, a spec fix retries the same bytes, a copy names the first partition."""
    from mlops_assets.core.spec import CategoricalColumn, demo_spec, dump_spec

    def write_spec(regions: list[str]) -> None:
        spec = demo_spec()
        spec = spec.model_copy(update={"categorical": [
            CategoricalColumn(name="region", categories=regions) if c.name == "region" else c
            for c in spec.categorical]})
        spec_path.write_text(dump_spec(spec), encoding="utf-8")

    spec_path = tmp_path / "loans.yaml"
    write_spec(["east", "north", "south", "west"])
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    good = tmp_path / "good.csv"
    make_batch(300, seed=1).to_csv(good, index=False)
    late = tmp_path / "late.csv"
    make_batch(300, seed=2, start_id=1000).assign(region="mars").to_csv(late, index=False)
    assert main(["ingest", str(good), str(late)]) == 1
    assert "quarantined late.csv" in capsys.readouterr().out

    assert main(["ingest", str(good)]) == 0
    assert capsys.readouterr().out.startswith("skipped     good.csv: already ingested as partition good, 300 rows")

    assert main(["ingest", str(late)]) == 1  # same bytes, same spec: said so, not silently dropped
    out = capsys.readouterr().out
    assert out.startswith("skipped     late.csv: these bytes were already tried under this spec (run ")

    write_spec(["east", "north", "south", "west", "mars"])  # the fix is to the spec, not the file
    assert main(["ingest", str(late)]) == 0
    assert capsys.readouterr().out.startswith("accepted    late.csv: partition late, 300 rows, sha256 ")

    copy = tmp_path / "copy.csv"
    copy.write_bytes(good.read_bytes())
    assert main(["ingest", str(copy)]) == 1
    assert capsys.readouterr().out.startswith("quarantined copy.csv: duplicate of partition good: the same content")


def test_data_versions_say_the_spec_and_what_was_left_out(cli_home, instance, tmp_path, monkeypatch, capsys):
    from mlops_assets.core.spec import demo_spec, dump_spec
    from mlops_assets.definitions import build_definitions

    old = tmp_path / "old.csv"
    make_batch(300, seed=1).to_csv(old, index=False)
    assert main(["ingest", str(old)]) == 0
    spec = demo_spec()
    spec_path = tmp_path / "loans.yaml"  # a tighter spec: ages from 18 to 20 only
    spec_path.write_text(dump_spec(spec.model_copy(update={"numeric": [
        c.model_copy(update={"max": 20}) if c.name == "age" else c for c in spec.numeric]})), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET", str(spec_path))
    new = tmp_path / "new.csv"
    make_batch(300, seed=2, start_id=1000).assign(age=19).to_csv(new, index=False)
    assert main(["ingest", str(new)]) == 0
    result = build_definitions(cli_home).resolve_job_def("training_job").execute_in_process(
        instance=instance, op_selection=["dataset"])
    assert result.success
    capsys.readouterr()
    assert main(["data", "versions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "   1 batches        300 rows  spec loans (" in lines[0] and lines[0].endswith(")  1 left out")
    assert lines[1].startswith("    left out old (300 rows, sha256 ") and "age: above the maximum 20" in lines[1]
    assert main(["data", "versions", "--json"]) == 0
    (version,) = json.loads(capsys.readouterr().out)
    assert version["spec"] == "loans" and version["left_out"][0]["partition"] == "old"
