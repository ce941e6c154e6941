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
