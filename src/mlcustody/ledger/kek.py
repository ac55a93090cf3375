"""The key-encryption key (KEK): the decision log's data keys and subject-HMAC key, wrapped outside the database.

Every per-subject data key and the subject-HMAC key are stored wrapped — AES-256-GCM under a 256-bit
KEK that never enters the database — so a copy of ``metadata.db`` (a backup, a replica) neither
decrypts any input nor re-identifies any subject. A wrapped value names its KEK by id (the first 16
hex digits of the KEK's SHA-256), so several KEKs can coexist while one is rotated.

Providers hold KEKs; two local ones come with mlcustody:

* ``EnvProvider``: ``CUSTODY_KEK`` holds one or more KEKs in hex, comma-separated, the first being
  the current one (a secret manager or KMS agent can inject it);
* ``FileProvider``: a key file outside the store, one KEK in hex a line, the first current; mode
  0600 in a 0700 directory, refused when others may read it. ``CUSTODY_KEK_FILE`` or ``[core]
  kek_file`` names it, else ``$XDG_CONFIG_HOME/mlcustody/kek/<store id>.key`` (``~/.config/…``),
  made on first use.

A provider implements ``keys()`` (current first), ``rotate()`` (a new current KEK, old ones kept until
``retire``) and ``retire(current)``; another store of keys (a cloud KMS) plugs in by implementing
those three. ``ledger.kek_rotate`` re-wraps every key under a new KEK. See docs/decisions.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlcustody.errors import UsageError

KEK_ENV = "CUSTODY_KEK"
KEK_FILE_ENV = "CUSTODY_KEK_FILE"
_MAGIC = b"W1"
_ID_BYTES = 8
_NONCE = 12
_TEXT_PREFIX = "kek1:"


@dataclass(frozen=True)
class Kek:
    """One key-encryption key: 32 bytes and the id wrapped values name it by."""

    key: bytes

    @property
    def kek_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[: 2 * _ID_BYTES]

    def __repr__(self) -> str:
        return f"Kek({self.kek_id})"


class Provider(Protocol):
    """Where KEKs are kept. ``keys()`` lists them, the current one first."""

    def describe(self) -> str: ...

    def keys(self) -> list[Kek]: ...

    def rotate(self) -> Kek: ...

    def retire(self, current: Kek) -> None: ...


class Keyset:
    """The KEKs a provider holds, for wrapping (under the current one) and unwrapping (any)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        found = provider.keys()
        if not found:
            raise UsageError(f"{provider.describe()} holds no key-encryption key", hint=_HINT)
        self.current = found[0]
        self._by_id = {k.kek_id: k for k in found}

    def wrap(self, key: bytes, context: bytes) -> bytes:
        """``key`` encrypted under the current KEK; ``context`` (what the key is for) is bound to it."""
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.current.key).encrypt(nonce, key, context)
        return _MAGIC + bytes.fromhex(self.current.kek_id) + nonce + sealed

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        if not is_wrapped(blob):
            return blob  # a key stored before wrapping (``custody keys rotate-kek`` wraps it)
        kek_id = blob[len(_MAGIC) : len(_MAGIC) + _ID_BYTES].hex()
        kek = self._by_id.get(kek_id)
        if kek is None:
            raise UsageError(
                f"a decision-log key is wrapped under key-encryption key {kek_id}, which "
                f"{self.provider.describe()} does not hold",
                hint=_HINT,
            )
        start = len(_MAGIC) + _ID_BYTES
        try:
            return AESGCM(kek.key).decrypt(blob[start : start + _NONCE], blob[start + _NONCE :], context)
        except InvalidTag:
            raise UsageError(
                f"a decision-log key wrapped under {kek_id} does not unwrap (altered, or moved to another row)",
                hint="run `custody verify` to see which key row was altered",
            ) from None

    def wrap_text(self, key: bytes, context: bytes) -> str:
        return _TEXT_PREFIX + base64.b64encode(self.wrap(key, context)).decode("ascii")

    def unwrap_text(self, text: str, context: bytes) -> bytes:
        return self.unwrap(text_blob(text), context)

    def holds(self, kek_id: str) -> bool:
        return kek_id in self._by_id


_HINT = (
    f"set {KEK_ENV} to the store's key-encryption key(s), or {KEK_FILE_ENV} (or [core] kek_file) to the key "
    "file that holds it; see docs/decisions.md"
)


def is_wrapped(blob: bytes) -> bool:
    return len(blob) > 32 and blob.startswith(_MAGIC)


def text_blob(text: str) -> bytes:
    """The bytes of a stored text value: a wrapped key (``kek1:…``) or a legacy hex key."""
    if text.startswith(_TEXT_PREFIX):
        return base64.b64decode(text[len(_TEXT_PREFIX) :])
    return bytes.fromhex(text)


