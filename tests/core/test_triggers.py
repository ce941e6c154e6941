"""The new-data sensor's run key: what counts as already ingested."""

from mlops_assets.core import triggers


def test_a_file_is_tried_again_when_its_bytes_or_the_spec_change():
    first = triggers.ingest_run_key("b.csv", "a" * 64, "spec1")
    assert triggers.ingest_run_key("b.csv", "a" * 64, "spec1") == first  # same bytes, same spec: done
    assert triggers.ingest_run_key("b.csv", "b" * 64, "spec1") != first  # corrected bytes
    assert triggers.ingest_run_key("b.csv", "a" * 64, "spec2") != first  # corrected spec
