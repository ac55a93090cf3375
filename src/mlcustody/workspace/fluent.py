"""The module-level SDK (``mlcustody.start_run``, ``mlcustody.log_metric``, …) on a default workspace.

Scripts should not have to open a workspace to track a run: the default one is the workspace at or
above the current directory, opened on first use and kept for the process. Inside ``custody run``
the logging functions attach to the command's run when no run was started in-process.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.capture import models
from mlcustody.workspace import tracking
from mlcustody.workspace.facade import Workspace

if TYPE_CHECKING:
    from mlcustody.ledger.decisions import log as decisions


def default_workspace(where: Workspace | str | Path | None = None) -> Workspace:
    """``where`` itself, the workspace at that directory, or the process's default one."""
    if isinstance(where, Workspace):
        return where
    if where is not None:
        return Workspace.open(Path(where))
    return _process_workspace()


@functools.cache
def _process_workspace() -> Workspace:
    return Workspace.open()


def start_run(
    name: str = "run",
    *,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    parent: str | None = None,
    workspace: Workspace | str | Path | None = None,
) -> tracking.Run:
    """Start a run (``with mlcustody.start_run("train") as run: …``); nested runs become children."""
    return tracking.start_run(default_workspace(workspace), name, params=params, tags=tags, parent=parent)


def active_run(workspace: Workspace | str | Path | None = None) -> tracking.Run | None:
    return tracking.active_run(default_workspace(workspace))


def _current() -> tracking.Run:
    """The active run; as in MLflow, logging with none starts one (named after the script, ended at exit)."""
    found = active_run()
    if found is None:
        script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-m") else "run"
        found = start_run(script or "run")
    return found


def log_metric(key: str, value: float, step: int = 0) -> None:
    _current().log_metric(key, value, step)


def log_metrics(metrics: dict[str, float], step: int = 0) -> None:
    _current().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    _current().log_params(params)


def set_tags(tags: dict[str, str]) -> None:
    _current().set_tags(tags)


def save_model(model: Any, path: str | Path) -> str:
    """Write ``model`` in the safe format its suffix names (.skops, .safetensors, .onnx); returns it."""
    return models.save_model(model, Path(path))


def load_model(
    source: str | Path,
    *,
    trust_pickle: bool = False,
    trusted: tuple[str, ...] = (),
    workspace: Workspace | str | Path | None = None,
) -> Any:
    """Load a model from a file, or from a version (``model@3``) of the workspace; pickles need trust."""
    path = Path(source)
    if not path.is_file():
        ws = default_workspace(workspace)
        path = ws.materialise(ws.resolve(str(source)))
    return models.load_model(path, trust_pickle=trust_pickle, trusted=trusted)


def decision_log(
    model: str, *, workspace: Workspace | str | Path | None = None, **options: Any
) -> decisions.DecisionLog:
    """A log of the decisions a registered model makes (``with mlcustody.decision_log("credit:production")
    as log: log.record(...)``); closing it writes a signed checkpoint. See docs/decisions.md."""
    return default_workspace(workspace).decision_log(model, **options)
