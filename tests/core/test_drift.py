"""Behaviour of the drift engine, including statistics pinned to Evidently 0.7's own output."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from mlops_assets.cli.drift import drift_command
from mlops_assets.core.drift import DriftConfig, detect_drift, infer_kinds, psi
from mlops_assets.core.drift_report import ColumnDrift, render_html
from mlops_assets.core.drift_stats import population_std, psi_sorted, sorted_finite, wasserstein_sorted
from mlops_assets.core.table_input import ParquetColumns


def by_name(report):
    return {c.column: c for c in report.columns}


def normal_frame(rng: np.random.Generator, n: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    shift = shift or {}
    return pd.DataFrame({
        name: rng.normal(shift.get(name, 0.0), 1.0, n) for name in ("a", "b", "c")
    } | {"colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])})


# ------------------------------------------------------------------------------------------ verdicts


def shuffled(frame: pd.DataFrame, seed: int = 0, **shift: float) -> pd.DataFrame:
    """The same rows in another order (so exactly the same distribution), with some columns shifted."""
    out = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out.assign(**{name: out[name] + delta for name, delta in shift.items()})


@pytest.mark.parametrize("n", [400, 5000])
def test_identical_distributions_do_not_drift(n: int) -> None:
    reference = normal_frame(np.random.default_rng(1), n)
    report = detect_drift(reference, shuffled(reference))
    assert report.status == "no_drift" and not report.dataset_drift
    assert report.drifted_columns == []
    assert [c.status for c in report.columns] == ["no_drift"] * 4
    assert all((c.p_value == pytest.approx(1.0)) if c.p_value is not None else (c.statistic == pytest.approx(0))
               for c in report.columns)


def test_independent_large_samples_of_one_distribution_do_not_drift() -> None:
    rng = np.random.default_rng(1)
    report = detect_drift(normal_frame(rng, 5000), normal_frame(rng, 4000))
    assert report.drifted_columns == [] and max(c.statistic for c in report.columns) < 0.05


@pytest.mark.parametrize("n", [400, 5000])
def test_shifted_mean_flags_that_column_only(n: int) -> None:
    reference = normal_frame(np.random.default_rng(2), n)
    report = detect_drift(reference, shuffled(reference, b=0.3))
    assert report.drifted_columns == ["b"]
    assert report.share_drifted == pytest.approx(0.25)
    assert not report.dataset_drift and report.status == "no_drift"


def test_dataset_drift_when_share_reaches_threshold() -> None:
    reference = normal_frame(np.random.default_rng(3), 600)
    current = shuffled(reference, a=1.0, b=1.0)
    report = detect_drift(reference, current)
    assert report.share_drifted == pytest.approx(0.5)
    assert report.dataset_drift and report.status == "drift"
    assert not detect_drift(reference, current, config=DriftConfig(drift_share=0.75)).dataset_drift


@pytest.mark.parametrize(("rows", "numeric_test", "categorical_test"), [
    (1000, "ks", "chisquare"),
    (1001, "wasserstein", "jensenshannon"),
])
def test_reference_size_picks_the_test(rows: int, numeric_test: str, categorical_test: str) -> None:
    rng = np.random.default_rng(4)
    report = by_name(detect_drift(normal_frame(rng, rows), normal_frame(rng, 300)))
    assert report["a"].test == numeric_test
    assert report["colour"].test == categorical_test
    assert (report["a"].p_value is None) == (numeric_test == "wasserstein")
    assert (report["colour"].p_value is None) == (categorical_test == "jensenshannon")
    assert report["a"].threshold == (0.05 if numeric_test == "ks" else 0.1)


def test_small_sample_cut_is_configurable() -> None:
    rng = np.random.default_rng(5)
    report = by_name(detect_drift(normal_frame(rng, 400), normal_frame(rng, 400),
                                  config=DriftConfig(small_sample=100)))
    assert report["a"].test == "wasserstein" and report["colour"].test == "jensenshannon"


def test_binary_and_few_valued_columns_use_count_tests() -> None:
    i = np.arange(200)
    reference = pd.DataFrame({"flag": i % 2 == 0, "score": (i % 3).astype(float)})
    current = pd.DataFrame({"flag": i % 4 == 0, "score": (i % 3).astype(float)})
    report = by_name(detect_drift(reference, current))
    assert report["flag"].test == "z" and report["flag"].drifted
    assert report["score"].test == "chisquare" and not report["score"].drifted
    assert "tested as categories" in report["score"].detail


# --------------------------------------------------------------------- Evidently compatibility

# Statistics below were produced by Evidently 0.7.23 (DataDriftPreset, numpy 2.4.6, scipy 1.17.1) on
# exactly these frames, via `benchmarks/drift.py --worker`; they pin our results to Evidently's.


def evidently_small_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    i, j = np.arange(60), np.arange(50)
    reference = pd.DataFrame({
        "wave": np.sin(i) * 3.0,
        "cat": ["a"] * 30 + ["b"] * 20 + ["c"] * 10,
        "cat_new": ["a"] * 30 + ["b"] * 30,
        "answer": ["no"] * 40 + ["yes"] * 20,
    })
    current = pd.DataFrame({
        "wave": np.sin(j * 1.3) * 3.0 + 0.8,
        "cat": ["a"] * 18 + ["b"] * 20 + ["c"] * 12,
        "cat_new": ["a"] * 25 + ["b"] * 20 + ["d"] * 5,
        "answer": ["no"] * 24 + ["yes"] * 26,
    })
    return reference, current


def evidently_large_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    i, j = np.arange(1500), np.arange(1200)
    letters = np.array(list("abcdefg"))
    reference = pd.DataFrame({"wave": np.sin(i), "letter": letters[i % 7]})
    current = pd.DataFrame({"wave": np.sin(j * 0.7) * 1.1 + 0.05, "letter": letters[(j * 3) % 5]})
    return reference, current


@pytest.mark.parametrize(("frames", "expected"), [
    (evidently_small_frames, {
        "wave": ("ks", 0.07273069821790937, False),
        "cat": ("chisquare", 0.12003162851145682, False),
        "cat_new": ("chisquare", 0.0, True),
        "answer": ("z", 0.04811979554007784, True),
    }),
    (evidently_large_frames, {
        "wave": ("wasserstein", 0.10186798289031365, True),
        "letter": ("jensenshannon", 0.33288938322288997, True),
    }),
])
def test_matches_evidently(frames, expected: dict[str, tuple[str, float, bool]]) -> None:
    reference, current = frames()
    report = by_name(detect_drift(reference, current, config=DriftConfig(min_samples=1)))
    assert list(report) == list(expected)
    for name, (test, score, drifted) in expected.items():
        column = report[name]
        ours = column.p_value if column.p_value is not None else column.statistic
        assert column.test == test, name
        assert ours == pytest.approx(score, rel=1e-9, abs=1e-15), name
        assert column.drifted is drifted, name


def test_wasserstein_is_exact_for_unequal_sizes() -> None:
    rng = np.random.default_rng(6)
    reference, current = rng.gamma(2.0, 1.5, 4321), rng.gamma(2.2, 1.4, 1777)
    column = detect_drift(pd.DataFrame({"x": reference}), pd.DataFrame({"x": current})).columns[0]
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert column.statistic == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ one sort per side, against scipy


def awkward_samples(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs with NaN/inf, heavy ties, constants, equal and coprime sizes, and samples of one or two values."""
    def dirty(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64)
        holes = rng.choice(values.size, values.size // 10, replace=False)
        values[holes] = rng.choice([np.nan, np.inf, -np.inf], holes.size)
        return values

    pairs = [(rng.normal(size=n), rng.normal(0.3, 1.5, size=m)) for n, m in [(1, 1), (1, 7), (2, 3), (50, 50)]]
    pairs += [(dirty(rng.gamma(2.0, size=997)), dirty(rng.gamma(2.5, size=1009))),  # coprime sizes
              (rng.integers(0, 4, 600).astype(float), rng.integers(1, 6, 450).astype(float)),  # ties only
              (np.full(40, 3.0), rng.normal(3.0, 0.1, 64)), (np.full(30, 1.0), np.full(45, 2.0)),
              (dirty(rng.integers(0, 30, 5000)), dirty(rng.normal(15, 8, 3333).round()))]
    return pairs


def test_one_sort_statistics_equal_scipy_on_awkward_samples() -> None:
    for ref_raw, cur_raw in awkward_samples(np.random.default_rng(20)):
        ref_clean, cur_clean = ref_raw[np.isfinite(ref_raw)], cur_raw[np.isfinite(cur_raw)]
        ref, cur = sorted_finite(ref_raw), sorted_finite(cur_raw)
        assert np.array_equal(ref, np.sort(ref_clean)) and np.array_equal(cur, np.sort(cur_clean))
        expected = stats.wasserstein_distance(ref_clean, cur_clean)
        assert wasserstein_sorted(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-15), (ref.size, cur.size)
        assert wasserstein_sorted(cur, ref) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert population_std(ref) == pytest.approx(np.std(ref_clean), rel=1e-12, abs=1e-15)


def test_psi_bins_are_the_reference_quantiles() -> None:
    """The searchsorted counts on the sorted copies equal binning by numpy's quantiles ([low, high) bins)."""
    for ref_raw, cur_raw in awkward_samples(np.random.default_rng(21)):
        ref, cur = sorted_finite(ref_raw), sorted_finite(cur_raw)
        edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
        shares = [np.bincount(np.digitize(side, edges), minlength=edges.size + 1) / side.size for side in (ref, cur)]
        shares = [np.where(share > 0, share, 1e-4) for share in shares]
        expected = float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))
        assert psi_sorted(ref, cur, 10) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("rows", [40, 900])
