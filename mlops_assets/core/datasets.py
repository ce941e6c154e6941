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
                  batch_record: Callable[[str], Mapping[str, Any] | None], quarantine_dir: Path,
                  skip_message: str | None, landed: Sequence[str] = ()) -> IngestReport:
    """One line per file seen: accepted (with its partition, rows and hash), quarantined (why), skipped (already
    ingested as a partition, or already failed with these bytes under this spec) or failed otherwise.

    ``batch_record`` looks up the stored record of a partition; a run whose file was quarantined is reported
    once, as quarantined, not again as a failed run. Every file in ``landed`` (what the command put in the
    landing zone) gets a line, so the command never prints nothing for a file it was given.
    """
    lines, seen = [], set()
    quarantined = {rep["file"] for rep in new_quarantine_reports}
    failed = bool(new_quarantine_reports)
    for run in runs:
        name = run.tags.get(contracts.SOURCE_FILE, run.partition)
        seen.add(name)
        record = batch_record(run.partition) if run.success else None
        if run.success and record is not None:
            state = "skipped     " if run.deduplicated else "accepted    "
            lines.append(f"{state}{name}: {'already ingested as ' if run.deduplicated else ''}partition "
                         f"{run.partition}, {record['rows']} rows, sha256 {record['sha256']}")
        elif run.deduplicated:
            failed = True
            lines.append(f"skipped     {name}: these bytes were already tried under this spec (run {run.run_id}) and "
                         "not accepted; correct the file or the spec and land it again")
        elif name not in quarantined:
            failed = True
            lines.append(f"failed      {name}: run {run.run_id} failed; see it in the Dagster UI")
    for report in new_quarantine_reports:
        seen.add(report["file"])
        rejected = BatchRejected(report["file"], report["reason"], report.get("failures", []))
        lines.append(f"quarantined {rejected}\n  (moved to {quarantine_dir / report['quarantined_as']})")
    for name in (n for n in landed if n not in seen):
        failed = True
        lines.append(f"skipped     {name}: {skip_message or 'not picked up by the new-data sensor'}")
    if not lines:
        lines.append(skip_message or "nothing to ingest")
    return IngestReport(lines, failed)
