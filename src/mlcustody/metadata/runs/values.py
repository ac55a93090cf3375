"""Checks of what a run logs (names, params, metric values), free of the database layer.

``custody run`` validates its arguments before it starts the user's command, and it starts the
command before it imports SQLAlchemy; so these checks live apart from ``runs``.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

from mlcustody._canonical import canonical_json
from mlcustody.errors import UsageError

_KEY = re.compile(r"[A-Za-z0-9_.\-/ ]{1,250}")


def valid_key(key: object) -> TypeGuard[str]:
    """Whether ``key`` is a valid run, param, metric or tag name."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def validate_key(key: object, what: str) -> str:
    if not valid_key(key):
        raise UsageError(
            f"{what} name {key!r} is not valid",
            hint="use 1–250 letters, digits, spaces and _ . - /",
        )
    return key


def metric_value(key: str, value: object) -> float:
    """A metric value as a float; booleans, strings and other objects are refused like MLflow does."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        import numpy as np

        if isinstance(value, np.number) and not isinstance(value, np.complexfloating):
            return float(value)
        raise UsageError(f"metric {key!r} value {value!r} is not a number", hint="log an int or a float")
    return float(value)


def param_text(key: str, value: Any) -> str:
    """A param value as canonical JSON text, the form in which it is stored and compared."""
    try:
        return canonical_json(value).decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"param {key!r} value {value!r} cannot be recorded: {exc}",
            hint="params are JSON values: strings, finite numbers, booleans, null, lists and objects",
        ) from exc
