"""A fitted HistGradientBoosting model's trees as flat numpy arrays, walked all at once for small calls.

scikit-learn's ``_raw_predict`` calls each tree's Cython predictor in turn: for the demo champion's 100 trees
that is 100 calls, each with its allocation and OpenMP region, about 500 us even for one row. Here every tree
of every iteration is one set of contiguous arrays, and a call walks all (row, tree) pairs together, a few
numpy operations per tree level: about 20 us for one row. Once the walk's arrays outgrow the CPU caches
sklearn's own per-row loop wins (from about 1,000 rows on the demo champion), so callers use this for calls of
up to ``SMALL_CALL_ROWS`` rows.

The walk is sklearn's own (``_predictor.pyx``): NaN goes to the node's ``missing_go_to_left`` side, else
``x <= num_threshold`` goes left; the raw prediction is the baseline plus each iteration's tree value, added
one iteration after another as sklearn does, so it equals ``_raw_predict`` bit for bit (summing the trees in
another order, e.g. numpy's pairwise ``sum``, would not). Probabilities and values then go through the
estimator's own loss, exactly as its ``predict_proba``/``predict`` do. Models this module does not reproduce
exactly (categorical splits, other estimators and losses) are not compiled (None). No Dagster or MLflow
import: the gateway uses this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn._loss.link import IdentityLink, LogLink
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from mlops_assets.core.probabilities import Predicted

# Calls of up to this many rows use the compiled trees. Measured against sklearn's _raw_predict with one
# OpenMP thread, as the gateway runs calls of up to 512 rows (serving/batching.py), on a shared 2-core machine.
# The demo champion (100 trees, depth 20, 13 features, 6100 nodes): 1 row 22 vs 540 us, 8 rows 84 vs 505 us,
# 32 rows 177 vs 560 us, 128 rows 440 vs 940 us, 512 rows 1.5 vs 2.3 ms, 768 rows 2.3 vs 3.2 ms, then past
# the CPU caches 1024 rows 5.7 vs 4.1 ms. The same with 300 trees: 512 rows 4.4 vs 6.6 ms; 100 trees of depth
# 8 (no leaf limit): 512 rows 1.6 vs 2.8 ms.
SMALL_CALL_ROWS = 512
# Up to this many (row, node) cells, every node's branch for every row is decided up front in one pass, so a
# level is one ``take``; beyond it the per-node arrays outgrow the CPU caches and the level-by-level walk of
# the (row, tree) pairs is faster (demo champion, 6100 nodes: 8 rows 72 vs 84 us, 12 rows 172 vs 107 us).
TABLE_CELLS = 1 << 16
# The level-by-level walk sets aside the pairs at their leaf after this level, then every this many levels
# (the demo champion: 128 rows 370 us, vs 770 us walking every pair to the deepest level; every 2-4 levels
# measured alike).
COMPACT_FROM_LEVEL = 4
COMPACT_EVERY_LEVELS = 3

_NODE_FIELDS = frozenset(
    {"value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf", "is_categorical"}
)
_CLASSIFIER_LOSSES = (HalfBinomialLoss, HalfMultinomialLoss)  # predict_proba: expit, or softmax over classes
_REGRESSOR_LINKS = (IdentityLink, LogLink)  # predict: the raw value, or exp of it


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """All trees of one fitted model: node arrays over the concatenated trees (iteration-major, the
    iteration's ``n_trees_per_iteration_`` trees inner), a leaf's children being the leaf itself."""

    n_features: int
    baseline: np.ndarray  # (K,) sklearn's _baseline_prediction, K = trees per iteration
    roots: np.ndarray  # (trees,) each tree's first node
    feature: np.ndarray  # (nodes,) the feature a split reads (0 at leaves)
    threshold: np.ndarray  # (nodes,) x <= threshold goes left
    left: np.ndarray  # (nodes,)
    right: np.ndarray  # (nodes,)
    missing: np.ndarray  # (nodes,) where NaN goes
    children: np.ndarray  # (nodes * 3,) left, right, missing of each node: one take picks any of them
    value: np.ndarray  # (nodes,) a leaf's value (the learning rate already applied by sklearn)
    leaf: np.ndarray  # (nodes,) bool
    depth: int  # the longest root-to-leaf path of any tree, in edges
    loss: Any  # the estimator's fitted _loss
    classes: np.ndarray | None  # a classifier's classes_; None for a regressor

    def raw(self, X: np.ndarray) -> np.ndarray:
        """What ``estimator._raw_predict(X)`` returns, bit for bit: (rows, K), Fortran-ordered as there."""
        X, has_nan = self._checked(X)
        walk = self._walk_table if len(X) * len(self.value) <= TABLE_CELLS else self._walk_levels
        return self._sum(self.value.take(walk(X, has_nan)))

    def reproduces(self, X: np.ndarray, expected: np.ndarray) -> bool:
        """Whether both walks give ``expected`` (the estimator's own ``_raw_predict(X)``) bit for bit, whatever
        the size of ``X``: the proof a caller asks for before trusting these trees."""
        X, has_nan = self._checked(X)
        walks = (self._walk_table, self._walk_levels)
        return all(np.array_equal(self._sum(self.value.take(walk(X, has_nan))), expected) for walk in walks)

    def predict(self, X: np.ndarray) -> Predicted:
        """What the estimator's ``predict`` and ``predict_proba`` give: for a classifier the label chosen from
        the raw predictions as sklearn chooses it (``raw > 0`` for two classes, else the argmax: the argmax of
        rounded probabilities can differ on a near tie) and the probabilities; for a regressor the values."""
        raw = self.raw(X)
        if self.classes is None:
            return Predicted(np.asarray(self.loss.link.inverse(raw.ravel())))
        proba = np.asarray(self.loss.predict_proba(raw), dtype=np.float64)
        chosen = (raw[:, 0] > 0).astype(np.intp) if raw.shape[1] == 1 else raw.argmax(axis=1)
        return Predicted(self.classes[chosen], proba)

    def _checked(self, X: np.ndarray) -> tuple[np.ndarray, bool]:
        """``X`` as the walks read it (C-ordered float64, as sklearn's validation converts it), and whether it
        holds any NaN (else the walks skip the missing-value branches)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features or not len(X):
            raise ValueError(
                f"X has shape {X.shape}, but the trees need at least one row of {self.n_features} features"
            )
        return X, bool(np.isnan(X).any())

    def _walk_table(self, X: np.ndarray, has_nan: bool) -> np.ndarray:
        """Each (row, tree)'s leaf, (rows, trees): first every node's next node for every row, in one pass over
        the nodes, then one ``take`` per level (a leaf's next node is itself, so extra levels are harmless)."""
        values = X.take(self.feature, axis=1)  # (rows, nodes)
        nxt = np.where(values > self.threshold, self.right, self.left)  # NaN > t is False: fixed just below
        if has_nan:
            nxt = np.where(np.isnan(values), self.missing, nxt)
        first = (np.arange(len(X)) * len(self.value))[:, None]  # row r's nodes sit at r * nodes in the table
        nxt += first
        table, at = nxt.ravel(), self.roots + first
        for _ in range(self.depth):
            at = table.take(at)
        return at - first

    def _walk_levels(self, X: np.ndarray, has_nan: bool) -> np.ndarray:
        """Each (row, tree)'s leaf, (rows, trees): the (row, tree) pairs one level down per step, those that
        reached their leaf set aside every few levels (most trees are much shallower than the deepest), until
        none is left."""
        trees = len(self.roots)
        at = np.tile(self.roots, len(X))  # each (row, tree) pair's node, row-major as the result
        walking = np.arange(len(at))  # which pair each entry of ``at`` is, once some were set aside
        leaves = np.empty_like(at)
        flat = X.ravel()
        row_start = np.repeat(np.arange(0, X.size, X.shape[1]), trees)  # each pair's row in ``flat``
        for level in range(self.depth):
            values = flat.take(self.feature.take(at) + row_start)
            branch = at * 3  # the node's left child in ``children``; +1 right, +2 missing
            branch += values > self.threshold.take(at)  # False for NaN
            if has_nan:
                branch += 2 * np.isnan(values)
            at = self.children.take(branch)
            if level >= COMPACT_FROM_LEVEL and (level - COMPACT_FROM_LEVEL) % COMPACT_EVERY_LEVELS == 0:
                leaves[walking] = at
                keep = np.flatnonzero(~self.leaf.take(at))
                if not len(keep):
                    return leaves.reshape(len(X), trees)
                at, row_start, walking = at[keep], row_start[keep], walking[keep]
        leaves[walking] = at
        return leaves.reshape(len(X), trees)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        """sklearn's sum: zeros plus the baseline, then each iteration's tree value added in order (a running
        ``cumsum`` adds strictly in sequence)."""
        rows, k = len(values), len(self.baseline)
        terms = np.empty((rows, values.shape[1] // k + 1, k))
        terms[:, 0] = 0.0 + self.baseline
        terms[:, 1:] = values.reshape(rows, -1, k)
        return np.asfortranarray(np.cumsum(terms, axis=1)[:, -1])


def compile_trees(estimator: Any) -> CompiledTrees | None:
    """The compiled form of a fitted HistGradientBoosting classifier or regressor, or None when it is not one
    this module reproduces exactly (then sklearn's own prediction stays in use)."""
    kind = type(estimator)
    if kind not in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        return None
    predictors = getattr(estimator, "_predictors", None)
    per_iteration = getattr(estimator, "n_trees_per_iteration_", None)
    if not predictors or not per_iteration or getattr(estimator, "_preprocessor", None) is not None:
        return None  # unfitted, or categorical features (an ordinal encoder before the trees)
    if any(len(trees) != per_iteration for trees in predictors):
        return None
    nodes_of = [tree.nodes for trees in predictors for tree in trees]
    dtype = nodes_of[0].dtype
    if dtype.names is None or not _NODE_FIELDS.issubset(dtype.names) or any(n.dtype != dtype for n in nodes_of):
        return None
    classes = None
    if kind is HistGradientBoostingClassifier:
        if type(estimator._loss) not in _CLASSIFIER_LOSSES:
            return None
        classes = np.asarray(estimator.classes_)
    elif type(getattr(estimator._loss, "link", None)) not in _REGRESSOR_LINKS:
        return None
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    if len(baseline) != per_iteration:
        return None
    n_features = int(estimator.n_features_in_)
    arrays = _flatten(nodes_of, n_features)
    if arrays is None:
        return None
    return CompiledTrees(n_features=n_features, baseline=baseline, loss=estimator._loss, classes=classes, **arrays)


def _flatten(nodes_of: list[np.ndarray], n_features: int) -> dict[str, Any] | None:
    """The concatenated trees' arrays, or None for what sklearn's walk would not take (categorical splits,
    features or children out of range, cycles)."""
    sizes = np.array([len(n) for n in nodes_of])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.concatenate(nodes_of)
    if not len(nodes) or nodes["is_categorical"].any():
        return None
    leaf = nodes["is_leaf"].astype(bool)
    own = np.repeat(starts, sizes)  # each node's tree start: sklearn's child indices are within the tree
    local_left, local_right = nodes["left"].astype(np.intp), nodes["right"].astype(np.intp)
    size = np.repeat(sizes, sizes)
    feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
    in_range = (local_left < size) & (local_right < size) & (feature >= 0) & (feature < n_features)
    if not (leaf | in_range).all():
        return None
    here = np.arange(len(nodes))
    left = np.where(leaf, here, local_left + own)
    right = np.where(leaf, here, local_right + own)
    missing = np.where(nodes["missing_go_to_left"].astype(bool), left, right)
    roots = starts.astype(np.intp)
    depth = _depth(roots, left, right, leaf)
    if depth is None:
        return None
    return {
        "roots": roots,
        "feature": feature,
        "threshold": np.ascontiguousarray(nodes["num_threshold"], dtype=np.float64),  # not a strided view
        "left": left,
        "right": right,
        "missing": missing,
        "children": np.stack([left, right, missing], axis=1).ravel(),
        "value": np.ascontiguousarray(nodes["value"], dtype=np.float64),
        "leaf": leaf,
        "depth": depth,
    }


def _depth(roots: np.ndarray, left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> int | None:
    """The longest root-to-leaf path in edges, found by walking the trees (not read from a stored field); None
    when a path is longer than there are nodes (a cycle)."""
    frontier, depth = roots, 0
    while True:
        inner = frontier[~leaf[frontier]]
        if not len(inner):
            return depth
        depth += 1
        if depth > len(leaf):
            return None
        frontier = np.unique(np.concatenate([left[inner], right[inner]]))  # a DAG's shared nodes once
