"""Bands, the ``estimated_decay`` verdict and chunking, shared by CBPE and DLE (the reference is conftest's CBPE)."""

from mlops_assets.core.estimation import chunk_bounds, estimated_decay, explain_estimate, with_bands


def test_band_shrinks_with_rows_and_verdict_needs_the_whole_band_below(binary_setup):
    _, _, cbpe = binary_setup
    small = with_bands({"accuracy": 0.80}, cbpe.unit_error, 100)["accuracy"]
    large = with_bands({"accuracy": 0.80}, cbpe.unit_error, 10000)["accuracy"]
    assert large.band_high - large.band_low < small.band_high - small.band_low
    assert small.band_low < 0.80 < small.band_high
    assert estimated_decay(large, 0.85, tolerance=0.02, min_rows=100)
    assert not estimated_decay(small, 0.85, tolerance=0.02, min_rows=100)  # too uncertain at 100 rows
    assert not estimated_decay(large, 0.81, tolerance=0.02, min_rows=100)  # within tolerance
    assert not estimated_decay(small, 0.85, tolerance=0.02, min_rows=500)
    assert "entirely below" in explain_estimate(large, 0.85, tolerance=0.02, min_rows=100)
    assert "not judged: 100 rows" in explain_estimate(small, 0.85, tolerance=0.02, min_rows=500)
    rmse = with_bands({"rmse": 2.0}, {"rmse": 1.0}, 10000)["rmse"]
    assert estimated_decay(rmse, 1.5, tolerance=0.02, min_rows=100)


def test_chunk_bounds_never_leave_a_tiny_last_chunk():
    assert chunk_bounds(0, 10) == []
    assert chunk_bounds(24, 10) == [(0, 10), (10, 24)]
    assert chunk_bounds(27, 10) == [(0, 10), (10, 20), (20, 27)]
