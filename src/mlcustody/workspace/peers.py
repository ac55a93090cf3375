"""Optional peer libraries (MLflow's client, PyYAML): imported when an import command needs one.

They are heavy (MLflow alone takes seconds to import) and most users never need them, so they live in
the ``interop`` extra; a missing one is bad input with the fix named, not a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mlcustody.errors import UsageError


def need(module: str, extra: str = "interop") -> ModuleType:
    """Import ``module`` or say which extra installs it (exit 2)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".", 1)[0]
        raise UsageError(f"{top} is not installed ({exc})", hint=f"pip install 'mlcustody[{extra}]'") from exc
