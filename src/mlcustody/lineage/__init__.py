"""Layer 4, lineage: the graph of runs and versions, record and column lineage, and their exports.

For dataframe code, ``mlcustody.lineage.agg`` and ``mlcustody.lineage.join`` keep record ids through
aggregations and chained joins (see ``capture.frames``); they are imported on first use, since
they need polars.
"""

from __future__ import annotations

from typing import Any

__all__ = ["agg", "join"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlcustody.capture import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'mlcustody.lineage' has no attribute {name!r}")