def test_small_sample_ks_equals_scipy_with_nans_and_ties(rows: int) -> None:
    rng = np.random.default_rng(22)
    ref, cur = rng.normal(size=rows).round(1), rng.normal(0.2, 1.0, size=rows + 17).round(1)
    ref[::9], cur[::13] = np.nan, -np.inf
    column = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).columns[0]
    expected = stats.ks_2samp(ref[np.isfinite(ref)], cur[np.isfinite(cur)])
    assert column.test == "ks"
    assert column.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert column.p_value == pytest.approx(expected.pvalue, rel=1e-12)


# --------------------------------------------------------------------------------------- edge cases


def test_unseen_category_is_drift_with_infinite_chi_square() -> None:
    reference, current = evidently_small_frames()
    column = by_name(detect_drift(reference, current))["cat_new"]
    assert column.statistic == math.inf and column.p_value == 0.0 and column.drifted
    assert "'d'" in column.detail and "10.0% of current" in column.detail
    as_json = json.dumps(detect_drift(reference, current).to_dict(), allow_nan=False)
    assert json.loads(as_json)["columns"][2]["statistic"] is None


def test_nans_and_infinities_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(size=500), rng.normal(size=400)
    ref[:50] = np.nan
    cur[:7] = np.inf
    cur[7:10] = np.nan
    labels = pd.Series(rng.choice(["x", "y"], 400)).where(np.arange(400) >= 20)
    report = by_name(detect_drift(pd.DataFrame({"v": ref}),
                                  pd.DataFrame({"v": cur, "label": labels}),
                                  columns={"v": "numeric"}))
    column = report["v"]
    assert (column.reference_size, column.current_size) == (450, 390)
    assert column.status == "no_drift"
    assert "50 missing/infinite values dropped from reference" in column.detail
    assert "10 missing/infinite values dropped from current" in column.detail


