"""mlcustody: the chain of custody of machine-learning models.

The SDK surface is the :class:`Workspace`, run tracking on the workspace of the current directory
(:func:`start_run`, :func:`active_run`, :func:`log_metric`, …, :func:`save_model`, :func:`load_model`
in safe formats), :func:`fingerprint` (stable record fingerprints of any pyarrow, polars or pandas
frame) and the error tree; everything else is reached through them.
``custody`` (the CLI) is a thin shell over the same library.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
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
from mlcustody.interfaces.fluent import (
    active_run,
    load_model,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    save_model,
    set_tags,
    start_run,
)
from mlcustody.interfaces.sdk import Workspace
from mlcustody.interfaces.tracking import Run

if TYPE_CHECKING:
    from mlcustody.storage.records.fingerprint import fingerprint


def __getattr__(name: str) -> Any:
    """``fingerprint`` is imported on first use: the record layer needs pyarrow, DuckDB and polars,
    which the rest of the package (and ``custody --help``) should not pay for."""
    if name == "fingerprint":
        from mlcustody.storage.records.fingerprint import fingerprint

        return fingerprint
    raise AttributeError(f"module 'mlcustody' has no attribute {name!r}")


try:
    __version__ = version("mlcustody")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
