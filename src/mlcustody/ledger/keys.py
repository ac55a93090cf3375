"""Signing keys: make, list, rotate, revoke them; sign with one; check a signature against the registry.

A key's public half is a ``signing_keys`` row (audited), its private half a passphrase-encrypted
PKCS#8 PEM file, ``<store>/keys/<keyid>.pem`` (mode 0600), that never enters the database. Two types:

============  ==================  ======================  ==========================================
type          securesystemslib    scheme                  signature
============  ==================  ======================  ==========================================
ecdsa-p256    ``ecdsa``           ``ecdsa-sha2-nistp256`` DER-encoded ECDSA over SHA-256 (the default;
                                                          the only kind OpenSSF model signing accepts)
ed25519       ``ed25519``         ``ed25519``             64 raw bytes (RFC 8032)
============  ==================  ======================  ==========================================

The ``keyid`` is the one securesystemslib gives the key by default — SHA-256 of the OLPC canonical
JSON of ``{keytype, scheme, keyval: {public}}`` where ``public`` is the PEM SubjectPublicKeyInfo
(ECDSA) or the raw public key in hex (Ed25519) — so DSSE envelopes we sign verify there as they are.

A key is valid from its ``created_at`` until it is retired (by ``rotate``, which makes a new key of
the same name at that instant; signatures made before stay valid) or revoked (compromised: none of
its signatures is trusted any more, whenever made). ``check`` applies those rules. Each name has at
most one active key, the one that signs for it.

The passphrase comes from ``CUSTODY_KEY_PASSPHRASE``, else from the ``Prompt`` the interface passed
in (the CLI's asks on the terminal when standard input is one): this layer never reads a terminal.
In CI, ``CUSTODY_SIGNING_KEY`` may hold a private key PEM (encrypted or not) or the path of one: it then
signs instead of the workspace's keys, its public half registered on first use under
the name in ``CUSTODY_SIGNING_KEY_NAME`` (default ``ci``).

Over 400 lines on purpose: the keyring's rules (keyids, validity windows, rotation, revocation) and
its private halves (encrypted files, passphrases, the CI key) check each other at every step; split,
each half would import the other.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.errors import AmbiguousRef, UnknownRef, UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.engine import Database
from mlcustody.metadata.schema import key_events, signing_keys

PASSPHRASE_ENV = "CUSTODY_KEY_PASSPHRASE"
SIGNING_KEY_ENV = "CUSTODY_SIGNING_KEY"
SIGNING_KEY_NAME_ENV = "CUSTODY_SIGNING_KEY_NAME"
DEFAULT_NAME = "default"
LOG_KEY_NAME = "decision-log"  # signs decision-log checkpoints only, never attestations
RESERVED_NAMES = frozenset({LOG_KEY_NAME})
DEFAULT_TYPE = "ecdsa-p256"
CI_NAME = "ci"

Prompt = Callable[[str], str | None]
"""Asks the user for a secret: given the question, what they typed, or None when nobody can be asked
(the interface passes one in; the CLI's reads the terminal without echo)."""
# type → (securesystemslib keytype, scheme)
TYPES: dict[str, tuple[str, str]] = {
    "ecdsa-p256": ("ecdsa", "ecdsa-sha2-nistp256"),
    "ed25519": ("ed25519", "ed25519"),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_HEX = re.compile(r"[0-9a-f]{4,64}")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class KeyInfo:
    """The public half of a registered key and what became of it."""

    keyid: str
    name: str
    type: str  # ecdsa-p256 | ed25519
    scheme: str  # securesystemslib scheme
    public_pem: str
    created_at: str
    actor: str
    retired_at: str | None = None  # replaced by a rotation: signatures made before stay valid
    revoked_at: str | None = None  # compromised: none of its signatures is trusted
    reason: str = ""  # why it was revoked, else why it was retired

    @property
    def status(self) -> str:
        """active | retired | revoked"""
        return "revoked" if self.revoked_at else "retired" if self.retired_at else "active"

    @property
    def valid_from(self) -> str:
        return self.created_at

    @property
    def valid_until(self) -> str | None:
        """When it stopped signing (retired or revoked, whichever came first); None while active."""
        ends = [at for at in (self.retired_at, self.revoked_at) if at]
        return min(ends, key=lambda at: _instant(at, "valid_until")) if ends else None

    @property
    def label(self) -> str:
        return f"{self.name} (keyid {self.keyid})"

    def securesystemslib(self) -> dict[str, Any]:
        """The key as securesystemslib and TUF write it: ``{keytype, scheme, keyval: {public}}``."""
        return _sslib_dict(_load_public(self.public_pem))


@dataclass(frozen=True)
class KeyChange:
    """What ``generate``, ``rotate`` and ``revoke`` did: the key concerned, the key a rotation
    retired, and the last audit event written."""

    key: KeyInfo
    retired: KeyInfo | None
    event: audit.Event


@dataclass(frozen=True)
class Keyring:
    """A workspace's keys: public halves in its database, private halves under ``store_dir/keys``.

    ``witness`` is the workspace's audit witness (advanced after each commit), ``actor`` who acts,
    ``kek_file`` the key file of the decision log's key-encryption key (``ledger.kek``; None: default).
    """

    db: Database
    store_dir: Path
    witness: Path
    actor: str
    kek_file: str | None = None
    prompt: Prompt | None = None


class Signer:
    """Signs bytes with one registered key, its private half decrypted in memory."""

    def __init__(self, key: KeyInfo, private: PrivateKey, event: audit.Event | None = None) -> None:
        self.key = key
        self._private = private
        self.event = event  # the audit event that registered a CI key on this call, else None

    @property
    def keyid(self) -> str:
        return self.key.keyid

    @property
    def scheme(self) -> str:
        return self.key.scheme

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` as securesystemslib's scheme expects it (DER for ECDSA)."""
        if isinstance(self._private, ed25519.Ed25519PrivateKey):
            return self._private.sign(data)
        return self._private.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"Signer({self.key.label})"


# -- keyids ------------------------------------------------------------------------------------------


def compute_keyid(public_pem: str) -> str:
    """securesystemslib's default keyid of a public key (PEM SubjectPublicKeyInfo)."""
    return _keyid(_load_public(public_pem))


def _keyid(public: PublicKey) -> str:
    return hashlib.sha256(_olpc_canonical(_sslib_dict(public)).encode("utf-8")).hexdigest()


def _sslib_dict(public: PublicKey) -> dict[str, Any]:
    keytype, scheme = TYPES[_type_of(public)]
    if isinstance(public, ed25519.Ed25519PublicKey):
        value = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    else:
        value = _pem(public)
    return {"keytype": keytype, "scheme": scheme, "keyval": {"public": value}}


def _olpc_canonical(value: dict[str, Any] | str) -> str:
    """OLPC canonical JSON (what securesystemslib hashes): sorted keys, no whitespace, only ``\\``
    and ``"`` escaped — a PEM's newlines stay raw, unlike RFC 8785. Strings and objects suffice here."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "{" + ",".join(f"{_olpc_canonical(k)}:{_olpc_canonical(v)}" for k, v in sorted(value.items())) + "}"


def _type_of(public: PublicKey) -> str:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return "ecdsa-p256"
    curve = getattr(public, "curve", None)
    what = f"curve {curve.name}" if curve is not None else type(public).__name__
    raise UsageError(f"unsupported key ({what})", hint=f"use one of: {', '.join(TYPES)}")


def _pem(public: PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_public(public_pem: str) -> PublicKey:
    try:
        public = serialization.load_pem_public_key(public_pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError("not a PEM public key", hint="give a PEM SubjectPublicKeyInfo (BEGIN PUBLIC KEY)") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise UsageError(f"unsupported key type {type(public).__name__}", hint=f"use one of: {', '.join(TYPES)}")
    _type_of(public)
    return public


# -- reading -------------------------------------------------------------------------------------------


def listing(conn: Connection) -> list[KeyInfo]:
    """Every registered key with its status, oldest first."""
    return _select(conn)


def get(conn: Connection, ref: str | None) -> KeyInfo:
    """The key a name (its active key, else its newest), a keyid or a keyid prefix names; None: the
    active key that signs attestations by default."""
    if ref is None:
        return _active(conn, None)
    named = _select(conn, signing_keys.c.name == ref)
    if named:
        active = [k for k in named if k.status == "active"]
        return active[-1] if active else named[-1]
    prefix = ref.lower()
    if _HEX.fullmatch(prefix):
        found = _select(conn, signing_keys.c.keyid.startswith(prefix, autoescape=True))
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousRef(
                f"keyid prefix {ref!r} matches {len(found)} keys",
                hint="give more characters of the keyid (see `custody keys ls`)",
            )
    raise UnknownRef(
        f"no signing key named {ref!r} or with that keyid",
        hint="list the keys with `custody keys ls`; make one with `custody keys generate`",
    )


def public_pem(conn: Connection, ref: str) -> str:
    """The PEM public key of the key ``ref`` names (see :func:`get`)."""
    return get(conn, ref).public_pem


def check(conn: Connection, keyid: str, data: bytes, signature: bytes, signed_at: str) -> str | None:
    """None when ``signature`` over ``data`` verifies with key ``keyid`` and the key was valid at
    ``signed_at`` (created_at ≤ signed_at < retired; never when revoked); else why not, in one line."""
    when = _instant(signed_at, "signed_at")
    found = _select(conn, signing_keys.c.keyid == keyid)
    if not found:
        return f"key {keyid} unknown"
    key = found[0]
    if key.revoked_at:
        return f"key {key.label} was revoked on {key.revoked_at} ({key.reason})"
    try:
        public = _load_public(key.public_pem)
    except UsageError:
        return f"key {key.label} has an unreadable public key"
    if not _verifies(public, data, signature):
        return f"signature does not verify with key {key.label}"
    ends = _instant(key.valid_until, "valid_until") if key.valid_until else None
    if when < _instant(key.created_at, "created_at") or (ends is not None and when >= ends):
        until = f" until {key.valid_until}" if key.valid_until else ""
        return f"key {key.label} was not valid at {signed_at} (valid from {key.created_at}{until})"
    return None


def _verifies(public: PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        else:
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _instant(text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError(f"{what} {text!r} is not an RFC 3339 time with a zone", hint="write e.g. 2025-01-31T12:00:00Z")
    return when


def _select(conn: Connection, *where: Any) -> list[KeyInfo]:
    rows = conn.execute(sa.select(signing_keys).where(*where).order_by(signing_keys.c.created_at, signing_keys.c.keyid))
    found = [KeyInfo(**row._mapping) for row in rows]
    if not found:
        return []
    events: dict[str, list[Any]] = {}
    query = sa.select(key_events).where(key_events.c.keyid.in_([k.keyid for k in found]))
    for row in conn.execute(query):
        events.setdefault(row.keyid, []).append(row)
    result = []
    for key in found:
        happened = {row.event: row for row in events.get(key.keyid, [])}
        retired, revoked = happened.get("retired"), happened.get("revoked")
        latest = revoked or retired
        result.append(
            replace(
                key,
                retired_at=retired.at if retired else None,
                revoked_at=revoked.at if revoked else None,
                reason=latest.reason if latest is not None else "",
            )
        )
    return result


def _active(conn: Connection, name: str | None) -> KeyInfo:
    """The active key of ``name``; without a name, the most recent active key that is not reserved
    for another purpose (the decision log signs its checkpoints with its own key)."""
    if name is None:
        found = [k for k in _select(conn) if k.name not in RESERVED_NAMES]
    else:
        found = _select(conn, signing_keys.c.name == name)
    active = [k for k in found if k.status == "active"]
    if active:
        return active[-1]
    if name is None:
        what = f"no active signing key ({len(found)} retired or revoked)" if found else "no signing key yet"
        raise UsageError(what, hint=f"make one with `custody keys generate`, or set {SIGNING_KEY_ENV}")
    if found:
        raise UsageError(
            f"key {name} has no active key: {found[-1].keyid} was {found[-1].status}",
            hint=f"make a new one with `custody keys generate --name {name}`",
        )
    raise UsageError(f"no signing key named {name!r}", hint=f"make one with `custody keys generate --name {name}`")


# -- changing ------------------------------------------------------------------------------------------


def validate(name: str, type: str = DEFAULT_TYPE) -> None:
    """Refuse a key name or type that cannot be used, before anything is asked or written."""
    if type not in TYPES:
        raise UsageError(f"unknown key type {type!r}", hint=f"use one of: {', '.join(TYPES)}")
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid key name {name!r}",
            hint="use 1–200 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def generate(
    ring: Keyring, name: str = DEFAULT_NAME, type: str = DEFAULT_TYPE, *, purpose: str | None = None
) -> KeyChange:
    """Make a key pair: the private half encrypted under the keys directory, the public half registered.

    ``purpose`` names the key in the passphrase prompt and its error when it is not the user's own
    idea (the decision log's key, made on first use): a prompt for a key nobody asked for confuses."""
    validate(name, type)
    with ring.db.read() as conn:
        _refuse_second_active(conn, name)
    secret = ask_passphrase(purpose or f"the new key {name}", ring.prompt, confirm=True)
    private = _new_private(type)
    with ring.db.write() as conn:
        _refuse_second_active(conn, name)
        key, event = _register(conn, ring.store_dir, private, name, ring.actor, "key.generate", secret)
    audit.advance_witness(ring.witness, event)
    return KeyChange(key, None, event)


def rotate(ring: Keyring, ref: str) -> KeyChange:
    """Replace the active key of a name by a new one of the same type; the old one is retired at the
    instant the new one starts, so its earlier signatures stay valid."""
    with ring.db.read() as conn:
        old = _rotatable(conn, ref)
    secret = ask_passphrase(f"the new key {old.name}", ring.prompt, confirm=True)
    private = _new_private(old.type)
    with ring.db.write() as conn:
        old = _rotatable(conn, ref)
        key, _ = _register(conn, ring.store_dir, private, old.name, ring.actor, "key.rotate", secret)
        event = _record_event(conn, old, "retired", f"rotated to {key.keyid}", key.created_at, ring.actor)
        retired = get(conn, old.keyid)
    audit.advance_witness(ring.witness, event)
    return KeyChange(key, retired, event)


def revoke(ring: Keyring, ref: str, reason: str) -> KeyChange:
    """Mark a key compromised: from now on none of its signatures is trusted, whenever made."""
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("a revocation needs a reason", hint="say why, e.g. --reason 'laptop stolen'")
    with ring.db.write() as conn:
        key = get(conn, ref)
        if key.status == "revoked":
            raise UsageError(f"key {key.label} is already revoked", hint="see `custody keys ls`")
        event = _record_event(conn, key, "revoked", reason, utc_now(), ring.actor)
        key = get(conn, key.keyid)
    audit.advance_witness(ring.witness, event)
    return KeyChange(key, None, event)


def _rotatable(conn: Connection, ref: str) -> KeyInfo:
    key = get(conn, ref)
    if key.status != "active":
        raise UsageError(
            f"key {key.label} is {key.status}; only an active key can be rotated",
            hint=f"make a new one with `custody keys generate --name {key.name}`",
        )
    return key


def _refuse_second_active(conn: Connection, name: str, hint: str | None = None) -> None:
    """Each name has at most one active key: the one that signs for it."""
    active = [k for k in _select(conn, signing_keys.c.name == name) if k.status == "active"]
    if active:
        raise UsageError(
            f"key {name} already exists (keyid {active[0].keyid})",
            hint=hint or f"replace it with `custody keys rotate {name}`, or choose another --name",
        )


def _new_private(type: str) -> PrivateKey:
    return ed25519.Ed25519PrivateKey.generate() if type == "ed25519" else ec.generate_private_key(ec.SECP256R1())


def _register(
    conn: Connection,
    store_dir: Path | None,
    private: PrivateKey,
    name: str,
    actor: str,
    action: str,
    secret: bytes | None,
) -> tuple[KeyInfo, audit.Event]:
    """Insert the public half (audited); with a ``store_dir``, first write the private half there."""
    public = private.public_key()
    keyid = _keyid(public)
    if store_dir is not None and secret is not None:
        _write_private(store_dir, keyid, private, secret)
    row = {
        "keyid": keyid,
        "name": name,
        "type": _type_of(public),
        "scheme": TYPES[_type_of(public)][1],
        "public_pem": _pem(public),
        "created_at": utc_now(),
        "actor": actor,
    }
    event = audit.record_row(conn, signing_keys, row, actor=actor, action=action)
    return KeyInfo(**row), event


def _record_event(conn: Connection, key: KeyInfo, what: str, reason: str, at: str, actor: str) -> audit.Event:
    row = {"keyid": key.keyid, "event": what, "at": at, "reason": reason, "actor": actor}
    action = {"retired": "key.retire", "revoked": "key.revoke"}[what]
    return audit.record_row(conn, key_events, row, actor=actor, action=action)


# -- private halves ------------------------------------------------------------------------------------


def key_path(store_dir: Path, keyid: str) -> Path:
    """Where the encrypted private half of ``keyid`` is kept."""
    return store_dir / "keys" / f"{keyid}.pem"


def _write_private(store_dir: Path, keyid: str, private: PrivateKey, secret: bytes) -> None:
    """Encrypted PKCS#8 PEM, mode 0600, written whole or not at all (temp file, fsync, rename)."""
    data = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    final = key_path(store_dir, keyid)
    final.parent.mkdir(mode=0o700, exist_ok=True)
    tmp_dir = store_dir / "tmp"  # gc removes a temp file a crash leaves behind
    tmp_dir.mkdir(exist_ok=True)
    tmp = tmp_dir / f"key-{os.getpid()}-{keyid[:16]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _unlock(store_dir: Path, key: KeyInfo, secret: bytes | None, prompt: Prompt | None) -> PrivateKey:
    path = key_path(store_dir, key.keyid)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"the private half of key {key.label} is not in this workspace",
            hint=f"sign where it was generated, or set {SIGNING_KEY_ENV} to its PEM",
        ) from None
    private = _decrypt(data, secret or ask_passphrase(f"key {key.name}", prompt), key.label)
    if private is None or _keyid(private.public_key()) != key.keyid:
        raise UsageError(f"{path} does not hold the private half of key {key.label}", hint="restore it from a backup")
    return private


def _decrypt(data: bytes, secret: bytes | None, label: str) -> PrivateKey | None:
    """The private key in PEM ``data``; None when it holds none or needs a passphrase not given."""
    try:
        private = serialization.load_pem_private_key(data, secret)
    except TypeError:  # encrypted but no passphrase given, or a passphrase for an unencrypted key
        if secret is None:
            return None
        private = serialization.load_pem_private_key(data, None)
    except ValueError as exc:
        if secret is not None and b"ENCRYPTED" in data:
            raise UsageError(f"wrong passphrase for key {label}", hint=f"check {PASSPHRASE_ENV}") from exc
        return None
    except UnsupportedAlgorithm:
        return None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise UsageError(f"unsupported key type {type(private).__name__}", hint=f"use one of: {', '.join(TYPES)}")
    _type_of(private.public_key())
    return private


def ask_passphrase(what: str, prompt: Prompt | None, *, confirm: bool = False) -> bytes:
    """``CUSTODY_KEY_PASSPHRASE``, else asked through ``prompt`` (twice with ``confirm``), else a usage error."""
    given = os.environ.get(PASSPHRASE_ENV)
    if given:
        return given.encode("utf-8")
    typed = None if prompt is None else prompt(f"Passphrase for {what}: ")
    if typed is None:
        raise UsageError(
            f"no passphrase for {what}",
            hint=f"set {PASSPHRASE_ENV} (standard input is not a terminal, so it cannot be asked for)",
        )
    if not typed:
        raise UsageError(f"empty passphrase for {what}", hint="type a passphrase, or set " + PASSPHRASE_ENV)
    if confirm and (prompt is None or prompt("Again, to confirm: ") != typed):
        raise UsageError("the passphrases differ", hint="type the same passphrase twice")
    return typed.encode("utf-8")


# -- signing -------------------------------------------------------------------------------------------


def signer(
    conn: Connection,
    store_dir: Path,
    name: str | None = None,
    *,
    actor: str | None = None,
    passphrase: bytes | None = None,
    prompt: Prompt | None = None,
) -> Signer:
    """The signer of the active key of ``name`` (default: the most recent active key), or of the
    key in ``CUSTODY_SIGNING_KEY`` when that is set.

    A CI key not registered yet is registered through ``conn`` (audited, by ``actor``): pass a write
    connection, and advance the witness with ``Signer.event`` (or a later event) after commit. A
    passphrase not given is read from the environment or asked through ``prompt`` — inside your transaction, so
    ask first with :func:`ask_passphrase` when a terminal may be involved. ``open_signer`` does all that.
    """
    ci = _ci_key(passphrase, prompt)
    if ci is not None:
        return _ci_signer(conn, ci, actor)
    key = _active(conn, name)
    return Signer(key, _unlock(store_dir, key, passphrase, prompt))


def open_signer(ring: Keyring, name: str | None = None) -> Signer:
    """:func:`signer` for a workspace: passphrases are asked outside any transaction, a CI key is
    registered in a transaction of its own and the witness advanced."""
    ci = _ci_key(None, ring.prompt)
    if ci is not None:
        with ring.db.write() as conn:
            found = _ci_signer(conn, ci, ring.actor)
        if found.event is not None:
            audit.advance_witness(ring.witness, found.event)
        return found
    with ring.db.read() as conn:
        key = _active(conn, name)
    return Signer(key, _unlock(ring.store_dir, key, None, ring.prompt))


def _ci_key(secret: bytes | None, prompt: Prompt | None) -> PrivateKey | None:
    """The private key ``CUSTODY_SIGNING_KEY`` holds (PEM text or a path to one), or None if unset."""
    value = os.environ.get(SIGNING_KEY_ENV, "").strip()
    if not value:
        return None
    if "-----BEGIN" in value:
        data = value.encode("utf-8")
    else:
        try:
            data = Path(value).expanduser().read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read {SIGNING_KEY_ENV} file {value}: {exc.strerror}",
                hint=f"set {SIGNING_KEY_ENV} to a private key PEM or the path of one",
            ) from None
    label = f"{_ci_name()} ({SIGNING_KEY_ENV})"
    private = _decrypt(data, None, label)
    if private is None and b"ENCRYPTED" in data:
        private = _decrypt(data, secret or ask_passphrase(f"key {label}", prompt), label)
    if private is None:
        raise UsageError(
            f"{SIGNING_KEY_ENV} does not hold a PEM private key",
            hint=f"set it to a PKCS#8 PEM of an {' or '.join(TYPES)} key, or the path of one",
        )
    return private


def _ci_name() -> str:
    return os.environ.get(SIGNING_KEY_NAME_ENV) or CI_NAME


def _ci_signer(conn: Connection, private: PrivateKey, actor: str | None) -> Signer:
    keyid = _keyid(private.public_key())
    known = _select(conn, signing_keys.c.keyid == keyid)
    if known:
        if known[0].status != "active":
            key = known[0]
            raise UsageError(
                f"key {key.label} in {SIGNING_KEY_ENV} was {key.status} on {key.valid_until}",
                hint=f"set {SIGNING_KEY_ENV} to a new key",
            )
        return Signer(known[0], private)
    name = _ci_name()
    validate(name)
    _refuse_second_active(conn, name, f"set {SIGNING_KEY_NAME_ENV} to another name, or revoke the old key")
    key, event = _register(conn, None, private, name, actor or _default_actor(), "key.register", None)
    return Signer(key, private, event)


def _default_actor() -> str:
    return os.environ.get("CUSTODY_ACTOR") or getpass.getuser()


def verifies(public_pem: str, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with a PEM public key, no registry needed (an
    offline check of a file that carries the key it claims; :func:`check` adds the registry's rules)."""
    return _verifies(_load_public(public_pem), data, signature)
