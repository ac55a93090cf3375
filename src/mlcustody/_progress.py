"""How long-running library calls report progress without knowing who draws it.

The library calls ``start``/``advance``/``finish``; the CLI passes a sink that draws a bar only when
stdout is a terminal, and everyone else gets the silent default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: int) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """The silent sink: the default for library callers and for output that is not a terminal."""

    def start(self, description: str, total: int) -> None:
        return None

    def advance(self, amount: int = 1) -> None:
        return None

    def finish(self) -> None:
        return None
