"""The workspace boundary for what ``add`` reads: symbolic links and special files.

``add /etc/hostname`` is refused because the path is outside the workspace; a symbolic link inside
an added directory (or an added path that is itself a link) must not be a way around that. The rule
is the same for links as for paths: a link is followed only when its target, fully resolved, is
inside the workspace and not inside the store (``.custody``, which holds the database and the
private keys); otherwise the add is refused, naming the link and its target. A link to a directory
that contains it (a loop) is refused too. A FIFO, socket or device file is named and refused rather
than skipped: reading a FIFO would block, and skipping it would version a directory silently
incomplete.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlcustody.errors import PathError

STORE_DIRNAME = ".custody"
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class Boundary:
    """What an add may read: the resolved workspace root, minus its store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.store = self.root / STORE_DIRNAME

    def check(self, path: str) -> None:
        """Refuse ``path`` (a link, or a path through links) whose resolved target leaves the boundary."""
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(self.root):
            raise PathError(
                f"{path} is a symbolic link to {target}, outside the workspace {self.root}",
                hint="copy the file into the workspace, or remove the link (links are followed only inside it)",
            )
        if target.is_relative_to(self.store):
            raise PathError(f"{path} is a symbolic link into the store ({target})", hint="remove the link")


def special_kind(mode: int) -> str | None:
    """What a file that is neither regular nor a directory is (``a FIFO (named pipe)``, …), else None."""
    return next((what for test, what in _SPECIAL if test(mode)), None)


def refuse_special(path: str, mode: int) -> None:
    what = special_kind(mode)
    if what is not None:
        raise PathError(
            f"{path} is {what}, which cannot be versioned",
            hint="move it out of the directory, or add the regular files beside it one by one",
        )
