"""BLAKE3-256 of files: memory-mapped and multi-threaded for large files, one read for small ones."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

# Below this size a single read() beats setting up a memory map and worker threads.
MMAP_THRESHOLD = 4 << 20


def hash_file(path: Path | str) -> str:
    """Hex BLAKE3-256 of the file's bytes."""
    path = os.fspath(path)
    if os.path.getsize(path) < MMAP_THRESHOLD:
        with open(path, "rb") as handle:
            return blake3.blake3(handle.read()).hexdigest()
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()
