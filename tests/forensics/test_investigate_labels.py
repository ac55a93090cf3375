"""Label issues: cleanlab's mask on the same out-of-fold probabilities; per raw source through lineage."""

from __future__ import annotations

import numpy as np
import pytest
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import Cli
from credit_world import build
from mlcustody.forensics import labels
from mlcustody.interfaces import demo_investigate as world


def test_the_mask_is_cleanlabs_on_the_same_probabilities() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    flipped = rng.random(1500) < 0.08
    y = np.where(flipped, 1 - y, y)
    found = labels.flag({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "name": np.array(["t"] * 1500)}, y, seed=3)
    splits = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probs = cross_val_predict(model, x, y, cv=splits, method="predict_proba")
    assert np.allclose(found.pred_probs, probs, atol=1e-12)
    assert (found.mask == find_label_issues(y, probs, n_jobs=1)).all()
    assert found.features == ["a", "b", "c"]  # the text column is left out
    assert (found.mask & flipped).sum() / flipped.sum() > 0.7
    random_probs = rng.dirichlet([1, 1], size=1500)
    assert (labels.issues(y, random_probs) == find_label_issues(y, random_probs, n_jobs=1)).all()


def test_labels_per_raw_source(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = build(cli, monkeypatch)
    doc = cli.json("investigate", "labels", "credit-train", "--label", "approved", "--exclude", "group")
    report = doc["label_issues"]
    first = report["by_source"][0]
    assert first["path"] == world.PURCHASED and first["p_value"] < 1e-10
    assert report["features"] == ["income_k", "debt_ratio", "age"]
    lines = {raw["locator"] for record in report["records"] for raw in record["raw"]}
    assert len(lines & planted.lines) / len(planted.lines) >= 0.9
    _, err = cli("investigate", "labels", "credit-train", "--label", "approved", "--exclude", "gender", code=2)
    assert "has no excluded column 'gender'" in err and "group" in err
    _, err = cli("investigate", "labels", "raw/customers", "--label", "outcome", code=2)
    assert "has no label column 'outcome'" in err
