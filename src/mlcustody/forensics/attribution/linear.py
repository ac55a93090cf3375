"""Leave-one-out effects for linear models: Koh–Liang influence (logistic) and the exact hat-matrix LOO.

Both models minimise Σᵢ sᵢ·ℓ(x̃ᵢᵀθ, yᵢ) + ½λ·θᵀDθ, with x̃ = [x, 1] and D the identity except for an
unpenalised intercept. Leaving record i out moves the optimum by one Newton step

    Δθ₍₋ᵢ₎ = H₍₋ᵢ₎⁻¹ · sᵢℓ′ᵢ·x̃ᵢ,   H = Σⱼ sⱼℓ″ⱼ·x̃ⱼx̃ⱼᵀ + λD,   H₍₋ᵢ₎ = H − sᵢℓ″ᵢ·x̃ᵢx̃ᵢᵀ,

and by Sherman–Morrison the decision's output moves by

    Δf_t = sᵢℓ′ᵢ · (x̃ᵢᵀH⁻¹x̃_t) / (1 − sᵢℓ″ᵢ · x̃ᵢᵀH⁻¹x̃ᵢ).

For squared loss (Ridge, OLS) ℓ″ = 1 and the step is exact: this is the hat-matrix formula. For the
logistic loss it is Koh & Liang's influence with the leverage correction, which cuts the error against
actual retrains several-fold (docs/attribution.md). λ must be the model's *own* L2 strength in its own
scale (scikit-learn: ½‖w‖² + C·Σℓ, so λ = 1/C): leaving it out is invisible to a correlation but
inflates the deltas. H is factorised and the leverages computed once per model, O(n·q² + q³); each
decision then costs one triangular solve and one matrix–vector product, O(n·q).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcustody.errors import UsageError

from ._common import KNN_HINT, Attributor, FloatArray, Prediction, class_codes, numeric, python_scalar, require_finite

_SMALLEST_PIVOT = 1e-10  # of H with unit diagonal: condition number beyond ~10¹⁰ is refused


def logistic_influence(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """Binary ``LogisticRegression``: predicted change of the decision's logit when a record is left out."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.utils.class_weight import compute_sample_weight

    if isinstance(model, LogisticRegressionCV):
        raise UsageError(
            "LogisticRegressionCV averages or refits over folds, so its objective is not known here",
            hint=f"refit a LogisticRegression with C=model.C_[0] on the same rows, or {KNN_HINT}",
        )
    classes = model.classes_
    if len(classes) != 2:
        return _multinomial_influence(model, features, labels)
    positive = (class_codes(labels, classes) == 1).astype(np.float64)
    weight = compute_sample_weight(model.class_weight, labels) if model.class_weight is not None else 1.0
    probability = expit(model.decision_function(features))
    liblinear = model.solver == "liblinear"  # liblinear penalises the intercept, on a column of intercept_scaling
    intercept = (float(model.intercept_scaling) if liblinear else 1.0) if model.fit_intercept else None
    effects = _newton_loo(
        _design(features, intercept),
        residual=weight * (probability - positive),
        curvature=weight * probability * (1.0 - probability),
        penalty=_l2_strength(model) * _penalised(features.shape[1], intercept, penalise_intercept=liblinear),
    )

    def logit_effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        return float(model.decision_function(x[None, :])[0]), effects(_design(x[None, :], intercept)[0])

    return Attributor(
        method="influence",
        measure=(
            f"change of the decision's logit (log-odds of class {python_scalar(classes[1])!r}) if the record is "
            "left out of training, by one Newton step with the leverage correction; positive = the record lowered it; "
            "prediction is the logit"
        ),
        n_features=features.shape[1],
        effects=logit_effects,
    )


