"""The object store: immutable files named by the BLAKE3-256 of their bytes.

Layout: ``objects/<first 2 hex>/<other 62 hex>``, all 256 fan-out directories made at init, every
object read-only (0444). A write goes to ``tmp/`` on the same filesystem and is renamed into place,
so an object either exists whole under its name or not at all; a crash leaves at most a stray temp
file, which ``gc`` removes. The digest is always computed from the bytes actually stored (never
trusted from the source), so an object's name cannot lie even if the source changes mid-copy.

Durability is batched: callers write many objects and then call :meth:`ObjectStore.barrier`
(one ``syncfs``) before they commit metadata that references them. That gives the same guarantee as
an fsync per object — nothing committed ever points at bytes that are not on disk — at the cost of
one flush instead of one per file, which is what makes adding 100,000 small files fast.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from mlcustody._canonical import DIGEST_HEX_LEN, digest_bytes
from mlcustody.errors import DiskFull, PathError, StoreReadOnly, UsageError
from mlcustody.storage.hashing import MMAP_THRESHOLD, hash_file

READ_ONLY = 0o444
_FICLONE = 0x40049409
_HEX = frozenset("0123456789abcdef")
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
_O_TMPFILE: int | None = getattr(os, "O_TMPFILE", None)
_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400
_linkat = getattr(_libc, "linkat", None)
if _linkat is not None:
    _linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
_CHUNK = 64 << 20
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]


def is_digest(text: str) -> bool:
    return len(text) == DIGEST_HEX_LEN and set(text) <= _HEX


class ObjectStore:
    """Content-addressed, deduplicated, read-only objects under one directory."""

    def __init__(self, store_dir: Path) -> None:
        self.objects_dir = store_dir / "objects"
        self.tmp_dir = store_dir / "tmp"
        self._recorders: list[set[str]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[set[str]]:
        """The digests of the objects this store object writes (not those already there) while the
        block runs: what to take back when the command that wrote them is refused."""
        created: set[str] = set()
        self._recorders.append(created)
        try:
            yield created
        finally:
            self._recorders.remove(created)

    def _note(self, digest: str) -> None:
        for created in self._recorders:
            created.add(digest)  # set.add is atomic: the snapshot's threads may call this at once

    def create(self) -> None:
        """Make the directory tree (idempotent); done once by ``custody init``."""
        for prefix in range(256):
            (self.objects_dir / f"{prefix:02x}").mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.objects_dir / digest[:2] / digest[2:]

    def exists(self, digest: str, size: int | None = None) -> bool:
        """True when the object is present (and, if given, has ``size`` bytes)."""
        try:
            st = os.stat(self.path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise UsageError(
                f"object {digest} is missing from the store",
                hint="run `custody verify` to see what is damaged, and restore the object from a copy",
            ) from exc

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its digest (no-op when already present).

        On Linux the bytes go to an anonymous ``O_TMPFILE`` inode in the object's own fan-out directory
        that is then linked under its name: no temporary name exists at any moment, so a crash leaves
        nothing behind, and the filesystem does one directory update instead of three.
        """
        digest = digest_bytes(data)
        if self.exists(digest, len(data)):
            return digest
        with writing(self, f"an object of {len(data)} bytes"):
            if self._link_anonymous(digest, data):
                self._note(digest)
                return digest
            tmp = self._tmp_path()
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, READ_ONLY)
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            self._install(tmp, digest)
        return digest

    def _link_anonymous(self, digest: str, data: bytes) -> bool:
        """Write ``data`` to an O_TMPFILE inode and link it as the object; False where unsupported."""
        if _O_TMPFILE is None or _linkat is None:
            return False
        try:
            fd = os.open(self.objects_dir / digest[:2], _O_TMPFILE | os.O_WRONLY, READ_ONLY)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                return False
            raise
        try:
            _write_all(fd, data)
            source = f"/proc/self/fd/{fd}".encode()
            if _linkat(_AT_FDCWD, source, _AT_FDCWD, bytes(self.path(digest)), _AT_SYMLINK_FOLLOW) != 0:
                code = ctypes.get_errno()
                if code == errno.EEXIST:
                    os.rename(self._relink(fd, digest), self.path(digest))  # replace a damaged copy
                elif code in (errno.ENOENT, errno.EPERM, errno.EXDEV):  # no /proc, or not allowed
                    return False
                else:
                    raise OSError(code, os.strerror(code))
        finally:
            os.close(fd)
        return True

    def _relink(self, fd: int, digest: str) -> Path:
        """Give the anonymous inode a temporary name next to the object (only to replace a bad copy)."""
        tmp = self.path(digest).with_name(f".{digest[2:]}.{os.getpid()}.tmp")
        source = f"/proc/self/fd/{fd}".encode()
        if _linkat is None or _linkat(_AT_FDCWD, source, _AT_FDCWD, bytes(tmp), _AT_SYMLINK_FOLLOW) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return tmp

    def put_file(self, source: Path, link_mode: str = "copy") -> tuple[str, int]:
        """Store the bytes of ``source``; return (digest, size).

        ``hardlink`` shares the source's inode (and makes it read-only, as the object must be);
        ``reflink`` clones extents and fails where the filesystem cannot; ``copy`` and ``symlink``
        copy the bytes (for ``symlink`` the caller then points the workspace file at the object).
        """
        size = os.stat(source).st_size
        if size < MMAP_THRESHOLD and link_mode != "hardlink":
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise PathError(f"cannot read {source}: {exc.strerror}") from exc
            return self.put_bytes(data), len(data)
        tmp = self._tmp_path()
        with writing(self, f"{source} ({size} bytes)"):
            try:
                _materialise_tmp(source, tmp, link_mode)
                os.chmod(tmp, os.stat(tmp).st_mode & 0o555)  # read-only; a hard link keeps its x bits
                digest = hash_file(tmp)
                stored = os.stat(tmp).st_size
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            self._install(tmp, digest)
        return digest, stored

    def barrier(self) -> None:
        """Flush every object written so far to disk (one ``syncfs`` on the store's filesystem)."""
        fd = os.open(self.objects_dir, os.O_RDONLY)
        try:
            if _libc.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def iter_digests(self) -> Iterator[str]:
        """Every object name in the store, in no particular order."""
        for fan in os.scandir(self.objects_dir):
            if fan.is_dir() and len(fan.name) == 2:
                for entry in os.scandir(fan.path):
                    if not entry.name.startswith("."):  # a replacement being written
                        yield fan.name + entry.name

    def check(self, digest: str) -> str | None:
        """Recompute one object's digest; return a problem description or None when intact."""
        path = self.path(digest)
        try:
            actual = hash_file(path)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        return None if actual == digest else f"content hashes to {actual}"

    def remove(self, digest: str) -> int:
        """Delete an object; return the bytes freed (0 if it was already gone)."""
        path = self.path(digest)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def _tmp_path(self) -> Path:
        return self.tmp_dir / f"{os.getpid()}-{threading.get_ident()}-{next(_counter)}.tmp"

    def _install(self, tmp: Path, digest: str) -> None:
        """Rename a finished temp file to its object name, or drop it when the object exists."""
        final = self.path(digest)
        if self.exists(digest, os.stat(tmp).st_size):
            os.unlink(tmp)
            return
        os.rename(tmp, final)  # also replaces a damaged copy of wrong length
        self._note(digest)