def test_constant_columns() -> None:
    n = 300
    reference = pd.DataFrame({"same": np.full(n, 2.0), "spreads": np.full(n, 2.0), "moves": np.full(n, 2.0)})
    current = pd.DataFrame({"same": np.full(n, 2.0), "spreads": 2.0 + np.linspace(-1, 1, n),
                            "moves": np.full(n, 3.0)})
    report = by_name(detect_drift(reference, current))
    assert report["same"].test == "z" and report["same"].p_value == 1.0 and not report["same"].drifted
    assert report["spreads"].test == "ks" and report["spreads"].drifted
    assert report["moves"].drifted
    big = by_name(detect_drift(pd.concat([reference] * 5), pd.concat([current] * 5)))
    assert big["same"].test == "jensenshannon" and big["same"].statistic == 0.0 and not big["same"].drifted
    assert big["spreads"].test == "wasserstein" and big["spreads"].drifted
    assert "normed by that floor" in big["spreads"].detail


def test_empty_current_window_is_insufficient_data() -> None:
    rng = np.random.default_rng(8)
    reference = normal_frame(rng, 500)
    report = detect_drift(reference, reference.iloc[0:0])
    assert report.status == "insufficient_data"
    assert not report.dataset_drift and report.share_drifted == 0.0
    assert all(c.status == "insufficient_data" and not c.drifted for c in report.columns)
    assert "current has 0 usable values" in report.columns[0].detail


