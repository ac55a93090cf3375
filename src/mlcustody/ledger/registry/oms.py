"""OpenSSF model signing (OMS v1.0): the statement and key-mode bundle ``model_signing`` reads, and a verifier.

The statement has one subject, the model root (its basename) with a ``sha256`` over the raw
per-file SHA-256 digests in resource order, and the predicate ``model_signing`` writes for its
default ``files`` serialization::

    {"resources": [{"name", "algorithm": "sha256", "digest"}],
     "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                       "ignore_paths": [...]}}

A single-file model has one resource named ``.``; a directory one per regular file, named by its
``/``-separated relative path and ordered as ``model_signing`` orders them (path component by
component). The signed bundle is a Sigstore bundle v0.3 with a DSSE envelope, verification material
``publicKey.hint`` = hex SHA-256 of the PEM SubjectPublicKeyInfo and no transparency-log entries —
what ``model_signing sign key`` writes, except that the signature's ``keyid`` is ours (OMS ignores it;
securesystemslib needs it). OMS verifiers accept only ECDSA P-256/384/521 keys, so an Ed25519
registry key cannot sign one.

``verify_bundle`` checks an OMS key bundle signed by anyone against the files on disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from blake3 import blake3
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlcustody._canonical import canonical_json
from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.errors import PathError, UsageError
from mlcustody.ledger import keys
from mlcustody.ledger.registry import attestation
from mlcustody.metadata.artifacts import ArtifactVersion

PREDICATE_TYPE = "https://model_signing/signature/v1.0"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGNATURE_NAME = "model.sig"  # where OMS tools look for the bundle
GIT_PATHS = (".gitignore", ".gitattributes", ".github", ".git")  # model_signing always leaves these out
_CURVES: dict[str, hashes.HashAlgorithm] = {
    "secp256r1": hashes.SHA256(),
    "secp384r1": hashes.SHA384(),
    "secp521r1": hashes.SHA512(),
}
_HASHES: dict[str, Callable[[bytes], str]] = {
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    "blake2b": lambda data: hashlib.blake2b(data).hexdigest(),
    "blake3": lambda data: blake3(data).hexdigest(),
}


# -- signing -----------------------------------------------------------------------------------------


def resources(files: Mapping[str, str], *, directory: bool) -> list[dict[str, str]]:
    """The predicate's resources from ``{relative path: sha256}``; a single file is named ``.``."""
    if not directory:
        [sha256] = files.values()
        return [{"name": ".", "algorithm": "sha256", "digest": sha256}]
    kept = {name: digest for name, digest in files.items() if not _ignored(name, GIT_PATHS)}
    return [{"name": n, "algorithm": "sha256", "digest": kept[n]} for n in sorted(kept, key=lambda n: n.split("/"))]


def root_digest(items: list[dict[str, str]]) -> str:
    """The subject's sha256: SHA-256 over the raw resource digests, in resource order (OMS §6.5.1)."""
    hasher = hashlib.sha256()
    for item in items:
        hasher.update(bytes.fromhex(item["digest"]))
    return hasher.hexdigest()


def statement(name: str, files: Mapping[str, str], *, directory: bool) -> bytes:
    """The OMS in-toto statement over a model named ``name`` (its basename), serialised once."""
    items = resources(files, directory=directory)
    ignore = list(GIT_PATHS)
    if directory and SIGNATURE_NAME not in files:  # `model.sig` may then sit inside the directory
        ignore.insert(0, SIGNATURE_NAME)
    return canonical_json(
        {
            "_type": attestation.STATEMENT_TYPE,
            "subject": [{"name": name, "digest": {"sha256": root_digest(items)}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "resources": items,
                "serialization": {
                    "ignore_paths": ignore,
                    "allow_symlinks": False,
                    "method": "files",
                    "hash_type": "sha256",
                },
            },
        }
    )


def registered_statement(model: ArtifactVersion, attested: dict[str, Any], problems: list[Problem]) -> bytes:
    """The OMS statement of a registered model version, from the per-file sha256 digests its registry
    attestation signed (``attested``: that Statement); refused when ``custody model verify`` finds the
    model bytes, the attestation or its signature broken (``problems``), so no fresh signature can
    vouch for bytes the registry did not sign."""
    broken = [p for p in problems if p.kind.startswith(("attestation_", "signature_", "model_"))]
    if broken:
        raise UsageError(
            f"model {model.ref} fails verification ({broken[0].kind}: {broken[0].detail}); no OMS signature made",
            hint="see `custody model verify`",
        )
    files = {s["name"]: s["digest"]["sha256"] for s in attested["subject"]}
    name = (model.path or model.name).rstrip("/").rsplit("/", 1)[-1]
    return statement(name, files, directory=model.kind == "dir")


def bundle(payload: bytes, signer: keys.Signer) -> bytes:
    """The Sigstore bundle (key mode) over ``payload``, signed by ``signer`` (an ECDSA P-256 key)."""
    if signer.key.type != "ecdsa-p256":
        raise UsageError(
            f"key {signer.key.label} is {signer.key.type}, but OMS verifiers need an ECDSA key",
            hint="sign with an ecdsa-p256 key: `custody keys generate --name NAME` (the default type)",
        )
    signature = signer.sign(attestation.pae(attestation.PAYLOAD_TYPE, payload))
    document = {  # the keys in the order model_signing writes them
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(signer.key.public_pem)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": attestation.PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": signer.keyid}],
        },
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def key_hint(public_pem: str) -> str:
    """``publicKey.hint``: hex SHA-256 of the key's PEM SubjectPublicKeyInfo, as cryptography writes it."""
    return hashlib.sha256(_pem_bytes(_load_ec(public_pem))).hexdigest()


