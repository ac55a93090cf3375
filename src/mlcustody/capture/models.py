"""Saving and loading models in formats that cannot run code when loaded.

scikit-learn models go through ``skops`` (a zip of JSON and arrays whose loader instantiates only
types it is told to trust), tensors through ``safetensors``, ONNX files are taken as they are.
A pickle (``.pkl``, ``.pickle``, ``.joblib``, or anything whose bytes start like one) runs arbitrary
code when loaded, so loading one is refused unless the caller says ``trust_pickle=True``. The format
is recognised from the file's first bytes, not trusted from its name.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcustody.errors import PathError, UsageError

FORMATS = ("skops", "safetensors", "onnx", "pickle")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SAVE_HINT = "save scikit-learn models as .skops, tensors as .safetensors, or ONNX as .onnx"


def detect_format(path: Path, name: str | None = None) -> str | None:
    """``skops``, ``safetensors``, ``onnx``, ``pickle``, or None for anything else. ``name`` is the
    file's own name when ``path`` is a stored object (whose name is its digest, without a suffix)."""
    suffix = Path(name).suffix.lower() if name is not None else path.suffix.lower()
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise PathError(f"cannot read {path}: {exc.strerror}") from exc
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "schema.json" in archive.namelist():
                return "skops"
    if len(head) >= 9 and head[8:9] == b"{":
        (header_size,) = struct.unpack("<Q", head[:8])
        if 0 < header_size < 100_000_000 and header_size + 8 <= path.stat().st_size:
            return "safetensors"
    if suffix == ".onnx" and head[:1] == b"\x08":
        return "onnx"
    if suffix in _PICKLE_SUFFIXES:
        return "pickle"
    return None


def save_model(model: Any, path: Path | str) -> str:
    """Write ``model`` in the safe format its suffix names; returns the format."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".skops":
        import skops.io

        skops.io.dump(model, path)
        return "skops"
    if suffix == ".safetensors":
        _save_tensors(model, path)
        return "safetensors"
    if suffix == ".onnx":
        data = model.SerializeToString() if hasattr(model, "SerializeToString") else model
        if not isinstance(data, bytes):
            raise UsageError("an ONNX model is saved from bytes or an onnx.ModelProto", hint=_SAVE_HINT)
        path.write_bytes(data)
        return "onnx"
    if suffix in _PICKLE_SUFFIXES:
        raise UsageError(f"{path.name}: pickle runs arbitrary code when loaded and is not saved", hint=_SAVE_HINT)
    raise UsageError(f"{path.name}: no safe model format has the suffix {suffix or '(none)'}", hint=_SAVE_HINT)


def load_model(path: Path | str, *, trust_pickle: bool = False, trusted: Sequence[str] = ()) -> Any:
    """Read a model back: a scikit-learn object, a dict of numpy arrays, or an ONNX file's bytes.

    skops loads scikit-learn's own types and those in ``trusted``; any other type it would have to
    instantiate is refused by name.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "skops":
        return _load_skops(path, trusted)
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if fmt == "onnx":
        return path.read_bytes()
    if fmt == "pickle":
        if not trust_pickle:
            raise UsageError(
                f"{path.name} is a pickle, which runs arbitrary code when loaded; refusing to load it",
                hint="re-save it with skops or safetensors, or pass trust_pickle=True (--trust-pickle) "
                "if you trust whoever wrote it",
            )
        with open(path, "rb") as handle:
            return pickle.load(handle)
    raise UsageError(f"{path.name} is not a model format mlcustody can load", hint=_SAVE_HINT)


def _load_skops(path: Path, trusted: Sequence[str]) -> Any:
    import skops.io

    needed = skops.io.get_untrusted_types(file=path)
    refused = [name for name in needed if not name.startswith("sklearn.") and name not in trusted]
    if refused:
        raise UsageError(
            f"{path.name} would instantiate types that are not trusted: {', '.join(refused)}",
            hint="check them, then pass trusted=[...] with their names",
        )
    return skops.io.load(path, trusted=list(needed))


def _save_tensors(tensors: Any, path: Path) -> None:
    if not isinstance(tensors, dict) or not tensors:
        raise UsageError("safetensors saves a non-empty dict of name → array", hint=_SAVE_HINT)
    first = next(iter(tensors.values()))
    if type(first).__module__.startswith("torch"):
        from safetensors.torch import save_file as save_torch

        save_torch(tensors, str(path))
        return
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
