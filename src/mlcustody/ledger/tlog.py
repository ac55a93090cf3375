"""Transparency-log primitives: RFC 6962/9162 Merkle trees, C2SP checkpoints, signed notes and proofs.

A pure library (hashlib and ``cryptography``; no database, no I/O). See docs/transparency-log.md.

- Hashing (RFC 9162 §2.1.1, SHA-256): ``MTH({}) = SHA-256("")``, leaf ``SHA-256(0x00 || entry)``,
  node ``SHA-256(0x01 || left || right)``, the left part holding the largest power of two smaller than n.
- ``Tree``: append-only tree over 32-byte leaf hashes, with roots of any past size, inclusion and
  consistency proofs (RFC 9162 §2.1.3.1, §2.1.4.1) and the stand-alone verifiers of §2.1.3.2 and §2.1.4.2.
- ``checkpoint_body`` / ``parse_checkpoint``: the c2sp.org/tlog-checkpoint note text.
- ``sign_note`` / ``verify_note`` and ``VerifierKey``: c2sp.org/signed-note with Ed25519 (type 0x01).
- ``inclusion_proof_text`` / ``parse_proof_text`` / ``verify_proof_text``: c2sp.org/tlog-proof@v1.

Over 400 lines on purpose: one implementation of the transparency log (RFC 6962 trees and proofs,
and the c2sp checkpoint, signed-note and proof texts that carry them), reached as the one ``tlog``
namespace; the text formats verify with the tree's own functions, so a split would only cut that
namespace in two.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlcustody.errors import UsageError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
ED25519_TYPE = 0x01
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_SIGNATURES = 64  # the spec asks verifiers to accept at least 16

# Perfect subtrees of height >= _STORED_FROM are kept when they complete (about n/8 extra hashes);
# lower ones are recomputed from the leaves on demand (at most 2**_STORED_FROM - 1 hashes each).
_STORED_FROM = 4

_sha256 = hashlib.sha256
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || entry)."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def perfect_root(leaves: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree over ``leaves`` (a power of two of them), level by level."""
    if not leaves or len(leaves) & (len(leaves) - 1):
        raise UsageError(f"a perfect subtree has a power of two of leaves, not {len(leaves)}")
    level = list(leaves)
    while len(level) > 1:
        level = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of an RFC 6962 tree: what appending and the current root need, O(log n) hashes.

    ``stack`` holds the roots of the perfect subtrees along the right edge, tallest first (one per set
    bit of ``size``). Perfect subtrees of height ``keep_from`` or more are kept in ``levels`` as they
    complete: ``levels[j]`` holds those of height ``keep_from + j``, the first being subtree number
    ``start >> (keep_from + j)``. A frontier can be resumed from a stored ``size`` and ``stack``
    (``packed``/``unpack``), so an appender never needs the leaves written before.
    """

    def __init__(self, size: int = 0, stack: Sequence[bytes] = (), keep_from: int = _STORED_FROM) -> None:
        if len(stack) != size.bit_count():
            raise UsageError(f"a tree of {size} leaves has {size.bit_count()} right-edge roots, got {len(stack)}")
        self.size = size
        self.start = size
        self.stack = [bytes(h) for h in stack]
        self.keep_from = keep_from
        self.levels: list[bytearray] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order (one tight loop: this is on the decision log's ingest path)."""
        stack, levels, keep_from, sha256 = self.stack, self.levels, self.keep_from, _sha256
        size = self.size
        for leaf in leaves:
            h = leaf
            size += 1
            completed = size
            height = 0
            while not completed & 1:  # each trailing zero of the new size closes one perfect subtree
                h = sha256(b"\x01" + stack.pop() + h).digest()
                height += 1
                completed >>= 1
                if height >= keep_from:
                    j = height - keep_from
                    if j == len(levels):
                        levels.append(bytearray())
                    levels[j] += h
            stack.append(h)
        self.size = size

    def extend_perfect(self, subtree: bytes, height: int) -> None:
        """Add the root of a perfect subtree of ``2**height`` leaves (``perfect_root``) where ``extend``
        would add those leaves one by one: the same stack and kept levels, without hashing the subtree
        again here. The size must be a multiple of ``2**height`` (the subtree starts at a boundary),
        and ``height`` at most ``keep_from`` (the levels below it inside the subtree are not kept)."""
        if self.size & ((1 << height) - 1) or height > self.keep_from:
            raise UsageError(f"a perfect subtree of height {height} cannot be appended at size {self.size}")
        stack, levels, keep_from = self.stack, self.levels, self.keep_from
        h, size = subtree, self.size + (1 << height)
        completed = size >> height
        while True:
            if height >= keep_from:
                j = height - keep_from
                if j == len(levels):
                    levels.append(bytearray())
                levels[j] += h
            if completed & 1:
                break
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            height += 1
            completed >>= 1
        stack.append(h)
        self.size = size

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def take(self, height: int) -> list[tuple[int, bytes]]:
        """The kept perfect subtrees of ``height`` completed since ``start``, as (subtree number, root);
        what was kept is dropped and ``start`` moves to the current size."""
        j = height - self.keep_from
        level = self.levels[j] if 0 <= j < len(self.levels) else b""
        first = self.start >> height
        found = [(first + k, bytes(level[k * HASH_SIZE : (k + 1) * HASH_SIZE])) for k in range(len(level) // HASH_SIZE)]
        self.levels = []
        self.start = self.size
        return found

    def packed(self) -> bytes:
        return b"".join(self.stack)

    @classmethod
    def unpack(cls, size: int, data: bytes, keep_from: int = _STORED_FROM) -> Frontier:
        stack = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, stack, keep_from)


class Tree:
    """An append-only RFC 6962 Merkle tree over 32-byte leaf hashes, held in memory.

    Leaf hashes live in one ``bytearray`` (32 bytes a leaf); ``append`` is amortised O(1) thanks to the
    ``Frontier``, which also keeps every perfect subtree of height ``_STORED_FROM`` or more; roots and
    proofs for any past size cost O(log n) hashes.
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._leaves = bytearray()
        self._edge = Frontier()
        self._size = 0
        self.extend(leaves)

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> int:
        """Add one leaf hash; return its index."""
        if len(leaf) != HASH_SIZE:
            raise UsageError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}", hint="pass leaf_hash(entry)")
        index = self._size
        self._leaves += leaf
        self._edge.append(bytes(leaf))
        self._size = index + 1
        return index

    def append_entry(self, entry: bytes) -> int:
        """Add ``leaf_hash(entry)``; return its index."""
        return self.append(leaf_hash(entry))

    def extend(self, leaves: Iterable[bytes]) -> None:
        batch = [bytes(leaf) for leaf in leaves]
        if any(len(leaf) != HASH_SIZE for leaf in batch):
            raise UsageError(f"a leaf hash is {HASH_SIZE} bytes", hint="pass leaf_hash(entry)")
        self._leaves += b"".join(batch)
        self._edge.extend(batch)
        self._size += len(batch)

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise UsageError(f"leaf index {index} is outside the tree of size {self._size}")
        return self._perfect(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self._check_size(size)
        if size == self._size:
            return self._edge.root()
        return self._range(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), ordered from the leaf's sibling up to the root's child."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise UsageError(f"leaf index {index} is outside the tree of size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._range(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old, D[0:new]); empty when ``old`` is 0 or equals ``new``."""
        new = self._check_size(new)
        if not 0 <= old <= new:
            raise UsageError(f"old size {old} is not between 0 and the new size {new}")
        if old in (0, new):
            return []
        path: list[bytes] = []
        lo, hi = 0, new
        whole = True  # SUBPROOF's b: the subtree is the whole old tree, whose root the verifier has
        while True:
            n, m = hi - lo, old - lo
            if m == n:
                if not whole:
                    path.append(self._range(lo, hi))
                break
            k = _split(n)
            if m <= k:
                path.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._range(lo, lo + k))
                lo += k
                whole = False
        path.reverse()
        return path

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) of a range of leaves the tree holds."""
        if not 0 <= start <= end <= self._size:
            raise UsageError(f"leaves {start}..{end} are outside the tree of size {self._size}")
        return self._range(start, end)

    def frontier(self) -> bytes:
        """The right edge at the current size, as ``Frontier.packed`` writes it."""
        return self._edge.packed()

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise UsageError(f"tree size {size} is outside 0..{self._size}", hint="ask for a size the log has reached")
        return size

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range that lies inside the tree."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if not n & (n - 1) and not start % n:
            height = n.bit_length() - 1
            return self._perfect(height, start >> height)
        k = _split(n)
        return _sha256(b"\x01" + self._range(start, start + k) + self._range(start + k, end)).digest()

    def _perfect(self, height: int, i: int) -> bytes:
        """The root of the i-th perfect subtree of the given height (leaves i*2**height onwards)."""
        if height == 0:
            return bytes(self._leaves[i * HASH_SIZE : (i + 1) * HASH_SIZE])
        if height >= _STORED_FROM:
            level = self._edge.levels[height - _STORED_FROM]
            return bytes(level[i * HASH_SIZE : (i + 1) * HASH_SIZE])
        return node_hash(self._perfect(height - 1, 2 * i), self._perfect(height - 1, 2 * i + 1))


class TiledTree(Tree):
    """A stored tree of ``size`` leaves, read only where a proof needs it.

    Storage keeps the roots of its perfect subtrees of height ``height`` (``tiles``) and can return the
    leaf hashes of one tile (``tile_leaves(i)``, leaves ``i * 2**height`` onwards, fewer for the last,
    incomplete tile). A root or proof then costs the hashes of at most two tiles' leaves plus the tiles
    above them, whatever the log's size.
    """

    def __init__(
        self, size: int, height: int, tiles: Sequence[bytes], tile_leaves: Callable[[int], Sequence[bytes]]
    ) -> None:
        super().__init__()
        self._size = size
        self._height = height
        self._tiles = tiles
        self._tile_leaves = tile_leaves
        self._loaded: dict[int, Sequence[bytes]] = {}
        self._memo: dict[tuple[int, int], bytes] = {}

    def root(self, size: int | None = None) -> bytes:
        return self._range(0, self._check_size(size))

    def _perfect(self, height: int, i: int) -> bytes:
        if height == self._height:
            return bytes(self._tiles[i])
        key = (height, i)
        found = self._memo.get(key)
        if found is None:
            if height == 0:
                tile, offset = divmod(i, 1 << self._height)
                if tile not in self._loaded:
                    self._loaded[tile] = self._tile_leaves(tile)
                found = bytes(self._loaded[tile][offset])
            else:
                found = node_hash(self._perfect(height - 1, 2 * i), self._perfect(height - 1, 2 * i + 1))
            self._memo[key] = found
        return found


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree ``root`` of ``size``?"""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``new_root`` of size ``new`` an append-only extension of ``old_root``?

    Edge cases the RFC leaves to the caller: ``old == new`` needs an empty proof and equal roots;
    ``old == 0`` needs an empty proof and ``old_root`` equal to the empty-tree root.
    """
    if not 0 <= old <= new or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if not old & (old - 1):  # old is an exact power of two: its root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- c2sp.org/tlog-checkpoint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The parsed text of a checkpoint note: origin, tree size, root hash and any extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root, self.extensions)


def checkpoint_body(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint note text: ``origin\\nsize\\nbase64(root)\\n`` plus optional extension lines."""
    _check_line(origin, "checkpoint origin")
    if size < 0:
        raise UsageError(f"tree size {size} is negative")
    if len(root) != HASH_SIZE:
        raise UsageError(f"a root hash is {HASH_SIZE} bytes, got {len(root)}")
    for line in extensions:
        _check_line(line, "checkpoint extension line")
    lines = [origin, str(size), _b64(root), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse checkpoint note text (the note body, without signatures)."""
    if not body.endswith("\n"):
        raise _bad_format("checkpoint text must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise _bad_format("a checkpoint has an origin, a size and a root hash line")
    origin, size_text, root_text, *extensions = lines
    if not origin or not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise _bad_format(f"bad checkpoint origin or size line: {origin!r}, {size_text!r}")
    root = _unb64(root_text, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise _bad_format(f"the checkpoint root hash is {len(root)} bytes, not {HASH_SIZE}")
    if any(not line for line in extensions):
        raise _bad_format("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


# --- c2sp.org/signed-note with Ed25519 -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 note verifier key: ``name+hex(key id)+base64(0x01 || public key)``."""

    name: str
    key_id: bytes
    public_key: bytes

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ED25519_TYPE]) + self.public_key)}"


