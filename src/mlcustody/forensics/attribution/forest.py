"""Random forests: the prediction as an exact weighted sum of training labels, and leave-one-out per tree.

A fitted tree predicts the mean label of the in-bag rows in the decision's leaf, each row counted as
often as the bootstrap drew it (cₜᵢ, from ``estimators_samples_``). Averaging over T trees,

    f(x) = (1/T)·Σₜ Sₜ/Nₜ,   Sₜ = Σᵢ cₜᵢ·1[leafₜ(xᵢ) = leafₜ(x)]·yᵢ,   Nₜ = Σᵢ cₜᵢ·1[leafₜ(xᵢ) = leafₜ(x)],

which equals ``predict_proba`` / ``predict`` to rounding (docs/attribution.md). With the trees' splits
held fixed, leaving record i out turns each leaf mean Sₜ/Nₜ into (Sₜ − cₜᵢyᵢ)/(Nₜ − cₜᵢ). When that
empties the leaf, the split that isolated the record is undone: the tree answers with its parent node,
whose in-bag sums come from the tree itself (a split node always holds another in-bag row).

``prepare`` checks every leaf of every tree against the rows given, so attributing a forest to rows it
was not trained on (another order, another version) fails loudly instead of producing plausible noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

from ._common import KNN_HINT, Attributor, FloatArray, Prediction, class_codes, numeric, python_scalar, require_finite

_LEAF_TOLERANCE = 1e-9  # relative; leaf sums are exact sums of small integers times labels


@dataclass(frozen=True)
class _Forest:
    """Everything about the trees that does not depend on the decision, nodes of all trees concatenated."""

    leaves: NDArray[np.int32]  # (n, T) global node number of each row's leaf in each tree; -1 out of bag
    counts: NDArray[np.unsignedinteger[Any]]  # (n, T) in-bag multiplicity of each row in each tree
    targets: FloatArray  # (n, K) one-hot class (classifier) or the value (regressor, K = 1)
    node_mean: FloatArray  # (nodes, K) each node's in-bag mean of the targets
    node_weight: FloatArray  # (nodes,) each node's in-bag count
    parent: NDArray[np.intp]  # (nodes,) parent node; the root is its own parent
    offsets: NDArray[np.intp]  # (T,) first global node number of each tree


def forest_kernel(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """``RandomForest*`` / ``ExtraTrees*``: change of the predicted probability or value per record."""
    classifier = hasattr(model, "classes_")
    name = type(model).__name__
    if model.n_outputs_ != 1:
        raise UsageError(f"{name} with several outputs: attribution covers one output", hint=KNN_HINT)
    if getattr(model, "class_weight", None) is not None:
        raise UsageError(
            f"{name}(class_weight={model.class_weight!r}) weights rows inside the trees, which this kernel "
            "does not model",
            hint=f"refit without class_weight, or {KNN_HINT}",
        )
    if classifier:
        targets = np.eye(len(model.classes_))[class_codes(labels, model.classes_)]
    else:
        values = numeric(labels, "y_train")
        require_finite(values, "y_train")
        targets = values[:, None]
    forest = _bind(model, features, targets, name)

    def effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        nodes = forest.offsets + model.apply(x[None, :])[0]
        column = _explained_column(forest.node_mean[nodes].mean(axis=0))
        return _loo(forest, nodes, column)

    return Attributor(method="forest-kernel", measure=_measure(model), n_features=features.shape[1], effects=effects)


def _measure(model: Any) -> str:
    if not hasattr(model, "classes_"):
        subject, output = "value", "value"
    elif len(model.classes_) == 2:
        subject, output = f"probability of class {python_scalar(model.classes_[1])!r}", "probability"
    else:
        subject, output = "probability of the class the model predicts", "probability"
    return (
        f"change of the predicted {subject} if the record is left out of every tree that drew it, "
        "tree structure fixed (a leaf left empty falls back to its parent node); positive = the record "
        f"lowered it; prediction is that {output}, rebuilt exactly from the training labels"
    )


def _explained_column(mean: FloatArray) -> int:
    """Which target column to explain: the value, the positive class, or the predicted class (multiclass)."""
    if mean.size <= 2:
        return mean.size - 1
    return int(np.argmax(mean))


def _bind(model: Any, features: FloatArray, targets: FloatArray, name: str) -> _Forest:
    """Leaf ids and in-bag counts of every training row, and every node's in-bag sums, checked."""
    n = features.shape[0]
    trees = [estimator.tree_ for estimator in model.estimators_]
    offsets = np.concatenate([[0], np.cumsum([tree.node_count for tree in trees])[:-1]])
    counts = np.stack([np.bincount(drawn, minlength=n) for drawn in model.estimators_samples_], axis=1)
    leaves = model.apply(features)
    node_mean = [_node_means(tree.value[:, 0, :], targets.shape[1]) for tree in trees]
    for column, tree in enumerate(trees):
        _check_leaves(leaves[:, column], counts[:, column], targets, tree, node_mean[column], name)
    return _Forest(
        leaves=np.where(counts > 0, leaves + offsets, -1).astype(np.int32),  # out-of-bag rows match no leaf
        counts=counts.astype(np.min_scalar_type(counts.max())),
        targets=targets,
        node_mean=np.concatenate(node_mean),
        node_weight=np.concatenate([tree.weighted_n_node_samples for tree in trees]),
        parent=np.concatenate([_parents(tree) + offset for tree, offset in zip(trees, offsets, strict=True)]),
        offsets=offsets,
    )


