"""BoostIn for gradient-boosted trees (Brophy, Hammoudeh & Lowd, JMLR 24(154), 2023), as a prediction effect.

A boosted model's raw score is f(x) = f₀ + η·Σ_b v_b(leaf_b(x)). With the trees' structure fixed, each
leaf value is the Newton step of its training rows, v = −G/(H + λ), G = Σⱼ wⱼgⱼ and H = Σⱼ wⱼhⱼ summed
over the rows in that leaf with the gradients gⱼ and hessians hⱼ of the loss at the raw scores before
tree b. Differentiating a leaf value in one row's weight wᵢ gives

    ∂v/∂wᵢ = −(gᵢ + v·hᵢ)/(H + λ),

so leaving record i out (wᵢ: 1 → 0) changes the decision's raw score, to first order, by

    Δf(x_t)₍₋ᵢ₎ = η · Σ_b 1[leaf_b(xᵢ) = leaf_b(x_t)] · (gᵢ⁽ᵇ⁾ + v_b·hᵢ⁽ᵇ⁾)/(H_leaf⁽ᵇ⁾ + λ).

That is BoostIn's leaf derivative without its test-loss gradient: an effect on the prediction, not on
a loss, with the same sign convention as the other methods (positive = the record lowered it). Like
BoostIn it ignores how the record changes the gradients later trees were fitted to.

Everything that does not depend on the decision — each row's leaf in every tree and its derivative
term — is ``precompute``d in one O(n·T) pass (the raw scores before each tree are rebuilt from the
leaves, so no refit is needed) and can be stored: ``Precomputed.to_bytes`` / ``load``. A decision then
costs routing it through T trees and adding the terms of the rows that share its leaves: the rows are
sorted by leaf once per tree, so each tree contributes one contiguous slice, O(Σ_b |leaf_b(x_t)|) in
all (unbalanced trees put most decisions in their big leaves: about half of n·T on the benchmark).

``precompute`` recomputes every leaf's training-row count and Newton value from the rows given and
compares them with the trees' own, so rows of another dataset version, or a model fitted with settings
this derivation does not cover, are refused instead of yielding plausible noise.

Over 400 lines on purpose: one attribution method over four tree-ensemble libraries, each needing
its own adapter to the same ``_Ensemble``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

from ._common import KNN_HINT, Attributor, FloatArray, Prediction, class_codes, numeric, python_scalar, require_finite

FORMAT = "mlcustody.boostin/v1"  # part of the cache key: a new layout must not read an old object
_VALUE_RTOL = 1e-3  # scikit-learn's histogram boosting sums float32 gradients
_SCORE_ATOL = 1e-6
_FLOAT32_ATOL = 1e-4
_ROWS_PER_THREAD = 10_000
Router = Callable[[FloatArray], NDArray[np.intp]]  # rows → (T, rows) leaf number within each tree


@dataclass(frozen=True)
class _Ensemble:
    """The trees of one boosted model, as the derivation needs them, whatever library fitted them."""

    route: Router
    values: list[FloatArray]  # per tree, each leaf's Newton value before shrinkage
    counts: list[NDArray[np.intp]] | None  # per tree, each leaf's number of training rows (None: not kept)
    learning_rate: float
    l2: float
    classifier: bool
    raw: Callable[[FloatArray], FloatArray]  # rows → the model's own raw score (logit or value)
    start_in_first_tree: bool = False  # LightGBM adds its boost-from-average start to the first tree
    covers: list[FloatArray] | None = None  # per tree, each leaf's hessian sum (XGBoost keeps it, not counts)
    score_atol: float = _SCORE_ATOL  # how far the model's own raw score may be from the leaves' sum


@dataclass(frozen=True)
class Precomputed:
    """The decision-independent part of BoostIn: each row's leaf and derivative term in every tree."""

    leaves: NDArray[np.unsignedinteger[Any]]  # (T, n) leaf number within the tree
    terms: NDArray[np.float32]  # (T, n) η·(gᵢ + v·hᵢ)/(H_leaf + λ)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, format=np.array(FORMAT), leaves=self.leaves, terms=self.terms)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: Path) -> Precomputed:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["format"]) != FORMAT:
                raise UsageError(f"{path} is not a {FORMAT} object", hint="delete it to have it recomputed")
            return cls(stored["leaves"], stored["terms"])