def key_id(name: str, public_key: bytes | Ed25519PublicKey) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4], the signed-note Ed25519 key ID."""
    _check_key_name(name)
    raw = _raw_public(public_key)
    return _sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + raw).digest()[:4]


def verifier_key(name: str, public_key: bytes | Ed25519PublicKey) -> VerifierKey:
    raw = _raw_public(public_key)
    return VerifierKey(name, key_id(name, raw), raw)


def format_vkey(name: str, public_key: bytes | Ed25519PublicKey) -> str:
    """The verifier key string for ``name`` and an Ed25519 public key."""
    return str(verifier_key(name, public_key))


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse ``name+hexkeyid+base64(0x01||pubkey)``; the key ID must match the name and key."""
    parts = vkey.strip().split("+", 2)  # the base64 part may itself hold "+"
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise UsageError(f"not a note verifier key: {vkey!r}", hint="write NAME+KEYID(8 hex)+BASE64(0x01||PUBKEY)")
    name, hex_id, blob_text = parts
    _check_key_name(name)
    blob = _unb64(blob_text, "verifier key")
    if len(blob) != 1 + 32 or blob[0] != ED25519_TYPE:
        raise UsageError(
            f"verifier key {name!r} is not an Ed25519 (type 0x01) key",
            hint="only Ed25519 note keys are supported",
        )
    key = verifier_key(name, blob[1:])
    if key.key_id.hex() != hex_id:
        raise UsageError(f"verifier key {name!r}: key ID {hex_id} does not match the name and public key")
    return key


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign note text with Ed25519: ``body``, a blank line, ``— name base64(keyid || signature)``."""
    _check_note_text(body)
    _check_key_name(name)
    kid = key_id(name, private_key.public_key())
    signature = private_key.sign(body.encode())
    return f"{body}\n— {name} {_b64(kid + signature)}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (key name, base64-decoded signature) pairs, unverified."""
    if not note.endswith("\n") or _CONTROL.search(note):
        raise _bad_note("a signed note ends with a newline and has no control characters but newlines")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise _bad_note("no blank line separates the text from the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _bad_note(f"more than {MAX_SIGNATURES} signature lines")
    signatures: list[tuple[str, bytes]] = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != "—" or not fields[1]:
            raise _bad_note(f"malformed signature line {line!r}")
        blob = _unb64(fields[2], "note signature")
        if len(blob) < 5:
            raise _bad_note(f"signature by {fields[1]!r} is too short")
        signatures.append((fields[1], blob))
    return text, signatures


def verify_note(note: str, name: str, public_key: bytes | Ed25519PublicKey) -> str:
    """Return the note text if the key ``name`` signed it; raise ``UsageError`` otherwise.

    Signatures by other keys (another name, or the same name with another key ID) are ignored, as the spec
    requires; a signature by this key that fails rejects the whole note.
    """
    key = verifier_key(name, public_key)
    text, signatures = split_note(note)
    verifier = Ed25519PublicKey.from_public_bytes(key.public_key)
    verified = False
    for signer, blob in signatures:
        if signer != key.name or blob[:4] != key.key_id:
            continue
        try:
            verifier.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise UsageError(
                f"the signature by {key} on this note does not verify",
                hint="the note was altered or signed with another key; do not trust its text",
            ) from None
        verified = True
    if not verified:
        raise UsageError(
            f"the note carries no signature by {key}",
            hint="check that you hold the right verifier key for this log",
        )
    return text


# --- c2sp.org/tlog-proof@v1 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof: entry index, inclusion path, the signed checkpoint note, and unauthenticated extra."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def inclusion_proof_text(index: int, proof: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None) -> str:
    """A ``c2sp.org/tlog-proof@v1`` document (store it as ``*.tlog-proof``)."""
    if index < 0:
        raise UsageError(f"entry index {index} is negative")
    if any(len(p) != HASH_SIZE for p in proof):
        raise UsageError(f"every inclusion-proof hash is {HASH_SIZE} bytes")
    split_note(checkpoint_note)
    lines = [PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {_b64(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64(p) for p in proof)
    return "\n".join(lines) + "\n\n" + checkpoint_note


def parse_proof_text(text: str) -> TlogProof:
    """Parse a ``c2sp.org/tlog-proof@v1`` document without verifying anything."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != PROOF_HEADER:
        raise _bad_proof(f"a tlog proof starts with {PROOF_HEADER!r} and has a blank line before its checkpoint")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _unb64(rest.pop(0)[len("extra ") :], "tlog-proof extra data")
    if not rest or not re.fullmatch(r"index (0|[1-9][0-9]*)", rest[0]):
        raise _bad_proof("the line after the header (and optional extra) must be `index N`")
    index = int(rest[0][len("index ") :])
    proof = tuple(_unb64(line, "inclusion-proof hash") for line in rest[1:])
    if any(len(p) != HASH_SIZE for p in proof):
        raise _bad_proof(f"every inclusion-proof hash is {HASH_SIZE} bytes")
    return TlogProof(index, proof, note, extra)


def verify_proof_text(
    text: str,
    entry_or_leaf_hash: bytes,
    vkey: str | VerifierKey,
    *,
    prehashed: bool = False,
    origin: str | None = None,
) -> None:
    """Verify a tlog-proof offline: the checkpoint's signature by ``vkey`` and the entry's inclusion under it.

    ``entry_or_leaf_hash`` is the logged entry, or its leaf hash when ``prehashed``. The checkpoint origin must
    equal ``origin`` (default: the verifier key's name, as c2sp.org/tlog-checkpoint recommends). Raises
    ``UsageError`` on any failure; returns nothing when the proof holds.
    """
    key = parse_vkey(vkey) if isinstance(vkey, str) else vkey
    parsed = parse_proof_text(text)
    checkpoint = parse_checkpoint(verify_note(parsed.checkpoint_note, key.name, key.public_key))
    expected_origin = key.name if origin is None else origin
    if checkpoint.origin != expected_origin:
        raise UsageError(
            f"the checkpoint is for log {checkpoint.origin!r}, not {expected_origin!r}",
            hint="pass origin= when the log's key name differs from its origin",
        )
    leaf = entry_or_leaf_hash if prehashed else leaf_hash(entry_or_leaf_hash)
    if not verify_inclusion(leaf, parsed.index, checkpoint.size, parsed.proof, checkpoint.root):
        raise UsageError(
            f"the entry is not at index {parsed.index} of {checkpoint.origin} at size {checkpoint.size}",
            hint="the proof or the entry was altered, or the proof is for another entry",
        )


# --- helpers ---------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not standard base64: {text[:60]!r}") from None
    if _b64(data) != text:
        raise UsageError(f"{what} is not canonical base64: {text[:60]!r}")
    return data


def _raw_public(public_key: bytes | Ed25519PublicKey) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes_raw()
    if len(public_key) != 32:
        raise UsageError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return bytes(public_key)


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise UsageError(f"bad note key name {name!r}", hint="use a non-empty name without spaces or '+'")


def _check_line(line: str, what: str) -> None:
    if not line or "\n" in line or _CONTROL.search(line):
        raise UsageError(f"bad {what} {line!r}", hint="use one non-empty line without control characters")


def _check_note_text(body: str) -> None:
    if not body.endswith("\n") or _CONTROL.search(body):
        raise UsageError("note text must end with a newline and hold no control characters but newlines")


def _bad_format(what: str) -> UsageError:
    return UsageError(what, hint="see c2sp.org/tlog-checkpoint")


def _bad_note(what: str) -> UsageError:
    return UsageError(what, hint="see c2sp.org/signed-note")


def _bad_proof(what: str) -> UsageError:
    return UsageError(what, hint="see c2sp.org/tlog-proof")