def _node_means(value: FloatArray, width: int) -> FloatArray:
    """A tree's node values as means of the targets: class fractions (older releases store counts)."""
    if width == 1:
        return value
    return np.asarray(value / value.sum(axis=1, keepdims=True), dtype=np.float64)


def _parents(tree: Any) -> NDArray[np.intp]:
    parent = np.arange(tree.node_count)
    for children in (tree.children_left, tree.children_right):
        split = np.flatnonzero(children >= 0)
        parent[children[split]] = split
    return parent


def _check_leaves(
    leaf: NDArray[np.intp], drawn: NDArray[np.intp], targets: FloatArray, tree: Any, mean: FloatArray, name: str
) -> None:
    """Each leaf's in-bag count and label sums recomputed from the rows must equal the tree's own.

    Every leaf holds at least one in-bag row, so checking the leaves the rows reach checks them all.
    """
    weight = drawn.astype(np.float64)
    count = np.bincount(leaf, weights=weight, minlength=tree.node_count)
    reached = np.flatnonzero(count)
    sums = np.stack([np.bincount(leaf, weights=weight * column)[reached] for column in targets.T], axis=1)
    expected = mean[reached] * tree.weighted_n_node_samples[reached, None]
    if not (
        np.allclose(count[reached], tree.weighted_n_node_samples[reached], rtol=_LEAF_TOLERANCE, atol=0.0)
        and (np.abs(sums - expected) <= _LEAF_TOLERANCE * np.maximum(1.0, np.abs(expected))).all()
    ):
        raise UsageError(
            f"X_train and y_train do not reproduce the leaves of this {name}: they are not the rows it "
            "was trained on, or the trees were fitted with sample weights or a non-mean criterion",
            hint="pass exactly the training rows, in their original order; or " + KNN_HINT,
        )


def _loo(forest: _Forest, nodes: NDArray[np.intp], column: int) -> tuple[Prediction, FloatArray]:
    """The kernel prediction and every row's fixed-structure leave-one-out change, O(n·T) per decision.

    Works on the (row, tree) pairs where the row is in-bag in the decision's leaf: the only ones a
    record's removal can change.
    """
    n, tree_count = forest.counts.shape
    row, tree = np.nonzero(forest.leaves == nodes.astype(forest.leaves.dtype))
    drawn = forest.counts[row, tree].astype(np.float64)
    label = forest.targets[row, column]
    in_leaf = np.bincount(tree, weights=drawn, minlength=tree_count)
    leaf_mean = np.bincount(tree, weights=drawn * label, minlength=tree_count) / in_leaf
    emptied = in_leaf[tree] == drawn
    parent = forest.parent[nodes[tree]]
    total = np.where(emptied, forest.node_weight[parent], in_leaf[tree])
    mean = np.where(emptied, forest.node_mean[parent, column], leaf_mean[tree])
    left = total - drawn
    without = np.divide(mean * total - drawn * label, left, out=leaf_mean[tree], where=left > 0)
    delta = np.bincount(row, weights=without - leaf_mean[tree], minlength=n) / tree_count
    return float(leaf_mean.mean()), delta
