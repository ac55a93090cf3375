"""The rules the code base keeps: lint, strict typing, the layer order, and the public SDK surface."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlcustody

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*command: str) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=240)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}"


def test_exported_members_are_pinned() -> None:
    """Changing the SDK surface must be a deliberate edit of this line."""
    pinned = (
        "AmbiguousRef ConfigError CustodyError NotAWorkspace PathError Run SchemaError StoreBusy UnknownRef UsageError"
        " Workspace WorkspaceExists WouldOverwrite __version__ active_run decision_log fingerprint load_model"
        " log_metric log_metrics log_param log_params save_model set_tags start_run"
    )
    assert mlcustody.__all__ == pinned.split()


def test_ruff() -> None:
    _run(sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks")


def test_layers_contract() -> None:
    _run(str(BIN / "lint-imports"))


@pytest.mark.slow
def test_mypy_strict() -> None:
    _run(sys.executable, "-m", "mypy")
