"""Layer 1: objects, manifests, the stat cache, snapshots, checkout and diff."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import write_tree
from mlcustody.errors import PathError, WouldOverwrite
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage import snapshot
from mlcustody.storage.checkout import checkout
from mlcustody.storage.diff import diff_entries
from mlcustody.storage.dir_manifest import Entry
from mlcustody.storage.objects import ObjectStore
from mlcustody.storage.statcache import RACY_NS, NoStatCache, StatCache, StatKey


@pytest.fixture
def objects(tmp_path: Path) -> ObjectStore:
    store = ObjectStore(tmp_path / "store")
    store.create()
    return store


def test_put_bytes_is_content_addressed_read_only_and_deduplicated(objects: ObjectStore) -> None:
    digest = objects.put_bytes(b"hello")
    assert digest == blake3.blake3(b"hello").hexdigest()
    path = objects.path(digest)
    assert path.parent.name == digest[:2] and path.name == digest[2:]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    inode = path.stat().st_ino
    assert objects.put_bytes(b"hello") == digest
    assert path.stat().st_ino == inode  # not rewritten
    assert list(objects.iter_digests()) == [digest]
    assert list(objects.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("size", [0, 1, 4 << 20, (4 << 20) + 12345])
def test_put_file_small_and_large(objects: ObjectStore, tmp_path: Path, size: int) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(size))
    digest, stored = objects.put_file(source)
    assert stored == size
    assert digest == blake3.blake3(source.read_bytes()).hexdigest()
    assert objects.path(digest).read_bytes() == source.read_bytes()
    assert objects.check(digest) is None


def test_hardlink_mode_shares_the_inode_and_makes_it_read_only(objects: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom((4 << 20) + 1))
    digest, _ = objects.put_file(source, "hardlink")
    assert objects.path(digest).stat().st_ino == source.stat().st_ino
    assert not source.stat().st_mode & 0o222


def test_reflink_on_a_filesystem_without_it_is_a_clear_usage_error(objects: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom((4 << 20) + 1))
    try:
        objects.put_file(source, "reflink")
    except PathError:
        pytest.fail("reflink failure must not look like a bad path")
    except Exception as exc:
        assert "reflink" in str(exc)
        assert list(objects.tmp_dir.iterdir()) == []  # nothing left behind
    else:
        assert objects.check(blake3.blake3(source.read_bytes()).hexdigest()) is None


def test_check_names_corruption_and_absence(objects: ObjectStore) -> None:
    digest = objects.put_bytes(b"payload")
    path = objects.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"pAyload")
    assert "hashes to" in (objects.check(digest) or "")
    path.unlink()
    assert objects.check(digest) == "missing"


def test_a_damaged_object_of_wrong_length_is_replaced_on_the_next_put(objects: ObjectStore) -> None:
    digest = objects.put_bytes(b"payload")
    objects.path(digest).chmod(0o644)
    objects.path(digest).write_bytes(b"pay")
    assert objects.put_bytes(b"payload") == digest
    assert objects.check(digest) is None


# -- manifests --------------------------------------------------------------------------------

_paths = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12
    ).map(lambda name: name if name not in (".", "..") else name + "_"),
    min_size=0,
    max_size=20,
    unique=True,
)


@settings(max_examples=200, deadline=None)
@given(names=_paths, data=st.data())
def test_manifest_round_trips_and_is_order_independent(names: list[str], data: st.DataObject) -> None:
    entries = [
        Entry(name, data.draw(st.integers(0, 2**40)), data.draw(st.sampled_from([0o644, 0o755])), "ab" * 32)
        for name in names
    ]
    encoded = manifest.encode(entries)
    assert manifest.decode(encoded) == sorted(entries, key=lambda e: e.path.encode())
    shuffled = data.draw(st.permutations(entries))
    assert manifest.encode(shuffled) == encoded


def test_manifest_encoding_is_the_documented_one() -> None:
    entries = [Entry("b/x y.csv", 3, 0o755, "1" * 64), Entry("a\nb\\c", 0, 0o644, "2" * 64)]
    assert manifest.encode(entries) == (
        b"mlcustody-manifest/v1\n" + b"2" * 64 + b" 0 644 a\\nb\\\\c\n" + b"1" * 64 + b" 3 755 b/x y.csv\n"
    )


@pytest.mark.parametrize(
    "bad",
    [
        b"not a manifest\n",
        b"mlcustody-manifest/v1",
        b"mlcustody-manifest/v1\n" + b"1" * 64 + b" 1 644 b\n" + b"1" * 64 + b" 1 644 a\n",
    ],
)
def test_manifest_decode_refuses_non_canonical_input(bad: bytes) -> None:
    with pytest.raises(ValueError):
        manifest.decode(bad)


# -- stat cache -------------------------------------------------------------------------------


def test_stat_cache_hits_only_for_unchanged_and_not_racy_files(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.db")
    path = tmp_path / "f"
    path.write_bytes(b"one")
    old = time.time_ns() - 10 * RACY_NS
    os.utime(path, ns=(old, old))
    key = StatKey.of(path.stat())
    cache.put_many([(key, "d1")], hashed_ns=time.time_ns())
    assert cache.get_many([key]) == ["d1"]
    path.write_bytes(b"two")  # new mtime → miss
    assert cache.get_many([StatKey.of(path.stat())]) == [None]
    racy = StatKey.of(path.stat())
    cache.put_many([(racy, "d2")], hashed_ns=racy.mtime_ns + 1)  # hashed in the same tick as the write
    assert cache.get_many([racy]) == [None]
    cache.close()


def test_corrupt_stat_cache_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "stat.db"
    db.write_bytes(b"garbage" * 100)
    cache = StatCache(db)
    assert cache.get_many([StatKey(1, 2, 3, 4)]) == [None]
    cache.close()


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_of_a_directory_is_its_manifest_digest(tmp_path: Path, objects: ObjectStore) -> None:
    data = write_tree(tmp_path / "data", {"a.txt": "a", "sub/b.txt": "bb", ".git/x": "ignored"})
    (data / "run.sh").write_text("#!/bin/sh\n")
    (data / "run.sh").chmod(0o755)
    snap = snapshot.take(data, objects=objects)
    assert snap.kind == "dir"
    assert [e.path for e in snap.entries] == ["a.txt", "run.sh", "sub/b.txt"]
    assert snap.digest == blake3.blake3(manifest.encode(snap.entries)).hexdigest()
    assert objects.exists(snap.digest)
    assert [e.mode for e in snap.entries] == [0o644, 0o755, 0o644]
    assert snapshot.take(data).digest == snap.digest  # hashing alone agrees with storing


def test_snapshot_uses_the_stat_cache_instead_of_reading(
    tmp_path: Path, objects: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_tree(tmp_path / "data", {f"f{i}.txt": str(i) for i in range(300)})
    old = time.time_ns() - 10 * RACY_NS
    for path in data.iterdir():
        os.utime(path, ns=(old, old))
    cache = StatCache(tmp_path / "stat.db")
    first = snapshot.take(data, objects=objects, cache=cache)

    def no_reading(path: object) -> str:
        raise AssertionError(f"{path} was read although the stat cache knew it")

    monkeypatch.setattr(snapshot, "hash_file", no_reading)
    assert snapshot.take(data, cache=cache).digest == first.digest
    (data / "f7.txt").write_text("changed")  # a changed file must be read again
    with pytest.raises(AssertionError, match=r"f7\.txt"):
        snapshot.take(data, cache=cache)
    cache.close()


def test_snapshot_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(PathError, match="does not exist"):
        snapshot.take(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(PathError, match="broken symbolic link"):
        snapshot.take(tmp_path / "d")


# -- diff and checkout ------------------------------------------------------------------------


def test_diff_entries() -> None:
    old = [Entry("a", 1, 0o644, "1" * 64), Entry("b", 1, 0o644, "2" * 64), Entry("c", 1, 0o644, "3" * 64)]
    new = [Entry("a", 1, 0o644, "1" * 64), Entry("b", 1, 0o755, "2" * 64), Entry("d", 1, 0o644, "4" * 64)]
    changes = diff_entries(old, new)
    assert [c.path for c in changes.added] == ["d"]
    assert [c.path for c in changes.removed] == ["c"]
    assert [c.path for c in changes.modified] == ["b"]
    assert changes.unchanged == 1


@pytest.mark.parametrize("link_mode", ["copy", "hardlink", "symlink"])
def test_checkout_restores_byte_identical_files(tmp_path: Path, objects: ObjectStore, link_mode: str) -> None:
    files = {"a.bin": os.urandom(5000), "deep/er/b.bin": os.urandom(10), "empty": b""}
    data = write_tree(tmp_path / "data", files)
    snap = snapshot.take(data, objects=objects)
    cache = StatCache(tmp_path / "stat.db")
    target = tmp_path / "restored"
    result = checkout("dir", snap.entries, target, objects=objects, cache=cache, link_mode=link_mode)
    assert result.written == 3
    for rel, content in files.items():
        assert (target / rel).read_bytes() == content
    assert snapshot.take(target).digest == snap.digest
    again = checkout("dir", snap.entries, target, objects=objects, cache=cache, link_mode=link_mode)
    assert (again.written, again.unchanged) == (0, 3)
    cache.close()


def test_checkout_refuses_to_destroy_unsaved_changes(tmp_path: Path, objects: ObjectStore) -> None:
    data = write_tree(tmp_path / "data", {"a.txt": "v1", "b.txt": "keep"})
    snap = snapshot.take(data, objects=objects)
    cache = StatCache(tmp_path / "stat.db")
    (data / "a.txt").write_text("unsaved edit")
    (data / "new.txt").write_text("unsaved file")
    with pytest.raises(WouldOverwrite, match=r"overwrite a\.txt, whose changes .* and delete new\.txt, which is not"):
        checkout("dir", snap.entries, data, objects=objects, cache=cache)
    assert (data / "a.txt").read_text() == "unsaved edit"  # nothing touched
    result = checkout("dir", snap.entries, data, objects=objects, cache=cache, force=True)
    assert (result.written, result.deleted) == (1, 1)
    assert (data / "a.txt").read_text() == "v1" and not (data / "new.txt").exists()
    cache.close()


def test_checkout_over_a_stored_older_state_needs_no_force(tmp_path: Path, objects: ObjectStore) -> None:
    data = write_tree(tmp_path / "data", {"a.txt": "v1", "sub/old.txt": "old"})
    v1 = snapshot.take(data, objects=objects)
    (data / "a.txt").write_text("v2")
    (data / "sub" / "old.txt").unlink()
    v2 = snapshot.take(data, objects=objects)
    cache = NoStatCache()
    checkout("dir", v1.entries, data, objects=objects, cache=cache)  # type: ignore[arg-type]
    assert snapshot.take(data).digest == v1.digest
    checkout("dir", v2.entries, data, objects=objects, cache=cache)  # type: ignore[arg-type]
    assert snapshot.take(data).digest == v2.digest
    assert not (data / "sub").exists()  # emptied directories are pruned
