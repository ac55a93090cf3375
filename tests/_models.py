"""A small trained model, the world the registry, decision, bundle and crash tests start from.

``train_model`` runs what a user would: add a keyed training table, train inside a run, save the model
safely; the ``model_ws`` and ``registered_cli`` fixtures (conftest.py) register it as ``credit@1``.
"""

from __future__ import annotations

from pathlib import Path

from conftest import write_tree
from mlcustody import Workspace
from mlcustody.workspace.results import RecordSpec

PASSPHRASE = "correct horse battery staple"


def train_model(root: Path) -> str:
    """A run that reads a dataset (with records) and saves a scikit-learn model; returns its id."""
    from sklearn.linear_model import LogisticRegression

    rows = "\n".join(f"{i},{i % 7},{int(i % 7 > 3)}" for i in range(60))
    write_tree(root, {"data/train.csv": "id,x,y\n" + rows + "\n"})
    ws = Workspace.open(root)
    try:
        ws.add([root / "data/train.csv"], records=RecordSpec(key=("id",)))
        with ws.start_run("train", params={"C": 0.5}) as run:
            run.use("data/train.csv")
            x = [[i % 7] for i in range(60)]
            y = [int(i % 7 > 3) for i in range(60)]
            run.save_model(LogisticRegression(C=0.5).fit(x, y), root / "model.skops")
        return run.id
    finally:
        ws.close()