def test_tiny_samples_are_insufficient_but_others_still_tested() -> None:
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"ok": rng.normal(size=200), "sparse": np.nan})
    reference.loc[:9, "sparse"] = 1.0
    current = pd.DataFrame({"ok": rng.normal(size=200), "sparse": rng.normal(size=200)})
    report = by_name(detect_drift(reference, current))
    assert report["sparse"].status == "insufficient_data"
    assert report["sparse"].reference_size == 10
    assert "min_samples=30" in report["sparse"].detail
    assert report["ok"].status == "no_drift"
    assert detect_drift(reference, current).status == "no_drift"


def test_missing_and_non_numeric_columns_are_insufficient() -> None:
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"x": rng.normal(size=100), "y": rng.normal(size=100)})
    current = pd.DataFrame({"x": ["oops"] * 100})
    report = by_name(detect_drift(reference, current, columns={"x": "numeric", "y": "numeric"}))
    assert report["y"].status == "insufficient_data" and "missing from current" in report["y"].detail
    assert report["x"].status == "insufficient_data" and "not numeric" in report["x"].detail
    assert math.isnan(report["x"].threshold)
    assert [c.column for c in detect_drift(reference, current).columns] == ["x"]  # common columns only
    from_json = pd.DataFrame({"x": pd.Series([0.5, None, -0.5, 1.0] * 25, dtype=object)})
    column = detect_drift(reference, from_json, columns={"x": "numeric"}).columns[0]
    assert column.status != "insufficient_data" and column.current_size == 75
    with pytest.raises(ValueError, match="kinds"):
        detect_drift(reference, current, columns={"x": "text"})


# ----------------------------------------------------------------------------------- configuration


def test_benjamini_hochberg_removes_a_lone_marginal_finding() -> None:
    grid = np.linspace(0.0, 1.0, 200)
    reference = pd.DataFrame({f"c{i}": grid for i in range(10)})
    current = reference.copy()
    current["c0"] = grid + 0.15
    plain = by_name(detect_drift(reference, current))
    assert plain["c0"].drifted and 0.005 < plain["c0"].p_value < 0.05
    corrected = by_name(detect_drift(reference, current, config=DriftConfig(bh_correction=True)))
    assert not corrected["c0"].drifted
    assert corrected["c0"].p_value == pytest.approx(plain["c0"].p_value * 10)
    assert "Benjamini-Hochberg" in corrected["c0"].detail
    strong = current.assign(c0=grid + 0.4)
    assert by_name(detect_drift(reference, strong, config=DriftConfig(bh_correction=True)))["c0"].drifted


def test_thresholds_override_defaults() -> None:
    reference, current = evidently_small_frames()
    loose = by_name(detect_drift(reference, current, config=DriftConfig(stattest_threshold=0.1)))
    assert loose["wave"].threshold == 0.1 and loose["wave"].drifted  # p = 0.0727
    strict = DriftConfig(column_thresholds={"answer": 0.01})
    per_column = by_name(detect_drift(reference, current, config=strict))
    assert per_column["answer"].threshold == 0.01 and not per_column["answer"].drifted
    with pytest.raises(ValueError):
        DriftConfig(stattest_threshold=-1.0)
    with pytest.raises(ValueError):
        DriftConfig(drift_share=1.5)


def test_psi_is_reported_and_only_decides_when_configured() -> None:
    rng = np.random.default_rng(11)
    reference, current = normal_frame(rng, 3000), normal_frame(rng, 3000, shift={"a": 0.05})
    report = by_name(detect_drift(reference, current))
    assert all(c.psi is not None and c.psi >= 0 for c in report.values())
    assert not report["a"].drifted
    flagged = by_name(detect_drift(reference, current, config=DriftConfig(psi_threshold=report["a"].psi)))
    assert flagged["a"].drifted and "psi_threshold" in flagged["a"].detail


def test_psi_function() -> None:
    rng = np.random.default_rng(12)
    base = rng.normal(size=20_000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, rng.normal(size=20_000)) < 0.01
    assert psi(base, rng.normal(0.5, 1.0, 20_000)) > 0.2
    # categories: 50/50 -> 25/75 gives (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    assert psi(["a", "b"] * 50, ["a"] * 25 + ["b"] * 75) == pytest.approx(0.25 * math.log(3))
    assert psi([1.0, 2.0, np.nan] * 40, [1.0, 2.0, np.inf] * 40, kind="categorical") == pytest.approx(0.0)


