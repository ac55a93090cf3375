"""mlcustody: the chain of custody of machine-learning models.

The SDK surface is the :class:`Workspace`, :func:`fingerprint` (stable record fingerprints of any
pyarrow, polars or pandas frame) and the error tree; everything else is reached through them.
``custody`` (the CLI) is a thin shell over the same library.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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
from mlcustody.interfaces.sdk import Workspace
from mlcustody.storage.records.fingerprint import fingerprint

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
    "SchemaError",
    "StoreBusy",
    "UnknownRef",
    "UsageError",
    "Workspace",
    "WorkspaceExists",
    "WouldOverwrite",
    "__version__",
    "fingerprint",
]
