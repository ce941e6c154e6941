"""The dataset specification: what a user's tabular data looks like and what the model learns from it.

A spec is a small YAML file (``MLOPS_DATASET`` points at it); the built-in demo is one such spec.
Validation errors name the key and what is allowed, so a bad config is fixed in one look.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    import pandas as pd


class NumericColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    max_null_fraction: float = Field(0.0, ge=0.0, le=1.0)


class CategoricalColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    categories: list[str] = Field(min_length=1)
    nullable: bool = False
    max_null_fraction: float = Field(0.0, ge=0.0, le=1.0)
    # A value outside ``categories``: ``quarantine`` rejects its batch; ``accept`` keeps the batch and counts the
    # new values in its record, up to ``max_unseen_fraction`` of the rows (None: any share). A long tail of rare
    # values (cities, products) would otherwise quarantine batch after batch for one row each.
    unseen: Literal["quarantine", "accept"] = "quarantine"
    max_unseen_fraction: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> CategoricalColumn:
        if self.max_unseen_fraction is not None and self.unseen != "accept":
            raise ValueError("'max_unseen_fraction' needs 'unseen: accept'")
        return self


class DatasetSpec(BaseModel):
    """Target, task, identity and feature columns of one tabular data set."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    task: Literal["classification", "regression"]
    target: str
    id_column: str | None = None
    # Ids already in the dataset version: ``reject`` quarantines the batch, ``upsert`` lets its rows replace them.
    id_policy: Literal["reject", "upsert"] = "reject"
    timestamp_column: str | None = None
    numeric: list[NumericColumn] = Field(default_factory=list)
    categorical: list[CategoricalColumn] = Field(default_factory=list)
    classes: list[int | str] | None = None
    # The thousands separator of numbers in CSV batches (e.g. ","), so that "12,638" reads as 12638.
    thousands: str | None = Field(None, min_length=1, max_length=1)
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # Holdout rows every model is scored on at most: a row-id hash sample of a larger holdout, the same rows for
    # champion and challenger, so evaluation memory stays bounded on any data size. 0: the whole holdout.
    max_holdout_rows: int = Field(1_000_000, ge=0)

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        names = [c.name for c in self.numeric] + [c.name for c in self.categorical]
        if not names:
            raise ValueError("at least one feature column is needed under 'numeric' or 'categorical'")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature columns listed twice: {dupes}")
        reserved = {self.target, self.id_column, self.timestamp_column} - {None}
        clash = sorted(reserved & set(names))
        if clash:
            raise ValueError(f"target/id/timestamp columns must not also be features: {clash}")
        if self.task == "classification" and not self.classes:
            raise ValueError("'classes' is required when task is 'classification' (the known label values)")
        if self.task == "regression" and self.classes:
            raise ValueError("'classes' is only allowed when task is 'classification'")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def feature_kinds(self) -> dict[str, str]:
        kinds = {c.name: "numeric" for c in self.numeric}
        kinds.update({c.name: "categorical" for c in self.categorical})
        return kinds

    @property
    def raw_columns(self) -> list[str]:
        cols = [self.id_column] if self.id_column else []
        cols += [self.timestamp_column] if self.timestamp_column else []
        return cols + self.feature_names + [self.target]


class SpecError(ValueError):
    """A dataset spec that cannot be used; the message names the file and key."""


def load_spec(path: str | Path) -> DatasetSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"dataset spec {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"dataset spec {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"dataset spec {path} must be a mapping of keys to values")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise SpecError(f"dataset spec {path} is invalid: {problems}") from exc


def demo_spec() -> DatasetSpec:
    """The built-in demo: loan applications labelled with whether the loan defaulted."""
    return DatasetSpec(
        name="loans",
        task="classification",
        target="default",
        id_column="application_id",
        numeric=[
            NumericColumn(name="age", min=18, max=100),
            NumericColumn(name="income", min=0),
            NumericColumn(name="debt_ratio", min=0, max=5),
            NumericColumn(name="credit_lines", min=0, max=100),
            NumericColumn(name="utilization", min=0, max=1, nullable=True, max_null_fraction=0.2),
        ],
        categorical=[
            CategoricalColumn(name="region", categories=["north", "south", "east", "west"]),
            CategoricalColumn(name="employment", categories=["salaried", "self_employed", "unemployed",
                                                             "retired"]),
        ],
        classes=[0, 1],
    )


