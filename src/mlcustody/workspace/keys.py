"""Signing keys and the key-encryption key: generate, list, rotate, revoke, sign and check signatures.

Each function is the whole of one use case over the workspace handle; ``Workspace`` delegates to it in
one line. The domain modules are imported inside the functions that use them: the ledger (cryptography)
and forensics (numpy, scikit-learn) load only for the commands that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcustody.workspace.terminal import ask_secret

if TYPE_CHECKING:
    from mlcustody.ledger import kek_rotate, keys
    from mlcustody.workspace.facade import Workspace


def keyring(ws: Workspace) -> keys.Keyring:
    """The workspace's keys, asking the terminal for a key's passphrase when one is needed."""
    from mlcustody.ledger import keys

    return keys.Keyring(ws.db, ws.config.store_dir, ws.witness, ws.config.actor, ws.config.kek_file, ask_secret)


def rotate_kek(ws: Workspace) -> kek_rotate.Rotation:
    """Re-wrap the decision log's data keys and subject-HMAC key under a new key-encryption key."""
    from mlcustody.ledger import kek_rotate

    return kek_rotate.rotate(keyring(ws))


def generate_key(ws: Workspace, name: str | None = None, type: str | None = None) -> keys.KeyChange:
    """Make a signing key pair (default name ``default``, type ``ecdsa-p256``; see ``ledger.keys``)."""
    from mlcustody.ledger import keys

    return keys.generate(keyring(ws), name or keys.DEFAULT_NAME, type or keys.DEFAULT_TYPE)


def list_keys(ws: Workspace) -> list[keys.KeyInfo]:
    """Every registered signing key with its status and validity, oldest first."""
    from mlcustody.ledger import keys

    with ws.db.read() as conn:
        return keys.listing(conn)


def key(ws: Workspace, ref: str | None = None) -> keys.KeyInfo:
    """The key a name (its active key, else its newest), a keyid or a keyid prefix names; by default
    the active key that signs attestations."""
    from mlcustody.ledger import keys

    with ws.db.read() as conn:
        return keys.get(conn, ref)


def rotate_key(ws: Workspace, ref: str) -> keys.KeyChange:
    """Replace a name's active key by a new one; the old one is retired, its signatures stay valid."""
    from mlcustody.ledger import keys

    return keys.rotate(keyring(ws), ref)


def revoke_key(ws: Workspace, ref: str, reason: str) -> keys.KeyChange:
    """Revoke a key: none of its signatures is trusted any more."""
    from mlcustody.ledger import keys

    return keys.revoke(keyring(ws), ref, reason)


def signer(ws: Workspace, name: str | None = None) -> keys.Signer:
    """The signer of a name's active key (default: the newest active key, or CUSTODY_SIGNING_KEY)."""
    from mlcustody.ledger import keys

    return keys.open_signer(keyring(ws), name)


def check_signature(ws: Workspace, keyid: str, data: bytes, signature: bytes, signed_at: str) -> str | None:
    """None when the signature verifies and the key was valid at ``signed_at``, else why not."""
    from mlcustody.ledger import keys

    with ws.db.read() as conn:
        return keys.check(conn, keyid, data, signature, signed_at)
