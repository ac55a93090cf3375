"""OpenSSF model signing: our `model.sig` verifies with the real `model_signing` package, and back."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from conftest import Cli, write_tree
from mlcustody.ledger.registry import oms

model_signing = pytest.importorskip("model_signing")

PASSPHRASE = "correct horse battery staple"
MODEL_DIR = {"net/config.json": '{"layers": 3}', "net/weights/w0.bin": b"\x00\x01" * 500, "net/w.bin": b"\x07" * 64}


def _oms_verify(model: Path, signature: Path, public_key: Path) -> None:
    """model_signing's own key verification (Python API); raises ValueError on any mismatch."""
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model, signature)


def _register(cli: Cli, path: str, key_type: str = "ecdsa-p256") -> Path:
    """A workspace with a registry key of ``key_type`` and ``path`` registered as credit@1; the PEM file."""
    cli.monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry", "--type", key_type)
    cli("model", "register", "credit", "--path", path)
    public = cli.cwd.parent / "registry.pub"
    cli("keys", "export-public", "registry", "--out", str(public))
    return public


def _signature(cli: Cli, where: Path) -> dict[str, object]:
    out, _ = cli("model", "show", "credit@1", "--oms-signature")
    where.write_text(out, encoding="utf-8")
    bundle: dict[str, object] = json.loads(out)
    return bundle


def test_our_bundle_verifies_with_model_signing_for_one_file(cli: Cli) -> None:
    write_tree(cli.cwd, {"model.bin": b"weights" * 100})
    public = _register(cli, "model.bin")
    bundle = _signature(cli, cli.cwd / "model.sig")
    _oms_verify(cli.cwd / "model.bin", cli.cwd / "model.sig", public)

    envelope = bundle["dsseEnvelope"]
    assert isinstance(envelope, dict)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["subject"][0]["name"] == "model.bin"
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["."]
    key = SSlibKey.from_crypto(load_pem_public_key(public.read_bytes()))
    assert envelope["signatures"][0]["keyid"] == key.keyid == cli.json("keys", "ls")["keys"][0]["keyid"]
    assert key.keyid in Envelope.from_dict(envelope).verify([key], 1)  # securesystemslib accepts it as well
    assert cli.json("model", "verify-oms", "--bundle", "model.sig", "--key", str(public), "model.bin")["ok"] is True


def test_our_bundle_verifies_with_model_signing_for_a_directory(cli: Cli) -> None:
    write_tree(cli.cwd, MODEL_DIR)
    public = _register(cli, "net")
    _signature(cli, cli.cwd / "net" / "model.sig")  # inside the directory, where OMS tools put it
    _oms_verify(cli.cwd / "net", cli.cwd / "net" / "model.sig", public)
    command = [sys.executable, "-m", "model_signing", "verify", "key", "net", "--signature", "net/model.sig"]
    proc = subprocess.run(
        [*command, "--public_key", str(public)], cwd=cli.cwd, capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # and its command line
    cli("model", "verify-oms", "--bundle", "net/model.sig", "--key", str(public), "net")


def test_tampering_one_byte_fails_both_verifiers(cli: Cli) -> None:
    write_tree(cli.cwd, MODEL_DIR)
    public = _register(cli, "net")
    signature = cli.cwd.parent / "model.sig"
    _signature(cli, signature)
    weights = cli.cwd / "net" / "weights" / "w0.bin"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(ValueError, match="Hash mismatch for ") as caught:
        _oms_verify(cli.cwd / "net", signature, public)
    assert "weights/w0.bin" in str(caught.value)
    problems = oms.verify_bundle(signature.read_bytes(), public.read_text(), cli.cwd / "net").problems
    assert [(p.kind, p.where) for p in problems] == [("file_modified", "weights/w0.bin")]
    assert problems[0].detail.startswith("sha256 ")
    doc = cli.json("model", "verify-oms", "--bundle", str(signature), "--key", str(public), "net", code=1)
    assert doc["ok"] is False and doc["problems"] == [p.as_dict() for p in problems]
    (cli.cwd / "net" / "extra.txt").write_text("x")
    (cli.cwd / "net" / "w.bin").unlink()
    problems = oms.verify_bundle(signature.read_bytes(), public.read_text(), cli.cwd / "net").problems
    assert [(p.kind, p.where) for p in problems] == [
        ("file_unsigned", "extra.txt"),
        ("file_missing", "w.bin"),
        ("file_modified", "weights/w0.bin"),
    ]


def _ec_key(where: Path) -> tuple[Path, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = where / "other.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub = where / "other.pub"
    pub.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pem, pub


@pytest.mark.parametrize("layout", ["file", "dir"])
def test_verify_oms_accepts_a_bundle_model_signing_signed(cli: Cli, tmp_path: Path, layout: str) -> None:
    model = write_tree(tmp_path / "m", MODEL_DIR) / "net" if layout == "dir" else tmp_path / "one.bin"
    if layout == "file":
        model.write_bytes(b"single file model")
    private, public = _ec_key(tmp_path)
    signature = tmp_path / "theirs.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).sign(model, signature)

    doc = cli.json("model", "verify-oms", "--bundle", str(signature), "--key", str(public), str(model))
    assert doc == {"schema": "mlcustody.model_verify_oms/v1", "path": str(model), "ok": True, "problems": []}
    (tmp_path / "other").mkdir()
    _, other = _ec_key(tmp_path / "other")
    out, _ = cli("model", "verify-oms", "--bundle", str(signature), "--key", str(other), str(model), code=1)
    assert "the signature does not verify with the given public key" in out


def test_verify_oms_accepts_model_signing_cli_output_with_the_signature_inside(cli: Cli) -> None:
    write_tree(cli.cwd, MODEL_DIR)
    private, public = _ec_key(cli.cwd)
    command = [sys.executable, "-m", "model_signing", "sign", "key", "net", "--signature", "net/model.sig"]
    proc = subprocess.run(
        [*command, "--private_key", str(private)], cwd=cli.cwd, capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cli("model", "verify-oms", "--bundle", "net/model.sig", "--key", str(public), "net")


def test_an_ed25519_registry_key_cannot_make_an_oms_bundle(cli: Cli) -> None:
    write_tree(cli.cwd, {"model.bin": b"weights"})
    public = _register(cli, "model.bin", key_type="ed25519")
    _, err = cli("model", "show", "credit@1", "--oms-signature", code=2)
    assert err.count("\n") == 1 and "OMS verifiers need an ECDSA key" in err
    cli("model", "show", "credit@1", "--oms-signature", "--json", code=2)
    _, err = cli("model", "verify-oms", "--bundle", "model.bin", "--key", str(public), "model.bin", code=2)
    assert "need an ECDSA key" in err


def test_a_tampered_store_gets_no_fresh_oms_signature(cli: Cli) -> None:
    write_tree(cli.cwd, {"model.bin": b"weights" * 10})
    _register(cli, "model.bin")
    [found] = [p for p in (cli.cwd / ".custody").rglob("*") if p.is_file() and p.read_bytes() == b"weights" * 10]
    found.chmod(0o644)
    found.write_bytes(b"WEIGHTS" * 10)
    _, err = cli("model", "show", "credit@1", "--oms-signature", code=2)
    assert "fails verification (model_modified" in err