# -- verifying ---------------------------------------------------------------------------------------

# where a problem of the bundle itself (not of a model file) is: the bundle's own JSON paths
_HINT = "verificationMaterial.publicKey.hint"
_SIGNATURES = "dsseEnvelope.signatures"
_PAYLOAD = "dsseEnvelope.payload"


def verify_paths(bundle_path: Path, key_path: Path, model_path: Path) -> CheckReport:
    """:func:`verify_bundle` with the bundle and the PEM public key read from files."""
    return verify_bundle(_read(bundle_path, "bundle"), _read(key_path, "public key").decode("utf-8"), model_path)


def verify_bundle(bundle_bytes: bytes, public_pem: str, model_path: Path) -> CheckReport:
    """What does not hold in an OMS key bundle, signed by anyone, for the model at ``model_path``.

    The signature must verify with ``public_pem`` (ECDSA P-256/384/521), the statement must be an
    OMS v1.0 statement whose subject digest matches its resources, and every file on disk must be
    in the manifest with the digest signed, and every file in the manifest on disk. No problems: intact.
    A bundle that cannot be parsed or a key that cannot be used is a usage error.
    """
    return CheckReport(_problems(bundle_bytes, public_pem, model_path))


def _problems(bundle_bytes: bytes, public_pem: str, model_path: Path) -> list[Problem]:
    public = _load_ec(public_pem)
    if not model_path.exists():
        raise PathError(f"{model_path} does not exist", hint="give the model file or directory the bundle signs")
    envelope, hint = _open(bundle_bytes)
    problems = []
    if hint and hint != hashlib.sha256(_pem_bytes(public)).hexdigest():
        detail = "the bundle names another public key (verificationMaterial.publicKey.hint differs)"
        problems.append(Problem(ProblemKind.KEY_MISMATCH, _HINT, detail))
    payload = envelope["payload"]
    signed = attestation.pae(envelope["payloadType"], payload)
    if not any(_verifies(public, sig, signed) for sig in envelope["signatures"]):
        detail = "the signature does not verify with the given public key"
        return [*problems, Problem(ProblemKind.SIGNATURE_INVALID, _SIGNATURES, detail)]
    if envelope["payloadType"] != attestation.PAYLOAD_TYPE:
        detail = f"payloadType is {envelope['payloadType']!r}, not {attestation.PAYLOAD_TYPE}"
        return [*problems, Problem(ProblemKind.STATEMENT_INVALID, _PAYLOAD, detail)]
    try:
        problems += _check_statement(json.loads(payload), model_path)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = f"the signed statement is malformed: {type(exc).__name__}: {exc}"
        problems.append(Problem(ProblemKind.STATEMENT_INVALID, _PAYLOAD, detail))
    return problems


def _check_statement(doc: dict[str, Any], model_path: Path) -> list[Problem]:
    refused = _refuse_statement(doc)
    if refused:
        return [Problem(ProblemKind.STATEMENT_INVALID, _PAYLOAD, refused)]
    items = doc["predicate"]["resources"]
    options = doc["predicate"]["serialization"]
    hash_type = options["hash_type"]
    problems: list[Problem] = []
    signed = {item["name"]: item["digest"] for item in items}
    for item in items:
        if item.get("algorithm") != hash_type:
            detail = f"algorithm {item.get('algorithm')!r}, but hash_type is {hash_type}"
            problems.append(Problem(ProblemKind.ALGORITHM_MISMATCH, item["name"], detail))
    ignore = tuple(options.get("ignore_paths", ())) + GIT_PATHS
    on_disk, symlinks = _files(model_path, ignore, bool(options.get("allow_symlinks")))
    refused_link = "a symbolic link, and the signature does not allow them"
    problems += [Problem(ProblemKind.SYMLINK_REFUSED, name, refused_link) for name in symlinks]
    digest = _HASHES[hash_type]
    for name in sorted(set(signed) | set(on_disk), key=lambda n: n.split("/")):
        if name not in on_disk:
            problems.append(Problem(ProblemKind.FILE_MISSING, name, "missing (signed, but not on disk)"))
        elif name not in signed:
            problems.append(Problem(ProblemKind.FILE_UNSIGNED, name, "not in the signature (an extra file)"))
        else:
            now = digest(on_disk[name].read_bytes())
            if now != signed[name]:
                detail = f"{hash_type} {now[:16]}…, signed {signed[name][:16]}…"
                problems.append(Problem(ProblemKind.FILE_MODIFIED, name, detail))
    return problems


