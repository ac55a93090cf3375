"""Transparency-log primitives: RFC 6962 roots against pymerkle, proofs against an independent verifier,
C2SP signed notes against the spec's example, checkpoints and tlog-proof documents."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymerkle import InmemoryTree

from mlcustody.errors import UsageError
from mlcustody.ledger import tlog

# The example of c2sp.org/signed-note (v1.1.0, section "Verifier keys" / example): its verifier key and the note
# it signs. Copied byte for byte; also quoted in the research notes (attestation-tracking.md §4) and used as a
# test vector by other implementations. If it stops verifying, our code is wrong, not the spec.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def _h(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# An independent verifier, written from the recursive definitions of RFC 6962 §2.1.1-2.1.2 (PATH and SUBPROOF)
# rather than the bit-twiddling algorithms of RFC 9162 that the library implements.


def _root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    if size == 1:
        return leaf if not path else None
    if not path:
        return None
    k = _k(size)
    if index < k:
        sub = _root_from_path(index, k, leaf, path[:-1])
        return None if sub is None else _h(sub, path[-1])
    sub = _root_from_path(index - k, size - k, leaf, path[:-1])
    return None if sub is None else _h(path[-1], sub)


def _independent_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    return 0 <= index < size and _root_from_path(index, size, leaf, path) == root


def _roots_from_subproof(m: int, n: int, whole: bool, old_root: bytes, path: list[bytes]) -> tuple[bytes, bytes] | None:
    """(old subtree hash, new subtree hash) rebuilt from SUBPROOF(m, D[n], whole); the last hash is the top one."""
    if m == n:
        if whole:
            return (old_root, old_root) if not path else None
        return (path[0], path[0]) if len(path) == 1 else None
    if not path:
        return None
    k = _k(n)
    if m <= k:
        sub = _roots_from_subproof(m, k, whole, old_root, path[:-1])
        return None if sub is None else (sub[0], _h(sub[1], path[-1]))
    sub = _roots_from_subproof(m - k, n - k, False, old_root, path[:-1])
    return None if sub is None else (_h(path[-1], sub[0]), _h(path[-1], sub[1]))


def _independent_consistency(old: int, new: int, old_root: bytes, new_root: bytes, path: list[bytes]) -> bool:
    if not 0 < old < new:
        return False
    got = _roots_from_subproof(old, new, True, old_root, path)
    return got == (old_root, new_root)


def _entry(i: int) -> bytes:
    return f"decision {i}".encode()


@pytest.fixture(scope="module")
def tree64() -> tlog.Tree:
    return tlog.Tree(tlog.leaf_hash(_entry(i)) for i in range(64))


def test_hashing_rules() -> None:
    assert hashlib.sha256(b"").digest() == tlog.EMPTY_ROOT
    assert tlog.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert tlog.Tree().root() == tlog.EMPTY_ROOT
    assert tlog.Tree([tlog.leaf_hash(b"x")]).root() == tlog.leaf_hash(b"x")


def test_roots_equal_pymerkle_for_every_size_up_to_1025() -> None:
    oracle = InmemoryTree(algorithm="sha256")
    tree = tlog.Tree()
    assert tree.root() == oracle.get_root() == tlog.EMPTY_ROOT
    current: list[bytes] = [tree.root()]
    for i in range(1025):
        oracle.append_entry(_entry(i))
        tree.append_entry(_entry(i))
        current.append(tree.root())
        assert current[-1] == oracle.get_root(), f"size {i + 1}"
    for size in range(1026):  # past sizes are rebuilt from stored subtrees, not from the right-edge stack
        assert tree.root(size) == current[size], f"root({size})"


def test_inclusion_proofs_verify_for_all_sizes_up_to_64(tree64: tlog.Tree) -> None:
    for size in range(1, 65):
        root = tree64.root(size)
        for index in range(size):
            path = tree64.inclusion_proof(index, size)
            leaf = tree64.leaf(index)
            assert _independent_inclusion(leaf, index, size, path, root), (index, size)
            assert tlog.verify_inclusion(leaf, index, size, path, root), (index, size)


def test_consistency_proofs_verify_for_all_sizes_up_to_64(tree64: tlog.Tree) -> None:
    for new in range(1, 65):
        for old in range(1, new):
            path = tree64.consistency_proof(old, new)
            old_root, new_root = tree64.root(old), tree64.root(new)
            assert _independent_consistency(old, new, old_root, new_root, path), (old, new)
            assert tlog.verify_consistency(old, new, old_root, new_root, path), (old, new)
        assert tree64.consistency_proof(new, new) == []
        assert tlog.verify_consistency(new, new, tree64.root(new), tree64.root(new), [])
        assert tlog.verify_consistency(0, new, tlog.EMPTY_ROOT, tree64.root(new), [])


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def test_tampered_inclusion_proofs_fail(tree64: tlog.Tree) -> None:
    for size in (1, 2, 3, 7, 8, 33, 64):
        root = tree64.root(size)
        for index in range(size):
            path = tree64.inclusion_proof(index, size)
            leaf = tree64.leaf(index)
            assert not tlog.verify_inclusion(_flip(leaf), index, size, path, root)
            assert not tlog.verify_inclusion(leaf, index, size, path, _flip(root))
            assert not tlog.verify_inclusion(leaf, index, size, [*path, leaf], root)
            assert not tlog.verify_inclusion(leaf, size, size, path, root)
            if size > 1:
                assert not tlog.verify_inclusion(leaf, (index + 1) % size, size, path, root)
                assert not tlog.verify_inclusion(leaf, index, size, path[:-1], root)
            for j in range(len(path)):
                bad = [*path]
                bad[j] = _flip(bad[j])
                assert not tlog.verify_inclusion(leaf, index, size, bad, root)


def test_tampered_consistency_proofs_fail(tree64: tlog.Tree) -> None:
    for new in (2, 3, 5, 8, 17, 64):
        for old in range(1, new):
            path = tree64.consistency_proof(old, new)
            old_root, new_root = tree64.root(old), tree64.root(new)
            assert not tlog.verify_consistency(old, new, _flip(old_root), new_root, path)
            assert not tlog.verify_consistency(old, new, old_root, _flip(new_root), path)
            assert not tlog.verify_consistency(old, new, old_root, new_root, [])
            assert not tlog.verify_consistency(old, new, old_root, new_root, [*path, old_root])
            for j in range(len(path)):
                bad = [*path]
                bad[j] = _flip(bad[j])
                assert not tlog.verify_consistency(old, new, old_root, new_root, bad)
    assert not tlog.verify_consistency(0, 5, tree64.root(1), tree64.root(5), [])


def test_rewriting_a_past_entry_breaks_the_stored_consistency_proof() -> None:
    honest = tlog.Tree(tlog.leaf_hash(_entry(i)) for i in range(20))
    old_root = honest.root(9)
    forked = tlog.Tree(tlog.leaf_hash(_entry(i) if i != 4 else b"rewritten") for i in range(20))
    assert forked.root() != honest.root()
    proof = forked.consistency_proof(9, 20)
    assert not tlog.verify_consistency(9, 20, old_root, forked.root(), proof)
    assert tlog.verify_consistency(9, 20, old_root, honest.root(), honest.consistency_proof(9, 20))


def test_bad_arguments_raise_usage_errors(tree64: tlog.Tree) -> None:
    with pytest.raises(UsageError):
        tree64.inclusion_proof(64, 64)
    with pytest.raises(UsageError):
        tree64.root(65)
    with pytest.raises(UsageError):
        tree64.consistency_proof(10, 5)
    with pytest.raises(UsageError):
        tlog.Tree().append(b"short")


# --- signed notes ---


def test_spec_example_note_verifies() -> None:
    key = tlog.parse_vkey(SPEC_VKEY)
    assert key.name == "example.com/foo"
    assert key.key_id.hex() == "530d903a"
    assert str(key) == SPEC_VKEY
    assert tlog.verify_note(SPEC_NOTE, key.name, key.public_key) == "This is an example message.\n"
    with pytest.raises(UsageError, match="does not verify"):
        tlog.verify_note(SPEC_NOTE.replace("example message", "exemplary message"), key.name, key.public_key)


def test_sign_verify_round_trip_and_vkey_format() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    name = "example.org/mlcustody/decisions/log-1"
    while "+" not in tlog.format_vkey(name, public).split("+", 2)[2]:  # base64 holding "+" must parse too
        private = Ed25519PrivateKey.generate()
        public = private.public_key()
    vkey = tlog.format_vkey(name, public)
    parsed = tlog.parse_vkey(vkey)
    assert parsed.public_key == public.public_bytes_raw()
    expected_id = hashlib.sha256(name.encode() + b"\n\x01" + public.public_bytes_raw()).digest()[:4]
    assert parsed.key_id == expected_id
    assert vkey.split("+")[1] == expected_id.hex()

    body = "hello\n\nsecond paragraph\n"
    note = tlog.sign_note(body, name, private)
    assert note.startswith(body + "\n— " + name + " ")
    assert base64.b64decode(note.rsplit(" ", 1)[1])[:4] == expected_id
    assert tlog.verify_note(note, name, public) == body
    assert tlog.verify_note(note, name, public.public_bytes_raw()) == body


def test_wrong_key_and_foreign_signatures() -> None:
    private, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    note = tlog.sign_note("text\n", "log.example", private)
    with pytest.raises(UsageError, match="no signature by"):
        tlog.verify_note(note, "log.example", other.public_key())
    with pytest.raises(UsageError, match="no signature by"):
        tlog.verify_note(note, "other.example", private.public_key())
    # a signature by an unknown key is ignored; ours still verifies
    cosigned = note + tlog.sign_note("text\n", "witness.example", other).split("\n\n", 1)[1]
    assert tlog.verify_note(cosigned, "log.example", private.public_key()) == "text\n"
    assert tlog.verify_note(cosigned, "witness.example", other.public_key()) == "text\n"
    # a key with the right name and key ID whose signature fails rejects the note
    forged = (
        note.rsplit(" ", 1)[0]
        + " "
        + base64.b64encode(tlog.key_id("log.example", private.public_key()) + bytes(64)).decode()
        + "\n"
    )
    with pytest.raises(UsageError, match="does not verify"):
        tlog.verify_note(forged, "log.example", private.public_key())


@pytest.mark.parametrize(
    "note",
    [
        "no blank line\n— a AAAAAAAA\n",
        "text\n\n— a AAAAAAAA",
        "text\n\n- a AAAAAAAAAA==\n",
        "text\n\n— a !!!!\n",
        "te\x01xt\n\n— a AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(UsageError):
        tlog.verify_note(note, "a", bytes(32))


@pytest.mark.parametrize(
    "vkey", ["a+530d903a", "a b+530d903a+AAAA", "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"]
)
def test_bad_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(UsageError):
        tlog.parse_vkey(vkey)


# --- checkpoints and tlog-proof documents ---


def test_checkpoint_body_round_trip() -> None:
    root = hashlib.sha256(b"root").digest()
    body = tlog.checkpoint_body("example.com/log", 42, root)
    assert body == f"example.com/log\n42\n{base64.b64encode(root).decode()}\n"
    assert tlog.parse_checkpoint(body) == tlog.Checkpoint("example.com/log", 42, root)
    with_ext = tlog.checkpoint_body("example.com/log", 42, root, ["ext one"])
    assert tlog.parse_checkpoint(with_ext).extensions == ("ext one",)
    for bad in ("example.com/log\n042\n" + base64.b64encode(root).decode() + "\n", "example.com/log\n42\nAAAA\n"):
        with pytest.raises(UsageError):
            tlog.parse_checkpoint(bad)


def test_tlog_proof_document_verifies_and_rejects_tampering() -> None:
    private = Ed25519PrivateKey.generate()
    origin = "example.com/mlcustody/decisions/test"
    vkey = tlog.format_vkey(origin, private.public_key())
    tree = tlog.Tree(tlog.leaf_hash(_entry(i)) for i in range(1000))
    note = tlog.sign_note(tlog.checkpoint_body(origin, tree.size, tree.root()), origin, private)
    text = tlog.inclusion_proof_text(737, tree.inclusion_proof(737), note, extra=b"decision-id")
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ZGVjaXNpb24taWQ=\nindex 737\n")
    assert text.endswith("\n\n" + note)
    parsed = tlog.parse_proof_text(text)
    assert (parsed.index, parsed.extra, parsed.checkpoint_note) == (737, b"decision-id", note)

    tlog.verify_proof_text(text, _entry(737), vkey)
    tlog.verify_proof_text(text, tlog.leaf_hash(_entry(737)), vkey, prehashed=True)
    with pytest.raises(UsageError, match="not at index"):
        tlog.verify_proof_text(text, _entry(736), vkey)
    with pytest.raises(UsageError, match="no signature by"):
        tlog.verify_proof_text(text, _entry(737), tlog.format_vkey(origin, Ed25519PrivateKey.generate().public_key()))
    with pytest.raises(UsageError, match="not 'elsewhere'"):
        tlog.verify_proof_text(text, _entry(737), vkey, origin="elsewhere")
    lines = text.split("\n")
    lines[3] = base64.b64encode(_flip(base64.b64decode(lines[3]))).decode()
    with pytest.raises(UsageError, match="not at index"):
        tlog.verify_proof_text("\n".join(lines), _entry(737), vkey)
    forked = text.replace(f"\n{tree.size}\n", f"\n{tree.size + 1}\n")
    with pytest.raises(UsageError, match="does not verify"):
        tlog.verify_proof_text(forked, _entry(737), vkey)
    with pytest.raises(UsageError):
        tlog.parse_proof_text(text.replace("index 737", "index 0737"))


def test_forked_checkpoint_at_the_same_size_is_detectable() -> None:
    private = Ed25519PrivateKey.generate()
    honest = tlog.Tree(tlog.leaf_hash(_entry(i)) for i in range(10))
    fork = tlog.Tree(tlog.leaf_hash(_entry(i) if i != 3 else b"other") for i in range(10))
    notes = [tlog.sign_note(tlog.checkpoint_body("log", t.size, t.root()), "log", private) for t in (honest, fork)]
    a, b = (tlog.parse_checkpoint(tlog.verify_note(n, "log", private.public_key())) for n in notes)
    assert a.size == b.size and a.root != b.root  # both validly signed: evidence of a split view


def test_large_tree_proofs_hold() -> None:
    tree = tlog.Tree()
    for i in range(100_003):
        tree.append(hashlib.sha256(i.to_bytes(8, "big")).digest())
    root = tree.root()
    for index in (0, 1, 4095, 65_536, 99_999, 100_002):
        assert tlog.verify_inclusion(tree.leaf(index), index, tree.size, tree.inclusion_proof(index), root)
    for old in (1, 16, 4097, 65_536, 99_000):
        proof = tree.consistency_proof(old)
        assert tlog.verify_consistency(old, tree.size, tree.root(old), root, proof)
        assert _independent_consistency(old, tree.size, tree.root(old), root, proof)


@pytest.mark.parametrize("size", [1, 3, 4, 5, 16, 17, 31, 64, 100])
def test_tiled_tree_equals_tree(size: int) -> None:
    """Roots and proofs from stored tiles of 4 leaves (plus one tile's leaves) equal the whole tree's."""
    leaves = [tlog.leaf_hash(_entry(i)) for i in range(size)]
    whole = tlog.Tree(leaves)
    edge = tlog.Frontier(keep_from=2)
    for leaf in leaves:
        edge.append(leaf)
    tiles = [root for _, root in edge.take(2)]
    read: list[int] = []

    def tile_leaves(tile: int) -> list[bytes]:
        read.append(tile)
        return leaves[tile * 4 : (tile + 1) * 4]

    tiled = tlog.TiledTree(size, 2, tiles, tile_leaves)
    assert tiled.root() == whole.root() == edge.root()
    for old in range(size + 1):
        assert tiled.root(old) == whole.root(old)
        assert tiled.consistency_proof(old, size) == whole.consistency_proof(old, size)
    for index in range(size):
        assert tiled.inclusion_proof(index, size) == whole.inclusion_proof(index, size)
    resumed = tlog.Frontier.unpack(size, edge.packed())
    resumed.append(tlog.leaf_hash(b"next"))
    whole.append(tlog.leaf_hash(b"next"))
    assert resumed.root() == whole.root()


@pytest.mark.parametrize("start", [0, 4, 8, 12, 28])
def test_extend_perfect_equals_extend(start: int) -> None:
    """A whole tile appended as its root leaves the same stack, root and kept tiles as its leaves."""
    before = [tlog.leaf_hash(_entry(i)) for i in range(start)]
    by_leaf, by_root = tlog.Frontier(keep_from=2), tlog.Frontier(keep_from=2)
    by_leaf.extend(before)
    by_root.extend(before)
    for tile in range(5):
        leaves = [tlog.leaf_hash(_entry(1000 * tile + i)) for i in range(4)]
        by_leaf.extend(leaves)
        by_root.extend_perfect(tlog.perfect_root(leaves), 2)
        assert by_root.stack == by_leaf.stack and by_root.size == by_leaf.size
    assert by_root.take(2) == by_leaf.take(2)
    assert by_root.root() == by_leaf.root() == tlog.Tree(by_leaf_leaves(start)).root()


def by_leaf_leaves(start: int) -> list[bytes]:
    leaves = [tlog.leaf_hash(_entry(i)) for i in range(start)]
    return leaves + [tlog.leaf_hash(_entry(1000 * tile + i)) for tile in range(5) for i in range(4)]


def test_extend_perfect_refuses_a_subtree_off_its_boundary() -> None:
    edge = tlog.Frontier(keep_from=2)
    edge.append(tlog.leaf_hash(b"one"))
    with pytest.raises(UsageError):
        edge.extend_perfect(bytes(32), 2)
    with pytest.raises(UsageError):
        tlog.perfect_root([bytes(32)] * 3)