MAX_CATEGORIES = 50
# From this many categories on, a column is a long tail: later batches will bring values no sample showed, so the
# inferred spec accepts them (counted per batch) up to ``LONG_TAIL_UNSEEN`` of the rows instead of quarantining.
LONG_TAIL_CATEGORIES = 20
LONG_TAIL_UNSEEN = 0.05
# A numeric label with at most this many distinct whole values (0/1, 1-5 stars, 0.0/1.0) is a class label.
MAX_CLASSES = 20


def infer_task(labels: pd.Series) -> tuple[str, str]:
    """The task a label column implies, and why, in words for the person who may override it (``--task``)."""
    import pandas as pd

    labels = labels.dropna()
    distinct = labels.unique()
    if pd.api.types.is_bool_dtype(labels) or not pd.api.types.is_numeric_dtype(labels):
        return "classification", f"the target holds text with {len(distinct)} distinct value(s)"
    whole = bool(len(distinct)) and all(float(v).is_integer() for v in distinct)
    shown = sorted(distinct.tolist())[:6]
    if len(distinct) <= 2 or (whole and len(distinct) <= MAX_CLASSES):
        kind = "whole " if whole else ""
        return "classification", f"the target is numeric with {len(distinct)} distinct {kind}value(s) {shown}"
    reason = "not all whole numbers" if not whole else f"more than {MAX_CLASSES} distinct values"
    return "regression", f"the target is numeric with {len(distinct)} distinct values ({reason})"


def infer_spec(frames: pd.DataFrame | list[pd.DataFrame], *, name: str, target: str, task: str | None = None,
               id_column: str | None = None, timestamp_column: str | None = None) -> DatasetSpec:
    """A first spec from samples, for a person to review and commit: kinds from dtypes, categories as seen (or
    as a categorical column declares them: a Parquet dictionary lists values no row shows), a lower bound of 0
    for columns never negative, nullability with head-room over the samples' null share."""
    import pandas as pd

    frames = frames if isinstance(frames, list) else [frames]
    declared: dict[str, set[str]] = {}
    for part in frames:
        for col in part.columns:
            if isinstance(part[col].dtype, pd.CategoricalDtype):
                declared.setdefault(col, set()).update(str(v) for v in part[col].cat.categories)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    missing = [c for c in (target, id_column, timestamp_column) if c and c not in frame.columns]
    if missing:
        raise SpecError(f"columns {missing} are not in the sample; it has {list(frame.columns)}")
    labels = frame[target].dropna()
    task = task or infer_task(labels)[0]
    numeric, categorical = [], []
    for col in frame.columns:
        if col in (target, id_column, timestamp_column):
            continue
        series = frame[col]
        nulls = float(series.isna().mean())
        null_kw = {"nullable": nulls > 0, "max_null_fraction": round(min(1.0, 2 * nulls + 0.01), 4) if nulls else 0.0}
        if col in declared or pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            values = sorted(declared.get(col, set()) | set(series.dropna().astype(str).unique().tolist()))
            if len(values) > MAX_CATEGORIES:
                raise SpecError(f"column {col!r} has {len(values)} distinct text values (more than "
                                f"{MAX_CATEGORIES}); drop it or encode it before training")
            tail = {"unseen": "accept", "max_unseen_fraction": LONG_TAIL_UNSEEN} \
                if len(values) >= LONG_TAIL_CATEGORIES else {}
            categorical.append(CategoricalColumn(name=col, categories=values or ["unknown"], **null_kw, **tail))
        else:
            low = 0.0 if series.min() >= 0 else None
            numeric.append(NumericColumn(name=col, min=low, **null_kw))
    classes = None
    if task == "classification":
        raw = sorted(labels.unique().tolist(), key=str)
        numeric_whole = pd.api.types.is_numeric_dtype(labels) and all(float(v).is_integer() for v in raw)
        classes = [int(v) for v in raw] if numeric_whole else [str(v) for v in raw]
    return DatasetSpec(name=name, task=task, target=target, id_column=id_column,
                       timestamp_column=timestamp_column, numeric=numeric, categorical=categorical, classes=classes)


def dump_spec(spec: DatasetSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
