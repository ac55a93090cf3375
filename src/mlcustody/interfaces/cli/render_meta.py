"""How ``show`` prints a version's metadata and tags: words and aligned lines, not Python reprs.

A record manifest's settings come first as one summary (count, format, key, scheme, manifest digest)
and its columns as ``name type``; any other metadata key is ``key: value`` with structured values as
compact JSON, which is what users paste back into ``--json`` tools.
"""

from __future__ import annotations

import json
from typing import Any

_INDENT = " " * 13  # under the value column of ``show``'s ``{field:>11}: `` lines


def lines(field: str, value: Any) -> list[str]:
    """The human lines of one ``show`` field (``meta``, ``tags`` or any scalar field)."""
    if field == "meta" and isinstance(value, dict):
        body = _meta(value) or ["none"]
    elif field == "tags" and isinstance(value, list | tuple):
        body = [", ".join(str(tag) for tag in value) or "none"]
    else:
        body = [str(value)]
    return [f"{field:>11}: {body[0]}", *(_INDENT + line for line in body[1:])]


def _meta(meta: dict[str, Any]) -> list[str]:
    found = []
    for key, value in meta.items():
        if key == "records" and isinstance(value, dict):
            found.extend(_records(value))
        else:
            found.append(f"{key}: {_text(value)}")
    return found


def _records(records: dict[str, Any]) -> list[str]:
    """``records: 50 (csv, key loan_id, mlcustody-record/v1), manifest ad716a004f82`` and the columns."""
    about = [str(records[k]) for k in ("format",) if records.get(k)]
    key = records.get("key")
    about.append(f"key {', '.join(key)}" if key else "ids by source locator")
    if records.get("scheme"):
        about.append(str(records["scheme"]))
    head = f"records: {records.get('count', '?')} ({', '.join(about)})"
    if records.get("manifest"):
        head += f", manifest {str(records['manifest'])[:12]}"
    found = [head]
    columns = records.get("columns") or []
    if columns:
        found.append("columns: " + ", ".join(f"{c.get('name')} {c.get('type')}" for c in columns))
    rest = {k: v for k, v in records.items() if k not in ("count", "format", "key", "scheme", "manifest", "columns")}
    found.extend(f"records.{k}: {_text(v)}" for k, v in rest.items())
    return found


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return "" if value is None else str(value)
