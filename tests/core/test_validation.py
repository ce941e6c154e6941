"""The rules a batch must pass and the report of what failed: every broken rule named with its rows."""

import numpy as np
import pytest

from mlops_assets.core import validation
from mlops_assets.core.demo import make_batch
from mlops_assets.core.spec import demo_spec


@pytest.fixture
def spec():
    return demo_spec()


def test_valid_batch_passes_and_is_coerced(spec):
    frame = make_batch(500, seed=1)
    frame["age"] = frame["age"].astype(int)  # whole numbers read from CSV as ints still pass
    out = validation.validate(frame, validation.raw_schema(spec), file="ok.csv")
    assert out["age"].dtype == np.float64
    assert len(out) == 500


def test_every_broken_rule_is_named_with_rows(spec):
    frame = make_batch(300, seed=2)
    frame.loc[3, "age"] = -5
    frame.loc[7, "region"] = "mars"
    frame.loc[[10, 11], "application_id"] = frame.loc[12, "application_id"]
    frame.loc[20, "default"] = 7
    frame = frame.drop(columns="income").assign(extra=1)
    with pytest.raises(validation.BatchRejected) as err:
        validation.validate(frame, validation.raw_schema(spec), file="bad.csv")
    failures = {(f["column"], f["check"]): f for f in err.value.failures}
    assert failures[("income", "missing column")]["count"] == 1
    assert failures[("extra", "unexpected column")]["count"] == 1
    assert failures[("age", "greater_than_or_equal_to(18.0)")]["samples"] == [{"row": 3, "value": "-5.0"}]
    assert failures[("region", "isin(['north', 'south', 'east', 'west'])")]["samples"] == [{"row": 7, "value": "mars"}]
    assert ("application_id", "field_uniqueness") in failures
    assert ("default", "isin([0, 1])") in failures
    text = str(err.value)
    assert text.startswith("bad.csv: failed validation") and "- income: missing required column\n" in text


def test_inf_and_too_many_nulls_are_rejected(spec):
    frame = make_batch(200, seed=3)
    frame.loc[5, "debt_ratio"] = np.inf
    frame.loc[: 100, "utilization"] = np.nan  # half the column null, limit is 20%
    with pytest.raises(validation.BatchRejected) as err:
        validation.validate(frame, validation.raw_schema(spec), file="x.csv")
    checks = {(f["column"], f["check"]) for f in err.value.failures}
    assert ("debt_ratio", "finite (no +/-inf)") in checks
    assert ("utilization", "share of nulls <= 0.2") in checks


def test_a_column_that_accepts_unseen_categories_rejects_only_above_its_share(spec):
    region = spec.categorical[0].model_copy(update={"unseen": "accept", "max_unseen_fraction": 0.05})
    schema = validation.raw_schema(spec.model_copy(update={"categorical": [region, *spec.categorical[1:]]}))
    frame = make_batch(100, seed=4)
    frame.loc[0, "region"] = "atlantis"
    assert len(validation.validate(frame, schema, file="ok.csv")) == 100
    frame.loc[:9, "region"] = "atlantis"
    with pytest.raises(validation.BatchRejected) as err:
        validation.validate(frame, schema, file="many.csv")
    assert [f["rule"] for f in err.value.failures] == [
        "values outside the categories in 10% of rows, above the allowed 5%"]