@contextlib.contextmanager
def writing(objects: ObjectStore, what: str) -> Iterator[None]:
    """Name a full disk or a read-only store as such (exit 2, one line) instead of a bare OSError."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, UsageError):
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left on the store's disk: {what} was not stored") from exc
        if exc.errno == errno.EROFS or (
            exc.errno in (errno.EACCES, errno.EPERM) and not os.access(objects.objects_dir, os.W_OK)
        ):
            raise StoreReadOnly(
                f"the object store {objects.objects_dir} is read-only: {what} was not stored",
                hint="make the store's objects/ and tmp/ directories writable by this user, or work on a copy",
            ) from exc
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _materialise_tmp(source: Path, tmp: Path, link_mode: str) -> None:
    if link_mode == "hardlink":
        try:
            os.link(source, tmp)
        except OSError as exc:
            raise UsageError(
                f"cannot hard-link {source} into the store: {exc.strerror}",
                hint="hard links need the data and .custody on one filesystem; use --link copy",
            ) from exc
        return
    with open(source, "rb") as src, open(tmp, "xb") as dst:
        if link_mode == "reflink":
            reflink(src.fileno(), dst.fileno(), source)
        else:
            copy_range(src.fileno(), dst.fileno())


def reflink(src_fd: int, dst_fd: int, source: Path) -> None:
    """Clone extents (btrfs, XFS, …); a clear error where the filesystem cannot."""
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL):
            raise UsageError(
                f"the filesystem of {source} does not support reflinks",
                hint="use link mode copy (the default) or hardlink",
            ) from exc
        raise


def copy_range(src_fd: int, dst_fd: int) -> None:
    """Copy a whole file inside the kernel (copy_file_range), falling back to read/write.

    Writeback of each chunk starts as soon as it is copied, so the flush before the metadata commit
    finds almost nothing left to write instead of stalling on a gigabyte of dirty pages.
    """
    size, offset = os.fstat(src_fd).st_size, 0
    try:
        while offset < size:
            done = os.copy_file_range(src_fd, dst_fd, min(_CHUNK, size - offset))
            if done == 0:
                break
            _start_writeback(dst_fd, offset, done)
            offset += done
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or offset:
            raise
        while chunk := os.read(src_fd, 1 << 20):
            _write_all(dst_fd, chunk)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
