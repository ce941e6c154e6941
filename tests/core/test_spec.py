"""Dataset specs: a malformed spec file is refused with the key at fault."""

from pathlib import Path

import pytest

from mlops_assets.core.spec import SpecError, load_spec


def test_spec_errors_name_the_key(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ntask: classification\ntarget: y\nnumeric: [{name: a, mn: 1}]\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "numeric.0.mn" in str(err.value)
    path.write_text("name: x\ntask: classification\ntarget: y\nnumeric: [{name: a}]\n")
    with pytest.raises(SpecError, match="classes"):
        load_spec(path)


def test_a_categorical_type_gives_its_full_category_list_and_several_samples_are_read_together(tmp_path: Path):
    """Issue 12 item 4: the Parquet file's own dictionary lists a value no sampled row shows."""
    import pandas as pd

    from mlops_assets.core.spec import infer_spec
    from mlops_assets.core.table_input import read_table

    first = pd.DataFrame({"plan": pd.Categorical(["basic", "plus"] * 5, categories=["basic", "plus", "pro"]),
                          "spend": range(10), "y": [0, 1] * 5})
    first.to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"plan": ["enterprise", "basic"], "spend": [3, 4], "y": [1, 0]}).to_csv(tmp_path / "b.csv",
                                                                                      index=False)
    samples = [read_table(str(tmp_path / "a.parquet")), read_table(str(tmp_path / "b.csv"))]
    spec = infer_spec(samples, name="s", target="y")
    assert spec.categorical[0].categories == ["basic", "enterprise", "plus", "pro"]
    assert spec.categorical[0].unseen == "quarantine"

    many = pd.DataFrame({"city": [f"c{i}" for i in range(30)], "spend": range(30), "y": [0, 1] * 15})
    city = infer_spec(many, name="s", target="y").categorical[0]
    assert (city.unseen, city.max_unseen_fraction) == ("accept", 0.05)


def test_an_unseen_share_needs_the_accept_policy(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ntask: regression\ntarget: y\n"
                    "categorical: [{name: a, categories: [p], max_unseen_fraction: 0.1}]\n")
    with pytest.raises(SpecError, match="unseen: accept"):
        load_spec(path)


@pytest.mark.parametrize("labels,task", [
    ([0.0, 1.0] * 50, "classification"), ([1, 2, 3, 4, 5] * 20, "classification"),
    ([0.5, 1.5] * 50, "classification"), (["yes", "no"] * 50, "classification"),
    ([i / 7 for i in range(100)], "regression"), (list(range(100)), "regression"),
])
def test_a_numeric_label_with_few_whole_values_is_a_class_label(labels, task):
    """Issue 12 item 5: a 0.0/1.0 target is classification (classes [0, 1]), and the reason is given."""
    import pandas as pd

    from mlops_assets.core.spec import infer_spec, infer_task

    inferred, why = infer_task(pd.Series(labels))
    assert inferred == task and "distinct" in why
    spec = infer_spec(pd.DataFrame({"x": range(len(labels)), "repaid": labels}), name="s", target="repaid")
    assert spec.task == task
    if isinstance(labels[0], float) and labels[:2] == [0.0, 1.0]:
        assert spec.classes == [0, 1]