def kek_id_of(blob: bytes) -> str | None:
    return blob[len(_MAGIC) : len(_MAGIC) + _ID_BYTES].hex() if is_wrapped(blob) else None


# -- providers -------------------------------------------------------------------------------------------


class EnvProvider:
    """KEKs in an environment variable: hex, comma-separated, the current one first."""

    def __init__(self, value: str, name: str = KEK_ENV) -> None:
        self.name = name
        self._keys = [_parse_hex(part.strip(), f"{name}") for part in value.split(",") if part.strip()]

    def describe(self) -> str:
        return f"${self.name}"

    def keys(self) -> list[Kek]:
        return list(self._keys)

    def rotate(self) -> Kek:
        """The environment cannot be written: the new KEK is the one put first in the variable
        (``CUSTODY_KEK=NEW,OLD custody keys rotate-kek``, then drop OLD)."""
        return self._keys[0]

    def retire(self, current: Kek) -> None:
        """Nothing to do here: drop the old keys from the variable (the command says so)."""


class FileProvider:
    """KEKs in a key file outside the store (mode 0600), the current one on its first line."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        self._create = create

    def describe(self) -> str:
        return f"the key file {self.path}"

    def keys(self) -> list[Kek]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if not self._create:
                return []
            self._write([Kek(secrets.token_bytes(32))])
            st = os.stat(self.path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(
                f"{self.path} may be read by others (mode {stat.S_IMODE(st.st_mode):o})",
                hint=f"chmod 600 {self.path}",
            )
        lines = self.path.read_text(encoding="ascii").split()
        return [_parse_hex(line, str(self.path)) for line in lines]

    def rotate(self) -> Kek:
        new = Kek(secrets.token_bytes(32))
        self._write([new, *self.keys()])
        return new

    def retire(self, current: Kek) -> None:
        self._write([current])

    def _write(self, found: Sequence[Kek]) -> None:
        """Whole or not at all (temp file, fsync, rename), mode 0600 in a 0700 directory."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, "".join(k.key.hex() + "\n" for k in found).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


def _parse_hex(text: str, where: str) -> Kek:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UsageError(f"{where} does not hold 256-bit keys in hex", hint="write 64 hex digits a key")
    return Kek(key)


def default_file(store_id: str) -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mlcustody" / "kek" / f"{store_id}.key"


def provider(store_id: str, kek_file: str | None, *, create: bool) -> Provider:
    """``CUSTODY_KEK`` when set, else the key file (``kek_file`` or the default for this store), made
    when missing and ``create`` (the store has no wrapped key yet)."""
    value = os.environ.get(KEK_ENV, "").strip()
    if value:
        return EnvProvider(value)
    path = Path(kek_file).expanduser() if kek_file else default_file(store_id)
    return FileProvider(path, create=create)


# -- the store's keyset ----------------------------------------------------------------------------------

KEK_ROW = "decision_kek"  # store_info: the id of the KEK the store's keys were (last re-)wrapped under
HMAC_CONTEXT = b"mlcustody/subject-hmac-key"


def data_key_context(subject: str) -> bytes:
    """What a data key is bound to when wrapped: its subject row (a key moved to another row fails)."""
    return b"mlcustody/decision-subject-key:" + subject.encode("utf-8")


def open_keyset(store_id: str, kek_file: str | None, in_use: str | None, *, create: bool) -> Keyset | None:
    """The KEKs for a store whose keys are wrapped under ``in_use`` (None: none wrapped yet). With
    ``create`` (a writer), a key file is made when the store has no wrapped key yet; None when there
    is no KEK and none is needed."""
    found = provider(store_id, kek_file, create=create and in_use is None)
    if not found.keys():
        if in_use is not None:
            raise UsageError(
                f"the decision log's keys are wrapped under key-encryption key {in_use}; {found.describe()} holds none",
                hint=_HINT,
            )
        return None
    keyset = Keyset(found)
    if in_use is not None and not keyset.holds(in_use):
        raise UsageError(
            f"the decision log's keys are wrapped under key-encryption key {in_use}, which {found.describe()} "
            "does not hold",
            hint=_HINT,
        )
    return keyset


def unwrap(keys: Keyset | None, blob: bytes, context: bytes) -> bytes:
    """A stored key in the clear; a usage error when it is wrapped and no KEK is at hand."""
    if keys is None:
        if is_wrapped(blob):
            raise UsageError("the decision log's keys are wrapped and no key-encryption key is at hand", hint=_HINT)
        return blob
    return keys.unwrap(blob, context)
