"""A credit pipeline of plain pandas/scikit-learn scripts that never import mlcustody.

It is what most teams have: raw CSV files from several sources, then ``ingest.py`` → ``clean.py`` →
``features.py`` → ``train.py``, each run as ``custody run --name STAGE -- python STAGE.py``. The demo
runs it to show that the whole chain — versions, record manifests, record links, the model and its
training data, down to raw source lines — comes from capture alone; the tests run it for the same
reason. ``write`` lays the scripts and the raw files into a directory; ``decisions`` writes a
prediction log of the trained model for ``custody decisions import``.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

STAGES = ("ingest", "clean", "features", "train")
SOURCES = ("branch_north", "branch_south", "broker_feed")
FEATURES = ("age", "log_income", "debt_ratio")

_INGEST = """\
from pathlib import Path

import pandas as pd

parts = [pd.read_csv(path) for path in sorted(Path("raw").glob("*.csv"))]
Path("data").mkdir(exist_ok=True)
pd.concat(parts, ignore_index=True).to_csv("data/applications.csv", index=False)
print(f"{sum(len(p) for p in parts)} applications from {len(parts)} sources")
"""

_CLEAN = """\
import pandas as pd

apps = pd.read_csv("data/applications.csv")
apps = apps.dropna(subset=["income"])
apps = apps[apps["income"] > 0]
apps["age"] = apps["age"].clip(18, 90)
apps.to_csv("data/clean.csv", index=False)
print(f"{len(apps)} clean applications")
"""

_FEATURES = """\
import numpy as np
import pandas as pd

clean = pd.read_csv("data/clean.csv")
features = pd.DataFrame({
    "application_id": clean["application_id"],
    "age": clean["age"],
    "log_income": np.log(clean["income"]),
    "debt_ratio": clean["debt"] / clean["income"],
    "defaulted": clean["defaulted"],
})
features.to_csv("data/features.csv", index=False)
print(f"{len(features)} feature rows")
"""

_TRAIN = """\
import pandas as pd
import skops.io
from sklearn.linear_model import LogisticRegression

data = pd.read_csv("data/features.csv")
x, y = data[["age", "log_income", "debt_ratio"]], data["defaulted"]
model = LogisticRegression(max_iter=1000).fit(x, y)
skops.io.dump(model, "model.skops")
print(f"accuracy {model.score(x, y):.3f} on {len(data)} applications")
"""

SCRIPTS = {"ingest": _INGEST, "clean": _CLEAN, "features": _FEATURES, "train": _TRAIN}


def write(root: Path, *, rows_per_source: int = 400, seed: int = 11) -> None:
    """The four scripts and ``raw/SOURCE.csv`` for each source, with a learnable default label."""
    rng = random.Random(seed)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(SOURCES):
        with (root / "raw" / f"{source}.csv").open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["application_id", "customer", "age", "income", "debt", "defaulted"])
            for i in range(rows_per_source):
                age = rng.randint(16, 80)
                income = None if rng.random() < 0.02 else round(rng.lognormvariate(10.4, 0.5), 2)
                debt = round(rng.uniform(0, 40_000), 2)
                ratio = debt / income if income else 1.0
                risk = 2.5 * ratio - 0.03 * (age - 40) + rng.gauss(0, 0.6)
                customer = f"C-{number}{i:05d}"
                out.writerow(
                    [f"A-{number}{i:05d}", customer, age, "" if income is None else income, debt, int(risk > 1.0)]
                )
    for stage, text in SCRIPTS.items():
        (root / f"{stage}.py").write_text(text, encoding="utf-8")


def decisions(root: Path, path: Path, *, count: int = 50) -> list[str]:
    """A prediction log of ``model.skops`` over the first ``count`` feature rows (JSON Lines); the ids."""
    import pandas as pd

    from mlcustody.capture import models

    model = models.load_model(root / "model.skops")
    rows = pd.read_csv(root / "data" / "features.csv").head(count)
    scores = model.predict_proba(rows[list(FEATURES)])[:, 1]
    ids = [f"P-{i:05d}" for i in range(len(rows))]
    with path.open("w", encoding="utf-8") as handle:
        for i, (decision, score) in enumerate(zip(ids, scores, strict=True)):
            inputs = {name: float(rows[name].iloc[i]) for name in FEATURES}
            entry: dict[str, object] = {"decision_id": decision, "time": f"2026-11-{1 + i % 28:02d}T10:00:00Z"}
            entry |= {"subject": str(rows["application_id"].iloc[i]), "output": round(float(score), 6), **inputs}
            handle.write(json.dumps(entry) + "\n")
    return ids
