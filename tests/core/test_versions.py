"""Dataset versions: manifest ids from content only, and a holdout that keeps its rows across versions."""

import pandas as pd
import pytest

from mlops_assets.core import versions
from mlops_assets.core.demo import make_batch
from mlops_assets.core.features import split
from mlops_assets.core.spec import demo_spec


@pytest.fixture
def spec():
    return demo_spec()


def test_manifest_id_is_content_only():
    batches = [{"partition": "b", "sha256": "2" * 64, "rows": 5}, {"partition": "a", "sha256": "1" * 64, "rows": 3}]
    m1 = versions.build_manifest(batches, spec_name="s", schema_digest="h")
    m2 = versions.build_manifest(list(reversed(batches)), spec_name="s", schema_digest="h")
    assert m1["id"] == m2["id"] and m1["rows"] == 8
    assert [b["partition"] for b in m1["batches"]] == ["a", "b"]
    changed = versions.build_manifest([{**batches[0], "sha256": "3" * 64}, batches[1]], spec_name="s",
                                      schema_digest="h")
    assert changed["id"] != m1["id"]


def test_holdout_is_stable_across_dataset_versions(spec):
    first = make_batch(2000, seed=6)
    later = pd.concat([first, make_batch(2000, seed=7, start_id=5000)], ignore_index=True)
    a, b = split(first, spec), split(later, spec)
    assert set(a.holdout["application_id"]) <= set(b.holdout["application_id"])
    assert not set(a.train["application_id"]) & set(b.holdout["application_id"])
    assert 0.15 < len(b.holdout) / len(later) < 0.25