def _refuse_statement(doc: dict[str, Any]) -> str | None:
    """Why the statement is not an OMS v1.0 ``files`` statement this verifier can check, else None."""
    if doc.get("_type") != attestation.STATEMENT_TYPE:
        return f"_type is {doc.get('_type')!r}, not {attestation.STATEMENT_TYPE}"
    if doc.get("predicateType") != PREDICATE_TYPE:
        return f"predicateType is {doc.get('predicateType')!r}, not {PREDICATE_TYPE}"
    if len(doc["subject"]) != 1:
        return f"the statement has {len(doc['subject'])} subjects; OMS allows exactly one"
    items = doc["predicate"]["resources"]
    subject = doc["subject"][0]["digest"]["sha256"]
    if root_digest(items) != subject:
        return f"the resources hash to {root_digest(items)}, not the subject's sha256 {subject}"
    options = doc["predicate"]["serialization"]
    if options.get("method") != "files":
        return f"serialization method {options.get('method')!r} is not supported here (only 'files')"
    if options.get("hash_type") not in _HASHES:
        return f"hash_type {options.get('hash_type')!r} is not supported (use one of {', '.join(_HASHES)})"
    return None


def _files(model_path: Path, ignore: tuple[str, ...], allow_symlinks: bool) -> tuple[dict[str, Path], list[str]]:
    """``{manifest name: path}`` of the model's regular files, and the symbolic links refused."""
    if not model_path.is_dir():
        return {".": model_path}, ([] if allow_symlinks or not model_path.is_symlink() else ["."])
    found: dict[str, Path] = {}
    symlinks = []
    for path in sorted(model_path.rglob("*")):
        name = path.relative_to(model_path).as_posix()
        if _ignored(name, ignore):
            continue
        if path.is_symlink() and not allow_symlinks:
            symlinks.append(name)
        elif path.is_file():
            found[name] = path
    return found, symlinks


def _ignored(name: str, ignore: tuple[str, ...] | list[str]) -> bool:
    """Whether ``name`` is, or is under, one of the (model-relative) ignored paths."""
    return any(name == p.rstrip("/") or name.startswith(p.rstrip("/") + "/") for p in ignore)


def _open(data: bytes) -> tuple[dict[str, Any], str | None]:
    """The envelope of a bundle (payload and signatures decoded) and its key hint."""
    try:
        doc = json.loads(data)
        if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
            raise ValueError(f"mediaType is {doc.get('mediaType')!r}, not {BUNDLE_MEDIA_TYPE}")
        raw = doc["dsseEnvelope"]
        envelope = {
            "payloadType": str(raw["payloadType"]),
            "payload": _b64(raw["payload"]),
            "signatures": [_b64(s["sig"]) for s in raw["signatures"]],
        }
        hint = (doc.get("verificationMaterial") or {}).get("publicKey", {}).get("hint")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise UsageError(f"not an OMS signature bundle: {exc}", hint="give the model.sig a model signer wrote") from exc
    return envelope, hint


def _b64(text: str) -> bytes:
    """Standard or URL-safe base64, as DSSE verifiers must accept both."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)


def _verifies(public: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data, ec.ECDSA(_CURVES[public.curve.name]))
    except (InvalidSignature, ValueError):
        return False
    return True


def _load_ec(public_pem: str) -> ec.EllipticCurvePublicKey:
    try:
        public = serialization.load_pem_public_key(public_pem.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError("not a PEM public key", hint="give a PEM SubjectPublicKeyInfo (BEGIN PUBLIC KEY)") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name not in _CURVES:
        what = getattr(getattr(public, "curve", None), "name", None) or type(public).__name__
        raise UsageError(
            f"the public key is {what}, but OMS verifiers need an ECDSA key", hint="use ECDSA P-256, P-384 or P-521"
        )
    return public


def _pem_bytes(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PathError(f"cannot read the {what} {path}: {exc.strerror}", hint=f"give the path of the {what}") from None