def test_infer_kinds_follows_evidently() -> None:
    n = 40
    frame = pd.DataFrame({
        "price": np.linspace(0, 1, n),
        "count": np.arange(n),
        "rating": np.arange(n) % 5,
        "city": ["Paris", "Lyon"] * (n // 2),
        "request_id": [f"id-{i}" for i in range(n)],
        "ok": [True, False] * (n // 2),
        "grade": pd.Categorical(["a", "b"] * (n // 2)),
        "when": pd.date_range("2024-01-01", periods=n),
        "nullable_small": pd.array([1, 2, None, 3] * (n // 4), dtype="Int64"),
    })
    assert infer_kinds(frame) == {
        "price": "numeric", "count": "numeric", "rating": "categorical", "city": "categorical",
        "ok": "categorical", "grade": "categorical", "nullable_small": "categorical",
    }


# --------------------------------------------------------------------------------------- rendering


def test_report_serialisations() -> None:
    rng = np.random.default_rng(13)
    report = detect_drift(normal_frame(rng, 200), normal_frame(rng, 200, shift={"a": 1.0}))
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["drifted_columns"] == ["a"] and payload["status"] == "no_drift"
    assert payload["reference_size"] == 200 and len(payload["columns"]) == 4
    frame = report.to_frame()
    assert list(frame["column"]) == ["a", "b", "c", "colour"]
    assert {"test", "statistic", "p_value", "threshold", "status", "psi", "detail"} <= set(frame.columns)


def test_render_html_is_self_contained_and_escaped() -> None:
    reference = pd.DataFrame({"<b>x</b>": np.linspace(0, 1, 100)})
    page = render_html(detect_drift(reference, reference + 1))
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert not any(token in page for token in ("<script", "<link", "http://", "https://", "src="))


# --------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(14)
    reference, same, shifted = (normal_frame(rng, 500), normal_frame(rng, 500),
                                normal_frame(rng, 500, shift={"a": 1.0, "b": 1.0, "c": 1.0}))
    paths = {"reference": tmp_path / "reference.csv", "same": tmp_path / "same.parquet",
             "shifted": tmp_path / "shifted.parquet", "shifted_csv": tmp_path / "shifted.csv"}
    reference.to_csv(paths["reference"], index=False)
    same.to_parquet(paths["same"])
    shifted.to_parquet(paths["shifted"])
    shifted.to_csv(paths["shifted_csv"], index=False)
    return {k: str(v) for k, v in paths.items()}


def test_cli_no_drift_prints_table(files) -> None:
    out = io.StringIO()
    assert drift_command(files["reference"], files["same"], out=out) == 0
    text = out.getvalue()
    assert "column" in text and "p-value" in text and "verdict" in text
    assert "colour" in text and "Dataset: no drift" in text


def test_cli_drift_json_and_html(files, tmp_path) -> None:
    out = io.StringIO()
    html_path = tmp_path / "report.html"
    code = drift_command(files["reference"], files["shifted"], as_json=True, html=str(html_path), out=out)
    assert code == 1
    payload = json.loads(out.getvalue())
    assert payload["dataset_drift"] is True and payload["drifted_columns"] == ["a", "b", "c"]
    assert "<table>" in html_path.read_text()
    assert drift_command(files["reference"], files["shifted_csv"], columns=["colour"], out=io.StringIO()) == 0


@pytest.mark.parametrize(("name", "content", "message"), [
    ("absent.csv", None, "no such file"),
    ("data.txt", b"a\n1\n", "unsupported file type"),
    ("broken.parquet", b"not parquet", "cannot read"),
    ("empty.csv", b"", "cannot read"),
])
def test_cli_errors_exit_2_without_traceback(files, tmp_path, capsys, name, content, message) -> None:
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    bad = str(bad)
    assert drift_command(files["reference"], bad, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert bad in err and message in err and "Traceback" not in err


def test_cli_rejects_unknown_columns_and_disjoint_files(files, tmp_path, capsys) -> None:
    assert drift_command(files["reference"], files["same"], columns=["nope"], out=io.StringIO()) == 2
    assert "'nope'" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    pd.DataFrame({"z": np.arange(50.0)}).to_csv(other, index=False)
    assert drift_command(files["reference"], str(other), out=io.StringIO()) == 2
    assert "no testable column in common" in capsys.readouterr().err


def test_parquet_files_are_tested_column_by_column_with_the_same_verdicts(tmp_path) -> None:
    rng = np.random.default_rng(5)
    reference = normal_frame(rng, 3000)
    current = normal_frame(rng, 2000, shift={"b": 0.8}).set_index(pd.Index(np.arange(2000) * 3, name="row"))
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")  # its index is stored as a column: not data

    columns = ParquetColumns(str(tmp_path / "current.parquet"))
    assert len(columns) == 2000 and "row" not in columns and columns.columns == list(current.columns)
    assert columns.get("absent") is None
    lazy = detect_drift(ParquetColumns(str(tmp_path / "reference.parquet")), columns)
    eager = detect_drift(reference, current.reset_index(drop=True))
    assert lazy.to_dict() == eager.to_dict()
    assert lazy.drifted_columns == ["b"]


def test_parquet_number_columns_read_from_arrow_equal_pandas_values(tmp_path) -> None:
    """Integer (with and without nulls), unsigned, float32/16 columns over several row groups: the numbers
    ``ParquetColumns.floats`` hands over without pandas are pandas' own, and so are the verdicts."""
    rng = np.random.default_rng(23)
    n = 2500
    ints = rng.integers(-50, 50, n)
    table = pa.table({
        "i64_nulls": pa.array(ints, mask=rng.random(n) < 0.05),
        "u8": pa.array(rng.integers(0, 200, n).astype(np.uint8)),
        "small_ints": pa.array(rng.integers(0, 4, n).astype(np.int16)),
        "f32": pa.array(rng.normal(size=n).astype(np.float32), mask=rng.random(n) < 0.01),
        "f16": pa.array(rng.normal(size=n).astype(np.float16)),
        "f64": pa.array(rng.normal(size=n)),
        "text": pa.array(rng.choice(["a", "b"], n)),
    })
    path = tmp_path / "numbers.parquet"
    pq.write_table(table, path, row_group_size=700)  # several chunks per column
    columns, frame = ParquetColumns(str(path)), pd.read_parquet(path)
    for name in columns.columns:
        floats = columns.floats(name)
        if name == "text":
            assert floats is None and not columns.stores_floats(name)
            continue
        expected = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        assert np.array_equal(floats, expected, equal_nan=True), name
        assert columns.stores_floats(name) == name.startswith("f")
    assert infer_kinds(columns) == infer_kinds(frame)
    shifted = frame.assign(f64=frame["f64"] + 1.0)
    shifted.to_parquet(tmp_path / "shifted.parquet")
    lazy = detect_drift(columns, ParquetColumns(str(tmp_path / "shifted.parquet")))
    assert lazy.to_dict() == detect_drift(frame, shifted).to_dict()
    assert "f64" in lazy.drifted_columns


def test_frame_columns_named_like_parquet_reader_methods_are_plain_data() -> None:
    rng = np.random.default_rng(25)
    reference = pd.DataFrame({"floats": rng.normal(size=300), "stores_floats": rng.normal(size=300)})
    report = detect_drift(reference, reference.assign(floats=reference["floats"] + 1.0))
    assert report.drifted_columns == ["floats"] and infer_kinds(reference) == dict.fromkeys(reference, "numeric")


def test_cli_json_keeps_its_shape(files) -> None:
    out = io.StringIO()
    drift_command(files["same"], files["shifted"], as_json=True, out=out)
    payload = json.loads(out.getvalue())
    assert list(payload) == ["share_drifted", "dataset_drift", "status", "drift_share_threshold", "reference_size",
                             "current_size", "drifted_columns", "columns"]
    assert all(list(column) == list(ColumnDrift.__dataclass_fields__) for column in payload["columns"])
    assert [c["column"] for c in payload["columns"]] == ["a", "b", "c", "colour"]


def test_drift_command_on_numeric_parquet_imports_no_heavy_stack(tmp_path) -> None:
    """A fresh ``mlops drift`` process on float Parquet files: no Dagster, MLflow or scikit-learn, and not
    even pandas or scipy (each costs start-up time the command does not need)."""
    rng = np.random.default_rng(24)
    for name, shift in (("reference", 0.0), ("current", 0.5)):
        values = {f"x{i}": rng.normal(shift, 1.0, 2000) for i in range(3)}
        values["x0"][::50] = np.nan
        pq.write_table(pa.table(values), tmp_path / f"{name}.parquet")
    script = ("import json, sys; from mlops_assets.cli import main; code = main(sys.argv[1:]); "
              "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, "drift", str(tmp_path / "reference.parquet"),
                           str(tmp_path / "current.parquet"), "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["drifted_columns"] == ["x0", "x1", "x2"]
    imported = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert imported & {"dagster", "mlflow", "sklearn", "pandas", "scipy"} == set()
