"""What kind of artifact a file is, told from its name and first bytes: model, dataset, or unknown.

A run that writes ``model.skops`` produced a model whatever its script says, and one that reads
``loans.csv`` read a dataset: typing captured files by content is what lets ``model register --run``
find the model and the registry name the training data without the user declaring either. Names
decide for the unambiguous suffixes; the bytes decide for suffixes that many formats share
(``.txt``, ``.json``, ``.model``, ``.bin``), where a LightGBM or XGBoost model is recognised by its
header. ``pickle_risk`` says whether loading the file would unpickle it.
"""

from __future__ import annotations

from pathlib import Path

from mlcustody.capture import models

MODEL_SUFFIXES = frozenset(
    {".skops", ".safetensors", ".onnx", ".joblib", ".pkl", ".pickle", ".pt", ".pth", ".keras", ".h5", ".ubj", ".xgb"}
)
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".feather", ".arrow"})
_SNIFFED = frozenset({".txt", ".json", ".model", ".bin"})
_HEAD = 256


def artifact_type(path: Path) -> str | None:
    """``model`` or ``dataset`` when the file is recognisably one, else None (the caller's default)."""
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        return "model"
    if suffix in TABLE_SUFFIXES:
        return "dataset"
    if suffix in _SNIFFED and _looks_like_boosted_trees(path):
        return "model"
    return None


def pickle_risk(path: Path) -> bool:
    """Whether the file is (or claims by name to be) a pickle: loading it could run arbitrary code."""
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):  # torch.save writes a zip of pickles
        return True
    return models.detect_format(path) == "pickle"


def _looks_like_boosted_trees(path: Path) -> bool:
    """A LightGBM text model starts with ``tree``; an XGBoost JSON or UBJSON model names its ``learner``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        return False
    return head.startswith(b"tree\nversion=") or (b"learner" in head and head.lstrip()[:1] == b"{")
