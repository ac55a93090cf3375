"""``custody run``: start the user's command first, record its run while it works.

The command starts before the database layer is imported: SQLAlchemy and the record layer cost a
third of a second that the user's command would otherwise wait for. So this module imports only the
light launcher at import time, and the workspace (which brings SQLAlchemy) once the child is running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody import config
from mlcustody.capture import launch

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace
    from mlcustody.workspace.tracking import CommandResult


def run(
    directory: Path | None,
    command: Sequence[str],
    *,
    name: str | None,
    inputs: Sequence[str | Path],
    outputs: Sequence[str | Path],
    params: dict[str, Any],
    stdout_to_stderr: bool,
    show: Callable[[Workspace, CommandResult], None],
) -> int:
    """Run ``command`` as a tracked run of the workspace at or above ``directory``; ``show`` renders the
    sealed run while the workspace is still open. Returns the command's exit status."""
    cfg = config.load(config.find_root(directory or Path.cwd()))
    started = launch.start(
        cfg,
        command,
        name=name,
        inputs=inputs,
        outputs=outputs,
        params=params,
        stdout_to_stderr=stdout_to_stderr,
    )
    with launch.stopped_on_error(started):
        # Lazy on purpose (speed, not a cycle): SQLAlchemy loads only now, while the command runs.
        from mlcustody.workspace.facade import Workspace

        with Workspace.open(directory) as ws:
            result = ws.finish_command(started)
            show(ws, result)
    return result.exit_status
