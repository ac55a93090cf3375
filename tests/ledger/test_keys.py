"""Signing keys: securesystemslib-compatible keyids and signatures, encrypted private halves,
rotation and revocation with validity windows, the CI key, the audit trail and the CLI."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, SSlibKey

from conftest import Cli
from mlcustody import UsageError, Workspace
from mlcustody._canonical import utc_now
from mlcustody.errors import UnknownRef
from mlcustody.ledger import keys
from mlcustody.metadata import audit
from mlcustody.metadata.schema import key_events, signing_keys

PASSPHRASE = "correct horse battery staple"
PAYLOAD = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.fixture(autouse=True)
def _key_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A passphrase in the environment, no CI key, and standard input that is not a terminal."""
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    for name in (keys.SIGNING_KEY_ENV, keys.SIGNING_KEY_NAME_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())


def sslib_key(info: keys.KeyInfo) -> SSlibKey:
    """The key as securesystemslib builds it from the public key alone (its default keyid)."""
    public = serialization.load_pem_public_key(info.public_pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return SSlibKey.from_crypto(public)


def events(ws: Workspace) -> list[str]:
    return [event.action for event in reversed(ws.log())]


def witnessed(ws: Workspace) -> bool:
    """The workspace's witness file names the last event of the chain (see ``metadata.audit``)."""
    last = ws.log(limit=1)[0]
    return audit.read_witness(ws.witness) == (last.seq, last.digest)


# -- keyids and signatures (the securesystemslib oracle) ---------------------------------------------


@pytest.mark.parametrize(("type", "scheme"), [("ecdsa-p256", "ecdsa-sha2-nistp256"), ("ed25519", "ed25519")])
def test_keyid_and_signatures_match_securesystemslib(workspace: Workspace, type: str, scheme: str) -> None:
    info = workspace.generate_key("release", type).key
    oracle = sslib_key(info)
    assert (info.keyid, info.scheme, info.type, info.status) == (oracle.keyid, scheme, type, "active")
    assert keys.compute_keyid(info.public_pem) == oracle.keyid
    assert info.securesystemslib() == oracle.to_dict()

    signer = workspace.signer("release")
    assert (signer.keyid, signer.scheme) == (info.keyid, scheme)
    signature = signer.sign(PAYLOAD)
    oracle.verify_signature(Signature(signer.keyid, signature.hex()), PAYLOAD)
    with pytest.raises(UnverifiedSignatureError):
        oracle.verify_signature(Signature(signer.keyid, signature.hex()), PAYLOAD + b"!")
    assert workspace.check_signature(info.keyid, PAYLOAD, signature, utc_now()) is None
    refused = workspace.check_signature(info.keyid, PAYLOAD + b"!", signature, utc_now())
    assert refused == f"signature does not verify with key release (keyid {info.keyid})"


def test_signatures_made_by_securesystemslib_pass_check(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other direction: a key made elsewhere, registered as the CI key, signing through
    securesystemslib's CryptoSigner, is accepted by check."""
    from securesystemslib.signer import CryptoSigner

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, pem.decode())
    ours = workspace.signer()
    theirs = CryptoSigner(private).sign(PAYLOAD)
    assert theirs.keyid == ours.keyid
    assert workspace.check_signature(theirs.keyid, PAYLOAD, bytes.fromhex(theirs.signature), utc_now()) is None


# -- private halves ----------------------------------------------------------------------------------


def test_private_key_is_encrypted_with_mode_0600(workspace: Workspace) -> None:
    info = workspace.generate_key().key
    path = keys.key_path(workspace.config.store_dir, info.keyid)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(data, None)
    with pytest.raises(ValueError, match="password"):
        serialization.load_pem_private_key(data, b"not the passphrase")
    private = serialization.load_pem_private_key(data, PASSPHRASE.encode())
    assert (
        keys.compute_keyid(
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        == info.keyid
    )
    assert not list((workspace.config.store_dir / "tmp").glob("key-*")), "a temp file was left behind"
    assert "PRIVATE" not in repr(workspace.list_keys()) and PASSPHRASE not in repr(workspace.signer())


def test_wrong_passphrase_is_a_usage_error(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    info = workspace.generate_key("prod").key
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "guess")
    with pytest.raises(UsageError) as caught:
        workspace.signer("prod")
    assert caught.value.one_line() == (
        f"wrong passphrase for key prod (keyid {info.keyid}) — check {keys.PASSPHRASE_ENV}"
    )


def test_without_passphrase_or_terminal_nothing_is_made(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    before = events(workspace)
    with pytest.raises(UsageError) as caught:
        workspace.generate_key()
    line = caught.value.one_line()
    assert keys.PASSPHRASE_ENV in line and "\n" not in line
    assert events(workspace) == before and workspace.list_keys() == []
    assert not (workspace.config.store_dir / "keys").exists()


def test_passphrase_is_asked_on_a_terminal_twice_when_new(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["typed", "typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(UsageError, match="passphrases differ"):
        workspace.generate_key()
    prompts: list[str] = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("getpass.getpass", typed)
    info = workspace.generate_key("laptop").key
    assert prompts == ["Passphrase for the new key laptop: ", "Again, to confirm: "]
    assert workspace.signer().keyid == info.keyid
    assert prompts[-1] == "Passphrase for key laptop: "


# -- rotation, revocation and validity -----------------------------------------------------------------


def test_rotation_keeps_old_signatures_valid_and_refuses_later_ones(workspace: Workspace) -> None:
    old = workspace.generate_key("release").key
    old_signer = workspace.signer("release")
    signed = old_signer.sign(PAYLOAD)
    signed_at = utc_now()

    change = workspace.rotate_key("release")
    new, retired = change.key, change.retired
    assert retired is not None and retired.keyid == old.keyid and new.keyid != old.keyid
    assert (new.name, new.type, new.status, retired.status) == ("release", old.type, "active", "retired")
    assert retired.valid_until == retired.retired_at == new.created_at and retired.reason == f"rotated to {new.keyid}"
    assert workspace.key(old.keyid).public_pem == old.public_pem  # the old public key is kept
    with workspace.db.read() as conn:
        assert keys.public_pem(conn, old.keyid[:10]) == old.public_pem
        assert keys.public_pem(conn, "release") == new.public_pem

    assert workspace.check_signature(old.keyid, PAYLOAD, signed, signed_at) is None
    later = utc_now()
    refused = workspace.check_signature(old.keyid, PAYLOAD, old_signer.sign(PAYLOAD), later)
    assert refused == (
        f"key release (keyid {old.keyid}) was not valid at {later} (valid from {old.created_at} until {new.created_at})"
    )
    early = workspace.check_signature(old.keyid, PAYLOAD, signed, "2000-01-01T00:00:00Z")
    assert early is not None and "was not valid at 2000-01-01T00:00:00Z" in early

    fresh = workspace.signer("release")
    assert fresh.keyid == new.keyid
    assert workspace.check_signature(new.keyid, PAYLOAD, fresh.sign(PAYLOAD), utc_now()) is None
    assert events(workspace)[-2:] == ["key.rotate", "key.retire"] and witnessed(workspace)
    assert workspace.verify().problems == []


def test_revoked_key_is_never_trusted(workspace: Workspace) -> None:
    info = workspace.generate_key("build", "ed25519").key
    signed_at = utc_now()
    signature = workspace.signer("build").sign(PAYLOAD)
    assert workspace.check_signature(info.keyid, PAYLOAD, signature, signed_at) is None

    revoked = workspace.revoke_key("build", "  laptop\nstolen ").key
    assert (revoked.status, revoked.reason, revoked.revoked_at) == ("revoked", "laptop stolen", revoked.valid_until)
    refused = workspace.check_signature(info.keyid, PAYLOAD, signature, signed_at)
    assert refused == f"key build (keyid {info.keyid}) was revoked on {revoked.revoked_at} (laptop stolen)"
    with pytest.raises(UsageError, match="has no active key"):
        workspace.signer("build")
    with pytest.raises(UsageError, match="no active signing key"):
        workspace.signer()
    with pytest.raises(UsageError, match="already revoked"):
        workspace.revoke_key(info.keyid, "again")
    with pytest.raises(UsageError, match="only an active key can be rotated"):
        workspace.rotate_key("build")
    with pytest.raises(UsageError, match="needs a reason"):
        workspace.revoke_key("build", "   ")
    assert workspace.generate_key("build").key.status == "active"  # the name can be used again


def test_a_retired_key_can_still_be_revoked(workspace: Workspace) -> None:
    old = workspace.generate_key().key
    signature = workspace.signer().sign(PAYLOAD)
    signed_at = utc_now()
    workspace.rotate_key("default")
    revoked = workspace.revoke_key(old.keyid, "leaked").key
    assert (revoked.status, revoked.valid_until, revoked.reason) == ("revoked", revoked.retired_at, "leaked")
    found = workspace.check_signature(old.keyid, PAYLOAD, signature, signed_at)
    assert found is not None and "was revoked on" in found


def test_names_types_and_references(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="unknown key type 'rsa'"):
        workspace.generate_key("x", "rsa")
    with pytest.raises(UsageError, match="invalid key name"):
        workspace.generate_key("bad name")
    first = workspace.generate_key("a").key
    with pytest.raises(UsageError, match="key a already exists"):
        workspace.generate_key("a")
    second = workspace.generate_key("b", "ed25519").key
    assert workspace.signer().keyid == second.keyid  # the most recent active key
    assert workspace.signer("a").keyid == first.keyid
    assert workspace.key(first.keyid[:8]).keyid == first.keyid
    with pytest.raises(UnknownRef):
        workspace.key("ghost")
    with pytest.raises(UnknownRef):
        workspace.rotate_key("ghost")
    assert workspace.check_signature("f" * 64, PAYLOAD, b"sig", utc_now()) == f"key {'f' * 64} unknown"
    with pytest.raises(UsageError, match="signed_at"):
        workspace.check_signature(first.keyid, PAYLOAD, b"sig", "yesterday")
    assert [k.name for k in workspace.list_keys()] == ["a", "b"]


def test_private_half_missing_or_swapped(workspace: Workspace) -> None:
    a = workspace.generate_key("a").key
    b = workspace.generate_key("b").key
    store = workspace.config.store_dir
    keys.key_path(store, a.keyid).replace(keys.key_path(store, b.keyid))
    with pytest.raises(UsageError, match="is not in this workspace"):
        workspace.signer("a")
    with pytest.raises(UsageError, match="does not hold the private half of key b"):
        workspace.signer("b")


# -- the CI key ----------------------------------------------------------------------------------------


def test_ci_key_from_a_path_is_registered_once(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.generate_key("local")
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ci.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"ci secret"),
        )
    )
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, str(path))
    with pytest.raises(UsageError, match=r"wrong passphrase for key ci \(CUSTODY_SIGNING_KEY\)"):
        workspace.signer()
    assert workspace.list_keys()[-1].name == "local"

    monkeypatch.setenv(keys.PASSPHRASE_ENV, "ci secret")
    signer = workspace.signer("local")  # the CI key signs, whatever the name asked for
    assert signer.event is not None and signer.event.action == "key.register"
    assert signer.keyid == SSlibKey.from_crypto(private.public_key()).keyid
    registered = workspace.key(signer.keyid)
    assert (registered.name, registered.type, registered.actor) == ("ci", "ecdsa-p256", workspace.config.actor)
    assert not keys.key_path(workspace.config.store_dir, signer.keyid).exists()  # CI keeps its own secret

    again = workspace.signer()
    assert again.keyid == signer.keyid and again.event is None
    assert events(workspace).count("key.register") == 1 and witnessed(workspace)
    assert workspace.check_signature(signer.keyid, PAYLOAD, again.sign(PAYLOAD), utc_now()) is None
    assert workspace.verify().problems == []

    workspace.revoke_key("ci", "rotated the CI secret")
    with pytest.raises(UsageError, match="was revoked"):
        workspace.signer()


def test_ci_key_as_pem_text_through_a_write_connection(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, pem.decode())
    monkeypatch.setenv(keys.SIGNING_KEY_NAME_ENV, "github-actions")
    monkeypatch.delenv(keys.PASSPHRASE_ENV)  # an unencrypted key needs none
    with workspace.db.write() as conn:
        signer = keys.signer(conn, workspace.config.store_dir, actor="ci-bot")
    assert signer.event is not None
    assert workspace.key("github-actions").keyid == signer.keyid
    assert workspace.key(signer.keyid).actor == "ci-bot"
    assert workspace.check_signature(signer.keyid, PAYLOAD, signer.sign(PAYLOAD), utc_now()) is None
    assert workspace.verify().problems == []


@pytest.mark.parametrize(
    ("value", "message"),
    [("/nonexistent/ci.pem", "cannot read CUSTODY_SIGNING_KEY file"), ("-----BEGIN junk", "does not hold")],
)
def test_ci_key_that_cannot_be_used(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, value)
    with pytest.raises(UsageError, match=message):
        workspace.signer()
    assert workspace.list_keys() == []


def test_ci_key_name_already_taken_by_another_key(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.generate_key("ci")
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, pem.decode())
    with pytest.raises(UsageError, match="key ci already exists") as caught:
        workspace.signer()
    assert keys.SIGNING_KEY_NAME_ENV in caught.value.hint


def test_unsupported_ci_key_curve(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv(keys.SIGNING_KEY_ENV, pem.decode())
    with pytest.raises(UsageError, match="secp384r1"):
        workspace.signer()


# -- the audit trail -------------------------------------------------------------------------------------


def test_verify_detects_edited_key_rows(workspace: Workspace) -> None:
    info = workspace.generate_key().key
    other = workspace.generate_key("other", "ed25519").key
    workspace.revoke_key("other", "compromised")
    assert events(workspace)[1:] == ["key.generate", "key.generate", "key.revoke"] and witnessed(workspace)
    assert workspace.verify().problems == []
    with workspace.db.engine.begin() as conn:  # swap in another public key behind the log's back
        conn.execute(
            sa.update(signing_keys).where(signing_keys.c.keyid == info.keyid).values(public_pem=other.public_pem)
        )
        conn.execute(sa.delete(key_events).where(key_events.c.keyid == other.keyid))
    found = {(p.kind, p.where) for p in workspace.verify().problems}
    assert found == {
        ("row_modified", f"signing_keys[{info.keyid}]"),
        ("row_deleted", f"key_events[{other.keyid}, revoked]"),
    }


# -- the CLI -----------------------------------------------------------------------------------------------


def test_cli_keys_commands(cli: Cli) -> None:
    cli("init")
    made = cli.json("keys", "generate")
    assert made["action"] == "generated" and made["retired"] is None
    key = made["key"]
    assert (key["name"], key["type"], key["scheme"], key["status"]) == (
        "default",
        "ecdsa-p256",
        "ecdsa-sha2-nistp256",
        "active",
    )
    edkey = cli.json("keys", "generate", "--name", "edge", "--type", "ed25519")["key"]
    listed = cli.json("keys", "ls")["keys"]
    assert [k["keyid"] for k in listed] == [key["keyid"], edkey["keyid"]]
    assert set(listed[0]) == set(key)

    out, _ = cli("keys", "export-public", "default")
    assert out == key["public_pem"]
    out, _ = cli("keys", "export-public", edkey["keyid"][:12], "--out", "edge.pub")
    assert (cli.cwd / "edge.pub").read_text() == edkey["public_pem"] and "edge.pub" in out
    exported = cli.json("keys", "export-public", "default")
    assert exported["key"]["public_pem"] == key["public_pem"] and exported["out"] is None

    rotated = cli.json("keys", "rotate", "default")
    assert rotated["action"] == "rotated" and rotated["retired"]["keyid"] == key["keyid"]
    assert rotated["retired"]["status"] == "retired" and rotated["key"]["keyid"] != key["keyid"]
    revoked = cli.json("keys", "revoke", "edge", "--reason", "lost")
    assert (revoked["key"]["status"], revoked["key"]["reason"]) == ("revoked", "lost")
    statuses = [(k["name"], k["status"]) for k in cli.json("keys", "ls")["keys"]]
    assert statuses == [("default", "retired"), ("edge", "revoked"), ("default", "active")]
    out, _ = cli("keys", "ls")
    assert "revoked" in out and "retired" in out and "lost" in out
    out, _ = cli("keys", "generate", "--name", "human")
    assert out.startswith("generated ecdsa-p256 key human")
    assert cli.json("verify")["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "generate", "--type", "rsa"), "unknown key type 'rsa'"),
        (("keys", "generate", "--name", "a b"), "invalid key name"),
        (("keys", "generate"), "key default already exists"),
        (("keys", "export-public", "ghost"), "no signing key named 'ghost'"),
        (("keys", "rotate", "ghost"), "no signing key named 'ghost'"),
        (("keys", "revoke", "ghost", "--reason", "x"), "no signing key named 'ghost'"),
        (("keys", "revoke", "default"), "Missing option '--reason'"),
        (("keys", "export-public", "default", "--out", "no/such/dir/k.pem"), "cannot write"),
        (("keys", "frobnicate"), "No such command"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    cli("init")
    cli("keys", "generate")
    before = cli.json("log")["events"]
    out, err = cli(*args, code=2)
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and " — " in err
    assert cli.json("log")["events"] == before


def test_cli_without_passphrase_says_how_to_give_one(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("init")
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    doc = cli.json("keys", "generate", code=2)
    assert doc["error"]["code"] == "usage_error" and keys.PASSPHRASE_ENV in doc["error"]["hint"]
    assert cli.json("keys", "ls")["keys"] == []
