"""The typed records of ``core.records`` made usable as Dagster types: an asset annotated with one gets a type
check that the value is a dict with the record's required keys, so a producer that drifts from the contract
fails its own step instead of a consumer's."""

from typing import Any

from dagster import DagsterType, TypeCheck, TypeCheckContext, make_python_type_usable_as_dagster_type

from mlops_assets.core.records import (
    BatchRecord,
    CanaryReleaseRecord,
    CandidateRecord,
    DatasetRecord,
    DeploymentRecord,
    EvaluationRecord,
    FeaturesRecord,
    RegisteredModelRecord,
)

__all__ = ["BatchRecord", "CandidateRecord", "CanaryReleaseRecord", "DatasetRecord", "DeploymentRecord",
           "EvaluationRecord", "FeaturesRecord", "RegisteredModelRecord"]


def _register(record: Any) -> None:
    required = frozenset(record.__required_keys__)

    def check(_: TypeCheckContext, value: object) -> TypeCheck:
        if not isinstance(value, dict):
            return TypeCheck(False, description=f"{record.__name__} must be a dict, got {type(value).__name__}")
        missing = sorted(required - set(value))
        return TypeCheck(not missing, description=f"{record.__name__} lacks {missing}" if missing else None)

    make_python_type_usable_as_dagster_type(
        record, DagsterType(type_check_fn=check, name=record.__name__, description=(record.__doc__ or "").strip()))


for _record in (BatchRecord, CandidateRecord, CanaryReleaseRecord, DatasetRecord, DeploymentRecord,
                EvaluationRecord, FeaturesRecord, RegisteredModelRecord):
    _register(_record)
