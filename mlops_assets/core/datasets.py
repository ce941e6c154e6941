"""Dataset versions and ingests as a person reads them: the text of ``mlops data diff`` and ``mlops ingest``.

Pure functions over manifests, feature summaries and run outcomes, so that what the commands say is tested
without a store or a Dagster instance; the CLI only gathers the inputs and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from mlops_assets.core import contracts
from mlops_assets.core.features import FeatureProfile
from mlops_assets.core.spec import DatasetSpec
from mlops_assets.core.validation import BatchRejected


def manifest_diff(a_id: str, a: Mapping[str, Any], b_id: str, b: Mapping[str, Any]) -> list[str]:
    """Rows and batches from version ``a`` to ``b``: ``+`` added, ``-`` removed, ``~`` same partition, new content."""
    ba = {x["partition"]: x for x in a["batches"]}
    bb = {x["partition"]: x for x in b["batches"]}
    lines = [f"{a_id} -> {b_id}: rows {a['rows']} -> {b['rows']} ({b['rows'] - a['rows']:+d})"]
    lines += [f"  + {key} ({bb[key]['rows']} rows)" for key in sorted(set(bb) - set(ba))]
    lines += [f"  - {key} ({ba[key]['rows']} rows)" for key in sorted(set(ba) - set(bb))]
    lines += [f"  ~ {key} (content changed)"
              for key in sorted(k for k in set(ba) & set(bb) if ba[k]["sha256"] != bb[k]["sha256"])]
    return lines


def feature_summary(spec: DatasetSpec, chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per-column summary of a version, indexed by column; streamed, so any size fits in bounded memory."""
    profile = FeatureProfile(spec)
    for chunk in chunks:
        profile.update(chunk)
    return profile.table().set_index("column")


def feature_shift(spec: DatasetSpec, before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """Mean and std of each numeric feature, before -> after (summaries from ``feature_summary``)."""
    return [f"  {col:>16}: mean {before.at[col, 'mean']:.4g} -> {after.at[col, 'mean']:.4g}, "
            f"std {before.at[col, 'std']:.4g} -> {after.at[col, 'std']:.4g}"
            for col in spec.feature_names if spec.feature_kinds[col] == "numeric"]


class IngestRun(Protocol):
    """What the report needs of a run a sensor tick launched (``headless.sensor_runner.RunOutcome``)."""

    run_id: str | None
    partition: str | None
    success: bool
    deduplicated: bool
    tags: dict[str, str]


@dataclass(frozen=True)
class IngestReport:
    lines: list[str]
    failed: bool  # a file was quarantined or a run failed: the command exits 1


def ingest_report(runs: Sequence[IngestRun], new_quarantine_reports: Sequence[Mapping[str, Any]],
                  batch_record: Callable[[str], Mapping[str, Any]], quarantine_dir: Path,
                  skip_message: str | None) -> IngestReport:
    """One line per file: accepted (with its partition, rows and hash), quarantined (why) or failed otherwise.

    ``batch_record`` looks up the stored record of an accepted partition; a run whose file was quarantined
    is reported once, as quarantined, not again as a failed run.
    """
    lines = []
    for run in (r for r in runs if r.success):
        record = batch_record(run.partition)
        lines.append(f"accepted    {run.tags.get(contracts.SOURCE_FILE, run.partition)}: partition {run.partition}, "
                     f"{record['rows']} rows, sha256 {record['sha256']}")
    for report in new_quarantine_reports:
        rejected = BatchRejected(report["file"], report["reason"], report.get("failures", []))
        lines.append(f"quarantined {rejected}\n  (moved to {quarantine_dir / report['quarantined_as']})")
    quarantined = {rep["file"] for rep in new_quarantine_reports}
    failed_otherwise = [r for r in runs if not r.success and not r.deduplicated
                        and r.tags.get(contracts.SOURCE_FILE) not in quarantined]
    lines += [f"failed      {run.tags.get(contracts.SOURCE_FILE, run.partition)}: run {run.run_id} failed; "
              "see it in the Dagster UI" for run in failed_otherwise]
    if not runs and not new_quarantine_reports:
        lines.append(skip_message or "nothing to ingest")
    return IngestReport(lines, bool(new_quarantine_reports or failed_otherwise))
