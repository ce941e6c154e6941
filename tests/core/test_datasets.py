"""What `mlops data diff` and `mlops ingest` say, from plain inputs (no store, no Dagster instance)."""

from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.core import contracts
from mlops_assets.core.datasets import feature_shift, feature_summary, ingest_report, manifest_diff
from mlops_assets.core.demo import make_batch
from mlops_assets.core.spec import demo_spec


def test_manifest_diff_lists_added_removed_and_changed_partitions() -> None:
    a = {"rows": 600, "batches": [{"partition": "p1", "rows": 300, "sha256": "x"},
                                  {"partition": "p2", "rows": 300, "sha256": "y"}]}
    b = {"rows": 700, "batches": [{"partition": "p2", "rows": 300, "sha256": "z"},
                                  {"partition": "p3", "rows": 400, "sha256": "w"}]}
    assert manifest_diff("A", a, "B", b) == [
        "A -> B: rows 600 -> 700 (+100)", "  + p3 (400 rows)", "  - p1 (300 rows)", "  ~ p2 (content changed)",
    ]


def test_feature_shift_compares_streamed_summaries_of_numeric_features() -> None:
    spec = demo_spec()
    frame = make_batch(400, seed=1)
    before = feature_summary(spec, [frame.iloc[:200], frame.iloc[200:]])
    after = feature_summary(spec, [frame.assign(age=frame["age"] + 10)])
    lines = feature_shift(spec, before, after)
    numeric = [c for c in spec.feature_names if spec.feature_kinds[c] == "numeric"]
    assert len(lines) == len(numeric)
    (age,) = [line for line in lines if line.strip().startswith("age:")]
    mean = frame["age"].mean()
    assert f"mean {mean:.4g} -> {mean + 10:.4g}" in age


@dataclass
class Run:
    partition: str
    success: bool
    run_id: str = "r1"
    deduplicated: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def test_ingest_report_names_each_file_once_and_fails_on_quarantine_or_failure() -> None:
    runs = [Run("good", True, tags={contracts.SOURCE_FILE: "good.csv"}),
            Run("bad", False, tags={contracts.SOURCE_FILE: "bad.csv"}),
            Run("odd", False, run_id="r3", tags={contracts.SOURCE_FILE: "odd.csv"}),
            Run("old", False, deduplicated=True, tags={contracts.SOURCE_FILE: "old.csv"})]
    quarantined = [{"file": "bad.csv", "reason": "schema", "quarantined_as": "2026-bad.csv"}]
    records = {"good": {"rows": 300, "sha256": "abc"}}
    report = ingest_report(runs, quarantined, records.__getitem__, Path("/q"), None)
    assert report.failed
    assert report.lines == [
        "accepted    good.csv: partition good, 300 rows, sha256 abc",
        "failed      odd.csv: run r3 failed; see it in the Dagster UI",
        "skipped     old.csv: these bytes were already tried under this spec (run r1) and not accepted; correct "
        "the file or the spec and land it again",
        "quarantined bad.csv: schema\n  (moved to /q/2026-bad.csv)",
    ]


def test_ingest_report_with_nothing_to_do_passes_the_sensor_message_on() -> None:
    report = ingest_report([], [], {}.__getitem__, Path("/q"), "no new files")
    assert report.lines == ["no new files"] and not report.failed
    assert ingest_report([], [], {}.__getitem__, Path("/q"), None).lines == ["nothing to ingest"]
    assert not ingest_report([Run("p", True)], [], {"p": {"rows": 1, "sha256": "s"}}.__getitem__, Path("/q"),
                             None).failed


def test_ingest_report_has_a_line_for_every_file_it_was_given() -> None:
    """A file ingested before is named with its partition; a file the tick never saw is named too."""
    runs = [Run("a", True, deduplicated=True, tags={contracts.SOURCE_FILE: "a.csv"})]
    report = ingest_report(runs, [], {"a": {"rows": 3, "sha256": "s"}}.get, Path("/q"), "no new files",
                           landed=["a.csv", "b.csv"])
    assert report.lines == ["skipped     a.csv: already ingested as partition a, 3 rows, sha256 s",
                            "skipped     b.csv: no new files"]
    assert report.failed
    assert not ingest_report(runs, [], {"a": {"rows": 3, "sha256": "s"}}.get, Path("/q"), None).failed
