"""How ``custody keys`` commands look: generate, ls, export-public, rotate, revoke."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.ledger.keys import KeyChange, KeyInfo

_STYLE = {"active": "green", "retired": "yellow", "revoked": "red"}


def change(action: str, done: KeyChange, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.key_change(action, done))
        return
    key = done.key
    if action == "revoked":
        output.line(f"revoked key {key.name}  keyid {key.keyid}: {key.reason}", style="red")
        return
    output.line(f"{action} {key.type} key {key.name}  keyid {key.keyid}", style="green")
    if done.retired is not None:
        output.line(f"  retired {done.retired.keyid} (its signatures made before {key.created_at} stay valid)")
    output.line(f"  export the public key with `custody keys export-public {key.name}`")


def listing(found: list[KeyInfo], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.keys(found))
        return
    if not found:
        output.line("No signing keys; make one with `custody keys generate`.")
        return
    rows = [
        [k.name, k.keyid[:16], k.type, k.status, k.valid_from[:19], (k.valid_until or "")[:19], k.reason] for k in found
    ]
    output.table(["name", "keyid", "type", "status", "valid from (UTC)", "valid until", "reason"], rows)


def public_key(key: KeyInfo, out: Path | None, as_json: bool) -> None:
    """The PEM on stdout, or written to ``out`` with a line saying so."""
    if as_json:
        output.emit_json(shapes.document("public_key", key=shapes.key(key), out=str(out) if out else None))
        return
    if out is None:
        output.line(key.public_pem.rstrip("\n"))
        return
    output.line(f"wrote the public key of {key.name} (keyid {key.keyid}, {_status(key)}) to {out}")


def _status(key: KeyInfo) -> str:
    if key.revoked_at:
        return f"revoked on {key.revoked_at}"
    return f"retired on {key.retired_at}" if key.retired_at else "active"
