"""What differs between two runs: params, metrics, code, packages, inputs and outputs.

Each section lists only what differs, as ``{key: [a, b]}`` (``null`` where one side has nothing),
so an empty section means "the same" and the whole diff of two reproductions is small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mlcustody.metadata.runs.store import Run


class Detailed(Protocol):
    """A run with its code and environment records (``sdk.RunDetails``)."""

    @property
    def run(self) -> Run: ...
    @property
    def code(self) -> dict[str, Any]: ...
    @property
    def environment(self) -> dict[str, Any] | None: ...


def compare(a: Detailed, b: Detailed) -> dict[str, Any]:
    git_a, git_b = a.code.get("git") or {}, b.code.get("git") or {}
    entry_a, entry_b = a.code.get("entry") or {}, b.code.get("entry") or {}
    python_a = (a.environment or {}).get("python") or {}
    python_b = (b.environment or {}).get("python") or {}
    return {
        "status": _changed({"status": a.run.status}, {"status": b.run.status}),
        "params": _changed(a.run.params, b.run.params),
        "metrics": _changed(
            {k: s.value for k, s in a.run.metrics.items()}, {k: s.value for k, s in b.run.metrics.items()}
        ),
        "code": _changed(
            {"commit": git_a.get("commit"), "dirty_diff": git_a.get("diff"), "entry": entry_a.get("digest")},
            {"commit": git_b.get("commit"), "dirty_diff": git_b.get("diff"), "entry": entry_b.get("digest")},
        ),
        "python": _changed(
            {"version": python_a.get("version"), "executable": python_a.get("executable")},
            {"version": python_b.get("version"), "executable": python_b.get("executable")},
        ),
        "packages": _changed(python_a.get("packages") or {}, python_b.get("packages") or {}),
        "inputs": _changed(_files(a.run, "input"), _files(b.run, "input")),
        "outputs": _changed(_files(a.run, "output"), _files(b.run, "output")),
    }


def _files(run: Run, role: str) -> dict[str, str | None]:
    return {item.path: item.digest for item in run.files(role)}


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
