"""Placing an object's bytes at a workspace path in one of the four link modes.

``copy`` gives an independent, writable file; ``hardlink`` and ``symlink`` point at the read-only
object (no extra space; editing requires replacing the file, as DVC's "protected" mode); ``reflink``
shares extents copy-on-write where the filesystem supports it. Every placement is atomic: the file
is made under a temporary name in the destination directory and renamed over the target.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

from mlcustody.storage.objects import copy_range, reflink

_counter = itertools.count()


def place(obj: Path, target: Path, mode: int, link_mode: str) -> None:
    """Make ``target`` hold the bytes of object file ``obj`` (mode 644/755 for copies)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.custody-{os.getpid()}-{next(_counter)}.tmp"
    try:
        if link_mode == "hardlink":
            os.link(obj, tmp)
        elif link_mode == "symlink":
            os.symlink(obj, tmp)
        else:
            with open(obj, "rb") as src, open(tmp, "xb") as dst:
                if link_mode == "reflink":
                    reflink(src.fileno(), dst.fileno(), target)
                else:
                    copy_range(src.fileno(), dst.fileno())
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
