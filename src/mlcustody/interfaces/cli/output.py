"""All terminal output of the CLI: JSON documents, tables, one-line errors, progress bars.

Results go to stdout, errors and progress to stderr. Progress bars are drawn only when stderr is a
terminal, so pipes and CI logs stay clean.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mlcustody._progress import NoProgress
from mlcustody._progress import Progress as ProgressSink

# Off a terminal rich would wrap tables at 80 columns; logs and pipes read better wide.
_WIDTH = None if sys.stdout.isatty() else 160
stdout = Console(highlight=False, soft_wrap=True, width=_WIDTH)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def line(text: str = "", style: str | None = None) -> None:
    stdout.print(text, style=style, markup=False)


def markup(text: str) -> None:
    stdout.print(text)


def failures(lines: list[str], subject: str = "") -> None:
    """What a check found, one line each, then ``FAILED: N problem(s)<subject>.``"""
    for text in lines:
        line(text, style="red")
    line(f"FAILED: {len(lines)} problem(s){subject}.", style="bold red")


def error(text: str) -> None:
    stderr.print(f"error: {text}", style="bold red", markup=False, soft_wrap=True)


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    view = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*(str(cell) for cell in row))
    stdout.print(view)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


class _Bar:
    """A rich progress bar behind the library's Progress protocol (bytes as the unit)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        self.finish()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def progress(enabled: bool = True) -> ProgressSink:
    """A bar when stderr is a terminal and output is not JSON; silence otherwise."""
    return _Bar() if enabled and stderr.is_terminal else NoProgress()


def raw(text: str) -> None:
    """A document printed exactly as it is (a rendered report): no markup, emoji codes or wrapping."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warning(text: str) -> None:
    stderr.print(f"warning: {text}", style="yellow", markup=False, soft_wrap=True)
