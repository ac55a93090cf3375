"""Multiclass logistic regression: influence on the multinomial loss, against retrains and by LDS on digits.

The digits score follows dattri's MNIST-10 logistic-regression benchmark on scikit-learn's bundled
8×8 digits (a small offline MNIST): the linear datamodeling score over 50 models retrained on random
50 % subsets of the training set, the target being each test sample's cross-entropy loss, averaged
over the test samples (Park et al. 2023). The loss effect of a record comes from the library's
per-class logit effects by the chain rule, Δℓ = Σₖ (pₖ − 1[k = y])·Δzₖ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from _attribution import Array, leave_one_out, make_data, sampled_rows
from mlcustody.forensics.attribution import prepare
from mlcustody.forensics.attribution.linear import multinomial_logit_effects

SEED = 20_260_315


def _digits() -> tuple[Array, Array, Array, Array]:
    features, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(SEED).permutation(len(labels))
    train, test = order[:1000], order[1000:1100]
    return features[train] / 16, labels[train], features[test] / 16, labels[test]


def _fit(features: Array, labels: Array) -> LogisticRegression:
    return LogisticRegression(C=1.0, tol=1e-10, max_iter=5000).fit(features, labels)


def test_predicted_class_logit_effects_match_leave_one_out_retrains() -> None:
    train, _, _, x = make_data(n=400, seed=SEED)
    three = np.digitize(train[:, 0] + train[:, 1], [-1.0, 1.0])
    model = _fit(train, three)
    ready = prepare(model, train, three)
    prediction, delta = ready.deltas(x)
    chosen = int(np.argmax(model.decision_function(x[None, :])[0]))
    assert ready.method == "influence" and prediction == pytest.approx(model.decision_function(x[None, :])[0, chosen])
    rows = sampled_rows(len(train), 60)

    def fit(features: Array, labels: Array) -> Any:
        class Chosen:  # the retrained model's logit of the class the full model predicts
            def __init__(self, fitted: LogisticRegression) -> None:
                self.fitted = fitted

            def logit(self, rows: Array) -> Array:
                return np.asarray(self.fitted.decision_function(rows)[:, chosen])

        return Chosen(_fit(features, labels))

    actual = leave_one_out(fit, "logit", train, three, x, rows)
    assert np.corrcoef(delta[rows], actual)[0, 1] >= 0.99


def test_digits_linear_datamodeling_score_as_dattri_defines_it_is_at_least_0_9() -> None:
    train, labels, test, truth = _digits()
    model = _fit(train, labels)
    effects = multinomial_logit_effects(model, train, labels)
    rng = np.random.default_rng(SEED + 1)
    subsets = [rng.choice(len(labels), len(labels) // 2, replace=False) for _ in range(50)]
    refits = [_fit(train[s], labels[s]) for s in subsets]
    probability = model.predict_proba(test)
    scores = []
    for point, label, p in zip(test, truth, probability, strict=True):
        left_out = (p - np.eye(len(p))[label]) @ effects(point)  # Δ loss if each record is left out
        predicted = [-left_out[s].sum() for s in subsets]  # a subset's records, each kept in
        actual = [-np.log(refit.predict_proba(point[None, :])[0, label]) for refit in refits]
        scores.append(spearmanr(predicted, actual).statistic)
    assert np.mean(scores) >= 0.9, np.mean(scores)