def boosted_trees(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """Gradient-boosted trees: first-order change of the decision's raw score when a record is left out."""
    return attributor(model, precompute(model, features, labels))


def precompute(model: Any, features: FloatArray, labels: NDArray[Any]) -> Precomputed:
    """Route every training row through every tree and compute its derivative term, checking each leaf."""
    ensemble = _ensemble(model)
    name = type(model).__name__
    if ensemble.classifier:
        target = (class_codes(labels, model.classes_) == 1).astype(np.float64)
    else:
        target = numeric(labels, "y_train")
        require_finite(target, "y_train")
    leaves = ensemble.route(features)
    if ensemble.start_in_first_tree:  # take the start out of the first tree's leaves, so they are Newton steps
        start = _average_start(target, ensemble.classifier)
        ensemble = replace(ensemble, values=[ensemble.values[0] - start / ensemble.learning_rate, *ensemble.values[1:]])
    raw = ensemble.raw(features) - ensemble.learning_rate * _tree_sum(ensemble, leaves)  # f₀, per row
    if np.ptp(raw) > ensemble.score_atol:  # the leaves found are not the ones the model's own prediction used
        raise _not_its_rows(name, 0)
    terms = np.empty(leaves.shape, dtype=np.float32)
    for tree, (leaf, value) in enumerate(zip(leaves, ensemble.values, strict=True)):
        gradient, hessian = _derivatives(raw, target, ensemble.classifier)
        g_sum = np.bincount(leaf, weights=gradient, minlength=value.size)
        h_sum = np.bincount(leaf, weights=hessian, minlength=value.size) + ensemble.l2
        if not (_leaves_hold(ensemble, tree, leaf, h_sum - ensemble.l2) and (h_sum > 0).all()):
            raise _not_its_rows(name, tree)
        newton = -g_sum / h_sum
        if not np.allclose(newton, value, rtol=_VALUE_RTOL, atol=_VALUE_RTOL * max(1.0, np.abs(value).max())):
            raise _not_its_rows(name, tree)
        terms[tree] = ensemble.learning_rate * (gradient + value[leaf] * hessian) / h_sum[leaf]
        raw = raw + ensemble.learning_rate * value[leaf]
    return Precomputed(leaves.astype(np.min_scalar_type(max(v.size for v in ensemble.values))), terms)


def _leaves_hold(ensemble: _Ensemble, tree: int, leaf: NDArray[np.intp], hessians: NDArray[np.floating[Any]]) -> bool:
    """Whether the rows routed to each leaf are its training rows: by their count, or their hessian sum."""
    size = ensemble.values[tree].size
    if ensemble.counts is not None and not np.array_equal(np.bincount(leaf, minlength=size), ensemble.counts[tree]):
        return False
    cover = None if ensemble.covers is None else ensemble.covers[tree]
    return cover is None or bool(np.allclose(hessians, cover, rtol=_VALUE_RTOL, atol=_VALUE_RTOL))


def attributor(model: Any, precomputed: Precomputed) -> Attributor:
    """Bind a precomputed model to decisions: rows sorted by leaf once, so a query reads only its leaves."""
    ensemble = _ensemble(model)
    trees, n = precomputed.leaves.shape
    if trees != len(ensemble.values):
        raise UsageError(
            f"the precomputed data hold {trees} trees, the model {len(ensemble.values)}",
            hint="precompute again from this model",
        )
    width = max(v.size for v in ensemble.values)
    order = np.argsort(precomputed.leaves, axis=1, kind="stable").astype(np.int32)
    sorted_terms = np.take_along_axis(precomputed.terms, order, axis=1)
    counts = np.stack([np.bincount(leaf, minlength=width) for leaf in precomputed.leaves])
    starts = np.cumsum(counts, axis=1) - counts
    tree_index = np.arange(trees)

    def effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        leaf = ensemble.route(x[None, :])[:, 0]
        begin = starts[tree_index, leaf]
        end = begin + counts[tree_index, leaf]
        delta = np.zeros(n)
        for tree, (first, last) in enumerate(zip(begin.tolist(), end.tolist(), strict=True)):
            delta[order[tree, first:last]] += sorted_terms[tree, first:last]  # rows are distinct within a tree
        return float(ensemble.raw(x[None, :])[0]), delta

    return Attributor(method="boostin", measure=_measure(model), n_features=model.n_features_in_, effects=effects)


def _measure(model: Any) -> str:
    if hasattr(model, "classes_"):
        subject = f"logit (log-odds of class {python_scalar(model.classes_[1])!r})"
    else:
        subject = "predicted value"
    return (
        f"change of the decision's {subject} if the record is left out of training, trees fixed, to first "
        "order (BoostIn's leaf derivative); positive = the record lowered it; prediction is the "
        + ("logit" if hasattr(model, "classes_") else "predicted value")
    )


def _scikit_learn_raw(model: Any) -> Callable[[FloatArray], FloatArray]:
    def raw(rows: FloatArray) -> FloatArray:
        score = model.decision_function(rows) if hasattr(model, "classes_") else model.predict(rows)
        return np.asarray(score, dtype=np.float64)

    return raw


def _tree_sum(ensemble: _Ensemble, leaves: NDArray[np.intp]) -> FloatArray:
    return np.asarray(sum(value[leaf] for value, leaf in zip(ensemble.values, leaves, strict=True)), np.float64)


def _average_start(target: FloatArray, classifier: bool) -> float:
    """The constant a booster starts from: the log-odds of the positive rate, or the mean value."""
    mean = float(target.mean())
    return float(np.log(mean / (1.0 - mean))) if classifier else mean


def _derivatives(raw: FloatArray, target: FloatArray, classifier: bool) -> tuple[FloatArray, FloatArray]:
    """First and second derivative of each row's loss in its raw score: log loss, or half squared error."""
    if not classifier:
        return raw - target, np.ones_like(raw)
    from scipy.special import expit

    probability = expit(raw)
    return probability - target, probability * (1.0 - probability)


def _not_its_rows(name: str, tree: int) -> UsageError:
    return UsageError(
        f"X_train and y_train do not reproduce the leaves of this {name} (tree {tree}): they are not the rows "
        "it was trained on, in that order, or it was fitted with sample weights",
        hint="pass exactly the training rows, in their original order; or " + KNN_HINT,
    )


def _ensemble(model: Any) -> _Ensemble:
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    if isinstance(model, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return _histogram_boosting(model)
    if isinstance(model, GradientBoostingClassifier | GradientBoostingRegressor):
        return _gradient_boosting(model)
    if is_lightgbm(model):
        return _lightgbm(model)
    if is_xgboost(model):
        return _xgboost(model)
    raise UsageError(
        f"BoostIn does not cover {type(model).__name__}",
        hint="it covers scikit-learn's (Hist)GradientBoosting*, LightGBM's LGBMClassifier/Regressor and XGBoost's "
        "XGBClassifier/XGBRegressor; or " + KNN_HINT,
    )


def is_lightgbm(model: Any) -> bool:
    """LightGBM's scikit-learn models, recognised without importing LightGBM (an optional package)."""
    kind = type(model)
    return kind.__module__.startswith("lightgbm") and kind.__name__ in ("LGBMClassifier", "LGBMRegressor")


def _lightgbm(model: Any) -> _Ensemble:
    """LightGBM: leaves shrunk by η; the first tree's leaves also carry the boost-from-average start."""
    classifier = hasattr(model, "classes_")
    params = {**model.booster_.params, **model.get_params()}
    expected = "binary" if classifier else "regression"
    objective = params.get("objective") or expected
    if classifier and len(model.classes_) != 2:
        raise _refuse(model, f"{len(model.classes_)} classes", "BoostIn is built for binary classifiers here")
    if objective not in (expected, "l2" if not classifier else "binary"):
        raise _refuse(model, f"objective={objective!r}", "BoostIn covers binary log loss and squared error")
    if params.get("boosting_type", "gbdt") != "gbdt" or params.get("data_sample_strategy", "bagging") != "bagging":
        raise _refuse(model, f"boosting_type={params.get('boosting_type')!r}", "only plain gradient boosting")
    sampled = params.get("subsample", 1.0) < 1.0 and params.get("subsample_freq", 0) > 0
    weighted = params.get("class_weight") is not None or params.get("is_unbalance") or params.get("scale_pos_weight")
    if sampled or weighted or params.get("reg_alpha", 0.0) or params.get("path_smooth", 0.0):
        raise _refuse(model, "bagging, class weights, L1 or path smoothing", "its leaves are not plain Newton steps")
    booster = model.booster_
    trees = booster.dump_model()["tree_info"]
    eta = float(params.get("learning_rate", 0.1))
    values, counts = [], []
    for tree in trees:
        leaves: dict[int, tuple[float, int]] = {}
        _lightgbm_leaves(tree["tree_structure"], leaves)
        values.append(np.array([leaves[i][0] for i in range(len(leaves))]) / eta)
        counts.append(np.array([leaves[i][1] for i in range(len(leaves))], dtype=np.intp))

    def route(rows: FloatArray) -> NDArray[np.intp]:
        return np.asarray(booster.predict(rows, pred_leaf=True), dtype=np.intp).reshape(len(rows), -1).T

    def raw(rows: FloatArray) -> FloatArray:
        return np.asarray(model.predict(rows, raw_score=True), dtype=np.float64)

    start = bool(params.get("boost_from_average", True))
    return _Ensemble(route, values, counts, eta, float(params.get("reg_lambda", 0.0)), classifier, raw, start)


def is_xgboost(model: Any) -> bool:
    """XGBoost's scikit-learn models, recognised without importing XGBoost (an optional package)."""
    kind = type(model)
    return kind.__module__.startswith("xgboost") and kind.__name__ in ("XGBClassifier", "XGBRegressor")


def _xgboost(model: Any) -> _Ensemble:
    """XGBoost: leaves shrunk by η, no row counts but each leaf's hessian sum ("cover"); the start
    (``base_score``) is a margin outside the trees."""
    import json

    import xgboost

    classifier = hasattr(model, "classes_")
    if classifier and len(model.classes_) != 2:
        raise _refuse(model, f"{len(model.classes_)} classes", "BoostIn is built for binary classifiers here")
    booster = model.get_booster()
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    if objective != ("binary:logistic" if classifier else "reg:squarederror"):
        raise _refuse(model, f"objective={objective!r}", "BoostIn covers binary log loss and squared error")
    trees = config["gradient_booster"]
    if trees["name"] != "gbtree":
        raise _refuse(model, f"booster={trees['name']!r}", "only plain gradient-boosted trees")
    train = trees["tree_train_param"]
    weighted = float(model.get_params().get("scale_pos_weight") or 1.0) != 1.0
    if float(train["alpha"]) or float(train["max_delta_step"]) or float(train["subsample"]) < 1.0 or weighted:
        raise _refuse(
            model, "subsample, L1, max_delta_step or scale_pos_weight", "its leaves are not plain Newton steps"
        )
    eta = float(train["eta"])
    frame = booster.trees_to_dataframe()
    numbers, values, covers = [], [], []
    for _, nodes in frame.groupby("Tree", sort=True):
        leaves = nodes[nodes["Feature"] == "Leaf"]
        number = np.full(int(nodes["Node"].max()) + 1, -1, dtype=np.intp)
        number[leaves["Node"].to_numpy(dtype=np.intp)] = np.arange(len(leaves))
        numbers.append(number)
        values.append(leaves["Gain"].to_numpy(dtype=np.float64) / eta)
        covers.append(leaves["Cover"].to_numpy(dtype=np.float64))

    def route(rows: FloatArray) -> NDArray[np.intp]:
        found = booster.predict(xgboost.DMatrix(rows), pred_leaf=True, validate_features=False)
        nodes = np.asarray(found, dtype=np.intp).reshape(len(rows), -1).T
        return np.stack([number[node] for number, node in zip(numbers, nodes, strict=True)])

    def raw(rows: FloatArray) -> FloatArray:
        margin = booster.inplace_predict(rows, predict_type="margin", validate_features=False)
        return np.asarray(margin, dtype=np.float64).reshape(len(rows))

    # XGBoost sums its margins in float32: over a few hundred trees they stray ~1e-5 from the float64 sum
    return _Ensemble(
        route, values, None, eta, float(train["lambda"]), classifier, raw, covers=covers, score_atol=_FLOAT32_ATOL
    )


def _lightgbm_leaves(node: dict[str, Any], out: dict[int, tuple[float, int]]) -> None:
    if "leaf_index" in node:
        out[node["leaf_index"]] = (float(node["leaf_value"]), int(node["leaf_count"]))
        return
    _lightgbm_leaves(node["left_child"], out)
    _lightgbm_leaves(node["right_child"], out)


def _refuse(model: Any, setting: str, why: str) -> UsageError:
    return UsageError(f"{type(model).__name__} with {setting}: {why}", hint=f"refit without it, or {KNN_HINT}")


def _check_loss(model: Any, classifier: bool, trees_per_round: int) -> None:
    if classifier and (len(model.classes_) != 2 or trees_per_round != 1):
        raise _refuse(model, f"{len(model.classes_)} classes", "BoostIn is built for binary classifiers here")
    loss = model.loss
    if loss not in (("log_loss",) if classifier else ("squared_error",)):
        raise _refuse(model, f"loss={loss!r}", "BoostIn covers log loss (classifiers) and squared error")


def _histogram_boosting(model: Any) -> _Ensemble:
    """scikit-learn's HistGradientBoosting*: leaves already shrunk by η, leaf counts in the nodes."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    classifier = hasattr(model, "classes_")
    _check_loss(model, classifier, model.n_trees_per_iteration_)
    if model.do_early_stopping_ and model._use_validation_data:
        raise _refuse(model, "early stopping on a validation split", "its trees never saw the held-out rows")
    if getattr(model, "class_weight", None) is not None or model.monotonic_cst is not None:
        raise _refuse(model, "class_weight or monotonic_cst", "its leaves are not plain Newton steps")
    eta = float(model.learning_rate)
    predictors = [round_[0] for round_ in model._predictors]
    routers, values, counts = [], [], []
    for predictor in predictors:
        nodes = predictor.nodes
        leaf_nodes = np.flatnonzero(nodes["is_leaf"])
        numbered = nodes.copy()
        numbered["value"][leaf_nodes] = np.arange(leaf_nodes.size)
        routers.append(TreePredictor(numbered, predictor.binned_left_cat_bitsets, predictor.raw_left_cat_bitsets))
        values.append(nodes["value"][leaf_nodes] / eta)
        counts.append(nodes["count"][leaf_nodes].astype(np.intp))
    known, feature_map = model._bin_mapper.make_known_categories_bitsets()
    threads = _openmp_effective_n_threads()

    def route(rows: FloatArray) -> NDArray[np.intp]:
        used = threads if rows.shape[0] >= _ROWS_PER_THREAD else 1  # OpenMP start-up dwarfs one row's work
        return np.stack([r.predict(rows, known, feature_map, used) for r in routers]).astype(np.intp)

    return _Ensemble(route, values, counts, eta, float(model.l2_regularization), classifier, _scikit_learn_raw(model))


def _gradient_boosting(model: Any) -> _Ensemble:
    """scikit-learn's GradientBoosting*: trees store the unshrunk Newton value, no L2 term."""
    classifier = hasattr(model, "classes_")
    _check_loss(model, classifier, model.estimators_.shape[1])
    if model.subsample < 1.0:
        raise _refuse(model, f"subsample={model.subsample}", "each tree saw a random part of the rows")
    if model.n_iter_no_change is not None:
        raise _refuse(model, "n_iter_no_change", "early stopping holds a validation split out of the trees")
    if model.init is not None:
        raise _refuse(model, "a custom init estimator", "only the constant prior is modelled")
    trees = [estimator.tree_ for estimator in model.estimators_[:, 0]]
    numbers, values, counts = [], [], []
    for tree in trees:
        leaf_nodes = np.flatnonzero(tree.children_left == -1)
        number = np.full(tree.node_count, -1, dtype=np.intp)
        number[leaf_nodes] = np.arange(leaf_nodes.size)
        numbers.append(number)
        values.append(np.asarray(tree.value[leaf_nodes, 0, 0], dtype=np.float64))
        counts.append(np.asarray(tree.n_node_samples[leaf_nodes], dtype=np.intp))

    def route(rows: FloatArray) -> NDArray[np.intp]:
        nodes = model.apply(rows).reshape(rows.shape[0], len(numbers), -1)[:, :, 0].T.astype(np.intp)
        return np.stack([number[node] for number, node in zip(numbers, nodes, strict=True)])

    return _Ensemble(route, values, counts, float(model.learning_rate), 0.0, classifier, _scikit_learn_raw(model))