def least_squares_loo(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """``Ridge`` / ``LinearRegression``: exact change of the prediction when a record is left out."""
    from sklearn.linear_model import Ridge

    name = type(model).__name__
    if getattr(model, "positive", False):
        raise UsageError(
            f"{name}(positive=True) is a constrained fit, so the closed-form leave-one-out does not hold",
            hint=KNN_HINT,
        )
    alpha = np.asarray(model.alpha if isinstance(model, Ridge) else 0.0, dtype=np.float64)
    if np.asarray(model.coef_).ndim != 1 or alpha.ndim != 0:
        raise UsageError(f"{name} with several targets: attribution covers one target", hint=KNN_HINT)
    target = numeric(labels, "y_train")
    require_finite(target, "y_train")
    intercept = 1.0 if model.fit_intercept else None
    effects = _newton_loo(
        _design(features, intercept),
        residual=model.predict(features) - target,
        curvature=np.ones(features.shape[0]),
        penalty=float(alpha) * _penalised(features.shape[1], intercept, penalise_intercept=False),
    )

    def value_effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        return float(model.predict(x[None, :])[0]), effects(_design(x[None, :], intercept)[0])

    return Attributor(
        method="loo-exact",
        measure=(
            "exact change of the predicted value if the record is left out of training (closed form, "
            "hat matrix); positive = the record lowered it; prediction is the predicted value"
        ),
        n_features=features.shape[1],
        effects=value_effects,
    )


def _newton_loo(
    design: FloatArray, residual: FloatArray, curvature: FloatArray, penalty: FloatArray
) -> Callable[[FloatArray], FloatArray]:
    """Factor H once; return x̃_t ↦ Δf_t for every row (see the module docstring for the formula).

    ``residual`` is sᵢℓ′ᵢ and ``curvature`` sᵢℓ″ᵢ, the first and second derivative of each row's
    weighted loss with respect to the model's output at the fitted parameters. H is factorised with
    unit diagonal (columns scaled by diag(H)^-½), so a tiny pivot means collinear columns whatever
    the features' units, and a nearly singular H is refused instead of yielding huge deltas.
    """
    from scipy.linalg import cho_factor, cho_solve

    diagonal = np.einsum("i,ij,ij->j", curvature, design, design) + penalty
    if (diagonal <= 0).any():
        raise _undetermined()
    root = np.sqrt(diagonal)
    unit = design / root
    try:
        factor = cho_factor(unit.T @ (curvature[:, None] * unit) + np.diag(penalty / diagonal))
    except np.linalg.LinAlgError as exc:
        raise _undetermined() from exc
    if np.diag(factor[0]).min() ** 2 < _SMALLEST_PIVOT:
        raise _undetermined()
    leverage = np.einsum("ij,ji->i", unit, cho_solve(factor, unit.T))
    scale = residual / (1.0 - curvature * leverage)

    def effects(decision: FloatArray) -> FloatArray:
        return np.asarray(scale * (unit @ cho_solve(factor, decision / root)), dtype=np.float64)

    return effects


def _undetermined() -> UsageError:
    return UsageError(
        "the training rows leave the model's parameters undetermined (collinear or constant features, "
        "or separable classes without a penalty), so leave-one-out is undefined",
        hint=f"drop redundant features or fit with an L2 penalty; or {KNN_HINT}",
    )


def _design(features: FloatArray, intercept: float | None) -> FloatArray:
    """x̃: the features, plus the constant column the intercept multiplies (absent without one)."""
    if intercept is None:
        return features
    return np.hstack([features, np.full((features.shape[0], 1), intercept)])


def _penalised(n_features: int, intercept: float | None, *, penalise_intercept: bool) -> FloatArray:
    """The diagonal of D: 1 for every coefficient, and for the intercept only if the solver penalises it."""
    flags = [1.0] * n_features + ([] if intercept is None else [1.0 if penalise_intercept else 0.0])
    return np.asarray(flags)


def _l2_strength(model: Any) -> float:
    """λ = 1/C of a LogisticRegression's L2 penalty (0 without one); L1 parts make the loss non-smooth.

    scikit-learn ≥ 1.8 deprecates ``penalty`` and expresses it through ``l1_ratio`` and ``C = inf``.
    """
    penalty = model.penalty
    if penalty in ("deprecated", "elasticnet") and not model.l1_ratio:
        penalty = "l2"
    if penalty not in ("l2", None):
        raise UsageError(
            f"LogisticRegression with an L1 or elastic-net penalty (l1_ratio={model.l1_ratio}): influence "
            "needs a twice-differentiable objective",
            hint=f"refit with l1_ratio=0 (an L2 penalty), or {KNN_HINT}",
        )
    return 0.0 if penalty is None or np.isinf(model.C) else 1.0 / float(model.C)


def _multinomial_influence(model: Any, features: FloatArray, labels: NDArray[Any]) -> Attributor:
    """Multiclass ``LogisticRegression``: predicted change of the logit of the class the model predicts."""
    every_class = multinomial_logit_effects(model, features, labels)

    def predicted_logit_effects(x: FloatArray) -> tuple[Prediction, FloatArray]:
        logits = model.decision_function(x[None, :])[0]
        chosen = int(np.argmax(logits))
        return float(logits[chosen]), every_class(x)[chosen]

    return Attributor(
        method="influence",
        measure=(
            "change of the decision's logit for the class the model predicts if the record is left out of "
            "training, by one Newton step on the multinomial loss (no leverage correction); positive = the "
            "record lowered it; prediction is that logit"
        ),
        n_features=features.shape[1],
        effects=predicted_logit_effects,
    )


def multinomial_logit_effects(
    model: Any, features: FloatArray, labels: NDArray[Any]
) -> Callable[[FloatArray], FloatArray]:
    """x ↦ (K, n): the change of each class's logit on x when each row is left out (one Newton step).

    The parameters θ = (w_k, b_k) for K classes minimise Σᵢ sᵢ·CE(softmax(Wx̃ᵢ), yᵢ) + ½λ‖W‖², so

        H = Σᵢ sᵢ (diag pᵢ − pᵢpᵢᵀ) ⊗ x̃ᵢx̃ᵢᵀ + λD,   gᵢ = sᵢ (pᵢ − e_yᵢ) ⊗ x̃ᵢ,   Δθ₍₋ᵢ₎ ≈ H⁻¹gᵢ.

    Adding the same constant to every intercept leaves the softmax unchanged and is not penalised, so H
    is singular along that direction u; every gᵢ and every logit difference is orthogonal to it, so
    H + uuᵀ gives the same steps. Exposed for scores on other outputs (a test loss, by the chain rule).
    """
    from scipy.linalg import cho_factor, cho_solve
    from sklearn.utils.class_weight import compute_sample_weight

    codes = class_codes(labels, model.classes_)
    classes = len(model.classes_)
    weight = (
        compute_sample_weight(model.class_weight, labels) if model.class_weight is not None else np.ones(len(codes))
    )
    intercept = 1.0 if model.fit_intercept else None
    design = _design(features, intercept)
    width = design.shape[1]
    probability = model.predict_proba(features)
    spread = probability[:, :, None] * design[:, None, :]  # (n, K, q): pᵢₖx̃ᵢ
    hessian = -np.einsum("i,ia,ib->ab", weight, spread.reshape(len(codes), -1), spread.reshape(len(codes), -1))
    for k in range(classes):
        block = slice(k * width, (k + 1) * width)
        hessian[block, block] += (design * (weight * probability[:, k])[:, None]).T @ design
    penalty = np.tile(_penalised(features.shape[1], intercept, penalise_intercept=False), classes)
    hessian += np.diag(_l2_strength(model) * penalty)
    if intercept is not None:
        shift = np.tile(1.0 - _penalised(features.shape[1], intercept, penalise_intercept=False), classes)
        hessian += np.outer(shift, shift) / classes
    residual = weight[:, None] * (probability - np.eye(classes)[codes])  # (n, K)
    root = np.sqrt(np.diag(hessian))
    try:
        factor = cho_factor(hessian / np.outer(root, root))
    except np.linalg.LinAlgError as exc:
        raise _undetermined() from exc
    if np.diag(factor[0]).min() ** 2 < _SMALLEST_PIVOT:
        raise _undetermined()

    def effects(x: FloatArray) -> FloatArray:
        point = _design(x[None, :], intercept)[0]
        out = np.empty((classes, len(codes)))
        for k in range(classes):
            direction = np.zeros(classes * width)
            direction[k * width : (k + 1) * width] = point
            step = cho_solve(factor, direction / root) / root  # H⁻¹ e_k⊗x̃, reshaped per class
            out[k] = np.einsum("ik,ij,kj->i", residual, design, step.reshape(classes, width))
        return out

    return effects
