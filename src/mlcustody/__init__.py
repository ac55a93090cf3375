"""mlcustody: the chain of custody of machine-learning models.

The SDK surface is the :class:`Workspace`, run tracking on the workspace of the current directory
(:func:`start_run`, :func:`active_run`, :func:`log_metric`, …, :func:`save_model`, :func:`load_model`
in safe formats), :func:`fingerprint` (stable record fingerprints of any pyarrow, polars or pandas
frame) and the error tree; everything else is reached through them.
``custody`` (the CLI) is a thin shell over the same library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlcustody.errors import (
    AmbiguousRef,
    ConfigError,
    CustodyError,
    NotAWorkspace,
    PathError,
    SchemaError,
    StoreBusy,
    UnknownRef,
    UsageError,
    WorkspaceExists,
    WouldOverwrite,
)

if TYPE_CHECKING:
    from mlcustody.storage.records.fingerprint import fingerprint
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.fluent import (
        active_run,
        decision_log,
        load_model,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        save_model,
        set_tags,
        start_run,
    )
    from mlcustody.workspace.tracking import Run

# Exports imported on first use: the database layer (SQLAlchemy) and the record layer (pyarrow,
# DuckDB, polars) cost a third of a second to import, which `custody run` must not pay before it
# starts the user's command, nor `custody --help` at all.
_LAZY = {
    "Workspace": "mlcustody.workspace.facade",
    "Run": "mlcustody.workspace.tracking",
    "fingerprint": "mlcustody.storage.records.fingerprint",
    **dict.fromkeys(
        [
            "active_run",
            "decision_log",
            "load_model",
            "log_metric",
            "log_metrics",
            "log_param",
            "log_params",
            "save_model",
            "set_tags",
            "start_run",
        ],
        "mlcustody.workspace.fluent",
    ),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name == "lineage":  # mlcustody.lineage.agg / .join for dataframe code
        return importlib.import_module("mlcustody.lineage")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlcustody' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlcustody")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


__all__ = [
    "AmbiguousRef",
    "ConfigError",
    "CustodyError",
    "NotAWorkspace",
    "PathError",
    "Run",
    "SchemaError",
    "StoreBusy",
    "UnknownRef",
    "UsageError",
    "Workspace",
    "WorkspaceExists",
    "WouldOverwrite",
    "__version__",
    "active_run",
    "decision_log",
    "fingerprint",
    "load_model",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "save_model",
    "set_tags",
    "start_run",
]
