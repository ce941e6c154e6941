"""Evaluation plots as PNG bytes: logged to MLflow as artifacts and embedded in Dagster metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mlops_assets.core.features import xy  # noqa: E402
from mlops_assets.core.metrics import class_list  # noqa: E402
from mlops_assets.core.spec import DatasetSpec  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def evaluation_plots(model, holdout: pd.DataFrame, spec: DatasetSpec, seed: int = 0) -> dict[str, bytes]:
    """Confusion matrix, ROC, PR and calibration (classification) or residuals (regression), plus
    permutation feature importance on a bounded sample."""
    x, y = xy(holdout, spec)
    plots: dict[str, bytes] = {}
    if spec.task == "classification":
        labels = class_list(spec, model)
        side = max(4.0, 0.6 * len(labels) + 2)
        fig, ax = plt.subplots(figsize=(side, side))
        # Every class of the spec, so a class the holdout lacks or the model never predicts shows as a zero row.
        ConfusionMatrixDisplay.from_predictions(y, model.predict(x), labels=labels, ax=ax, colorbar=False,
                                                xticks_rotation="vertical" if len(labels) > 4 else "horizontal")
        ax.set_title("Confusion matrix (holdout)")
        plots["confusion_matrix.png"] = _png(fig)
        if len(model.classes_) == 2:
            proba = model.predict_proba(x)[:, 1]
            fig, ax = plt.subplots(figsize=(4, 4))
            RocCurveDisplay.from_predictions(y, proba, ax=ax, pos_label=model.classes_[1])
            ax.set_title("ROC curve")
            plots["roc_curve.png"] = _png(fig)
            fig, ax = plt.subplots(figsize=(4, 4))
            PrecisionRecallDisplay.from_predictions(y, proba, ax=ax, pos_label=model.classes_[1])
            ax.set_title("Precision-recall curve")
            plots["pr_curve.png"] = _png(fig)
            frac, mean = calibration_curve(y == model.classes_[1], proba, n_bins=10, strategy="quantile")
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.plot([0, 1], [0, 1], "--", color="grey")
            ax.plot(mean, frac, "o-")
            ax.set_xlabel("mean predicted probability")
            ax.set_ylabel("observed frequency")
            ax.set_title("Calibration")
            plots["calibration.png"] = _png(fig)
    else:
        pred = model.predict(x)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(pred, y - pred, s=4, alpha=0.4)
        ax.axhline(0, color="grey")
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual")
        ax.set_title("Residuals (holdout)")
        plots["residuals.png"] = _png(fig)
    sample = holdout.sample(min(len(holdout), 1500), random_state=seed)
    sx, sy = xy(sample, spec)
    # Dozens of predictions of 1,500 rows: one thread each. HistGradientBoosting's OpenMP team otherwise wakes per
    # tree and, on a busy machine, waits for cores: measured 73 s instead of 6 s at load average 11 on 2 cores.
    with threadpool_limits(1):
        imp = permutation_importance(model, sx, sy, n_repeats=3, random_state=seed, n_jobs=1)
    order = np.argsort(imp.importances_mean)
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(order) + 1))
    ax.barh(np.asarray(spec.feature_names)[order], imp.importances_mean[order])
    ax.set_title("Permutation importance")
    plots["feature_importance.png"] = _png(fig)
    return plots


def drift_overlays(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                   kinds: dict[str, str]) -> bytes | None:
    """Reference vs current distributions of the given (most drifted) columns, side by side."""
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.8), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        if kinds.get(col) == "numeric":
            ref, cur = reference[col].dropna().astype(float), current[col].dropna().astype(float)
            bins = np.histogram_bin_edges(pd.concat([ref, cur]), bins=30)
            ax.hist(ref, bins=bins, density=True, alpha=0.5, label="reference")
            ax.hist(cur, bins=bins, density=True, alpha=0.5, label="current")
        else:
            freq = pd.DataFrame({"reference": reference[col].value_counts(normalize=True),
                                 "current": current[col].value_counts(normalize=True)}).fillna(0)
            freq.plot.bar(ax=ax, alpha=0.7, legend=False)
        ax.set_title(col)
    axes[0][0].legend(fontsize=7)
    return _png(fig)


def estimated_vs_realized(chunks: list[dict], metric: str, baseline: float | None, tolerance: float) -> bytes:
    """Estimated performance per chunk with its band, the realized value where labels exist, and the line the
    estimate must stay above (the offline metric minus the tolerance; plus it, for errors)."""
    x = np.arange(len(chunks))
    value = np.array([c["value"] for c in chunks], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(x, [c["band_low"] for c in chunks], [c["band_high"] for c in chunks], alpha=0.25,
                    label="estimate band")
    ax.plot(x, value, "o-", label="estimated")
    realized = np.array([np.nan if c.get("realized") is None else c["realized"] for c in chunks], dtype=float)
    if not np.isnan(realized).all():
        ax.plot(x, realized, "s--", label="realized (labelled rows)")
    if baseline is not None and not np.isnan(baseline):
        bound = baseline - tolerance if metric not in ("rmse", "mae") else baseline + tolerance
        ax.axhline(baseline, color="grey", lw=1, label="offline")
        ax.axhline(bound, color="red", lw=1, ls=":", label="decay line")
    ax.set_xlabel("chunk (oldest to newest)")
    ax.set_ylabel(metric)
    ax.set_title(f"Estimated vs realized {metric}")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)
