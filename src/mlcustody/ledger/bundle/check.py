"""Checking an offline provenance bundle alone: no store, no database (see ``bundle.export`` for its
layout). Each thing that does not hold is named: a member missing, altered or unlisted; the signature
(by the bundled key, whose keyid must be the envelope's); the model files against the Statement's
subjects; each dependency and byproduct against the member that carries it; the run record against
its seal; the lineage digest recomputed from the bundled nodes.

Over 400 lines on purpose: it is one verification, ``_Checker``, walking the member families in
order over one shared state (the open tar, the listed and hashed members); split, each part would
need that whole state passed back and forth.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlcustody._canonical import digest_json
from mlcustody.checks import CheckReport, Problem, ProblemKind
from mlcustody.errors import PathError, UsageError
from mlcustody.ledger import keys
from mlcustody.ledger.bundle.export import MANIFEST, SCHEMA, hash_stream
from mlcustody.ledger.registry import attestation
from mlcustody.lineage import graph
from mlcustody.storage import dir_manifest as manifest


@dataclass(frozen=True)
class BundleCheck(CheckReport):
    """A bundle's check report (``checked``: ``members``), with the bundle read and the model it names."""

    path: Path = Path()
    model: str | None = None  # NAME@V, when bundle.json could be read

    @property
    def members(self) -> int:
        return self.checked["members"]


# -- check -------------------------------------------------------------------------------------------


def verify(path: Path) -> list[Problem]:
    """The problems ``check`` finds (none: the bundle proves what it claims)."""
    return check(path).problems


def check(path: Path) -> BundleCheck:
    """Check a bundle alone, offline: no store, no database. Not a readable .tar.gz is a usage error."""
    with _open(path) as tar:
        return _Checker(path, tar).run()


class _open:  # noqa: N801 - a context manager used like a function
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None

    def __enter__(self) -> tarfile.TarFile:
        hint = "pass a bundle written by `custody export REF --bundle FILE.tar.gz`"
        if not self.path.is_file():
            raise PathError(
                f"{self.path} does not exist" if not self.path.exists() else f"{self.path} is not a file", hint=hint
            )
        try:
            self.tar = tarfile.open(self.path, mode="r:gz")
            self.tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            if self.tar is not None:
                self.tar.close()
            raise UsageError(f"{self.path} is not a readable .tar.gz bundle ({exc})", hint=hint) from exc
        return self.tar

    def __exit__(self, *exc: object) -> None:
        if self.tar is not None:
            self.tar.close()


class _Checker:
    """One bundle's check: reads members from the open tar, gathers problems."""

    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self.tar = tar
        self.files = {m.name: m for m in tar.getmembers() if m.isfile()}
        self.problems: list[Problem] = []
        self.listed: dict[str, dict[str, Any]] = {}
        self.hashed: dict[str, dict[str, Any]] = {}  # member → size and digests, each hashed once

    def problem(self, kind: ProblemKind, where: str, detail: str) -> None:
        self.problems.append(Problem(kind, where, detail))

    def run(self) -> BundleCheck:
        if not self._manifest():
            return BundleCheck(self.problems, {"members": len(self.files)}, self.path, None)
        info = self._json("bundle.json")
        model = (info or {}).get("model", {}).get("ref") if isinstance(info, dict) else None
        statement = self._signature(info if isinstance(info, dict) else {})
        if statement is not None and isinstance(info, dict):
            self._model(statement)
            self._dependencies(statement, info)
            self._lineage(statement, info)
        return BundleCheck(self.problems, {"members": len(self.listed)}, self.path, model)

    # members

    def _manifest(self) -> bool:
        raw = self._read(MANIFEST)
        if raw is None:
            self.problem(
                ProblemKind.MEMBER_MISSING, MANIFEST, "the bundle has no manifest.json: nothing can be checked"
            )
            return False
        try:
            doc = json.loads(raw)
            self.listed = {item["path"]: item for item in doc["members"]}
            if doc.get("schema") != SCHEMA:
                raise ValueError(f"schema is {doc.get('schema')!r}, not {SCHEMA}")
        except (ValueError, KeyError, TypeError) as exc:
            self.problem(ProblemKind.MANIFEST_CORRUPT, MANIFEST, f"unreadable manifest: {exc}")
            return False
        for name, item in sorted(self.listed.items()):
            if name not in self.files:
                self.problem(ProblemKind.MEMBER_MISSING, name, "listed in manifest.json but not in the bundle")
                continue
            now = self._digest_of(name)
            assert now is not None  # a regular file
            differs = [k for k in ("size", "sha256", "blake3") if now[k] != item.get(k)]
            if differs:
                self.problem(ProblemKind.MEMBER_MODIFIED, name, f"{', '.join(differs)} differ from manifest.json")
        for name in sorted(set(self.files) - set(self.listed) - {MANIFEST}):
            self.problem(ProblemKind.MEMBER_UNLISTED, name, "in the bundle but not listed in manifest.json")
        return True

    def _read(self, name: str) -> bytes | None:
        member = self.files.get(name)
        handle = self.tar.extractfile(member) if member is not None else None
        return handle.read() if handle is not None else None

    def _json(self, name: str) -> Any:
        raw = self._read(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            self.problem(ProblemKind.MEMBER_CORRUPT, name, f"not JSON: {exc}")
            return None

    def _digest_of(self, name: str) -> dict[str, Any] | None:
        if name not in self.hashed:
            member = self.files.get(name)
            handle = self.tar.extractfile(member) if member is not None else None
            if handle is None:
                return None
            self.hashed[name] = hash_stream(handle)
        return self.hashed[name]

    # the signature

    def _signature(self, info: dict[str, Any]) -> dict[str, Any] | None:
        raw = self._read("attestation.dsse.json")
        if raw is None:
            return None
        try:
            opened = attestation.open_envelope(raw)
        except UsageError as exc:
            self.problem(ProblemKind.ATTESTATION_CORRUPT, "attestation.dsse.json", exc.message)
            return None
        pem = self._read("key/public.pem")
        key = self._json("key/key.json") or {}
        if pem is None:
            self.problem(
                ProblemKind.SIGNATURE_INVALID,
                "key/public.pem",
                "no public key in the bundle to check the signature with",
            )
            return opened.statement
        reason = _check_signature(pem, opened)
        if reason is not None:
            self.problem(ProblemKind.SIGNATURE_INVALID, "attestation.dsse.json", reason)
        if isinstance(key, dict) and key.get("revoked_at"):
            detail = f"key {key.get('keyid', '?')[:16]} was revoked on {key['revoked_at']} ({key.get('reason', '')})"
            self.problem(ProblemKind.KEY_REVOKED, "key/key.json", detail)
        signed_at = str(info.get("model", {}).get("created_at", ""))
        if isinstance(key, dict) and signed_at and not _valid_at(key, signed_at):
            valid = f"valid from {key.get('valid_from')} until {key.get('valid_until')}"
            detail = f"key {valid}, but the version was signed at {signed_at}"
            self.problem(ProblemKind.SIGNATURE_INVALID, "key/key.json", detail)
        return opened.statement

    # the model

    def _model(self, statement: dict[str, Any]) -> None:
        signed = {s.get("name"): s.get("digest") for s in statement.get("subject", [])}
        present = {name.removeprefix("model/") for name in self.listed if name.startswith("model/")}
        for name in sorted(set(signed) | present):
            member = f"model/{name}"
            now = self._digest_of(member)
            attested = signed.get(name)
            if attested is None:
                self.problem(ProblemKind.MODEL_MODIFIED, member, "a model file the attestation does not name")
            elif now is None:
                self.problem(
                    ProblemKind.MEMBER_MISSING, member, "a model file the attestation names is not in the bundle"
                )
            elif (now["sha256"], now["blake3"]) != (attested.get("sha256"), attested.get("blake3")):
                self.problem(
                    ProblemKind.MODEL_MODIFIED,
                    member,
                    f"sha256 {now['sha256'][:16]}, attested {str(attested.get('sha256'))[:16]}",
                )

    # dependencies and byproducts

    def _dependencies(self, statement: dict[str, Any], info: dict[str, Any]) -> None:
        predicate = statement.get("predicate", {})
        named = {d.get("name"): d for d in predicate.get("buildDefinition", {}).get("resolvedDependencies", [])}
        named |= {b.get("name"): b for b in predicate.get("runDetails", {}).get("byproducts", [])}
        carriers = {"code": "run/code.json", "dirty-diff": "run/dirty.diff", "environment": "run/environment.json"}
        carriers["run-record"] = "run/record.json"
        for name, member in carriers.items():
            if name in named:
                self._against(member, name, named[name].get("digest", {}))
        for dataset in info.get("datasets", []):
            ref, where = dataset.get("ref"), dataset.get("dir")
            attested = named.get(ref)
            if attested is None:
                self.problem(
                    ProblemKind.DEPENDENCY_MODIFIED, f"{where}", f"{ref} is not a dependency the attestation names"
                )
                continue
            if dataset.get("kind") == "dir":
                self._against(f"{where}/manifest", ref, attested.get("digest", {}))
                self._data_files(where)
            elif f"{where}/data/{PurePosixPath(dataset.get('path') or ref).name}" in self.listed:
                self._against(
                    f"{where}/data/{PurePosixPath(dataset.get('path') or ref).name}", ref, attested.get("digest", {})
                )
            records = attested.get("annotations", {}).get("recordManifest")
            if records:
                self._against(f"{where}/records.parquet", f"{ref} record manifest", records)
        self._run_record(statement)
        self._entry_script()

    def _data_files(self, where: str) -> None:
        """With --with-data, each file of a directory dataset against its entry in the bundled manifest."""
        raw = self._read(f"{where}/manifest")
        if raw is None or not any(name.startswith(f"{where}/data/") for name in self.listed):
            return
        try:
            entries = {e.path: e.digest for e in manifest.decode(raw)}
        except (ValueError, UsageError) as exc:
            self.problem(ProblemKind.DEPENDENCY_MODIFIED, f"{where}/manifest", f"unreadable directory manifest: {exc}")
            return
        present = {n.removeprefix(f"{where}/data/") for n in self.listed if n.startswith(f"{where}/data/")}
        for path in sorted(set(entries) | present):
            member = f"{where}/data/{path}"
            now = self._digest_of(member)
            if path not in entries:
                self.problem(
                    ProblemKind.DEPENDENCY_MODIFIED, member, "a data file the dataset's manifest does not list"
                )
            elif now is None:
                self.problem(ProblemKind.MEMBER_MISSING, member, "a data file of the dataset is not in the bundle")
            elif now["blake3"] != entries[path]:
                self.problem(
                    ProblemKind.DEPENDENCY_MODIFIED,
                    member,
                    f"blake3 {now['blake3'][:16]}, manifest {entries[path][:16]}",
                )

    def _against(self, member: str, name: str, attested: dict[str, Any]) -> None:
        now = self._digest_of(member)
        if now is None:
            self.problem(ProblemKind.MEMBER_MISSING, member, f"carries {name}, which the attestation names")
            return
        for algorithm in ("sha256", "blake3"):
            if algorithm in attested and attested[algorithm] != now[algorithm]:
                kind = ProblemKind.BYPRODUCT_MODIFIED if name == "run-record" else ProblemKind.DEPENDENCY_MODIFIED
                detail = f"{name}: {algorithm} {now[algorithm][:16]}, attested {attested[algorithm][:16]}"
                self.problem(kind, member, detail)
                return

    def _run_record(self, statement: dict[str, Any]) -> None:
        record = self._json("run/record.json")
        if not isinstance(record, dict):
            return
        byproducts = statement.get("predicate", {}).get("runDetails", {}).get("byproducts", [])
        seal = next((b.get("digest", {}).get("blake3") for b in byproducts if b.get("name") == "run-record"), None)
        if seal is not None and digest_json(record) != seal:
            self.problem(
                ProblemKind.RUN_MODIFIED,
                "run/record.json",
                f"its canonical bytes hash to {digest_json(record)[:16]}, sealed {seal[:16]}",
            )
        params = statement.get("predicate", {}).get("buildDefinition", {}).get("externalParameters", {}).get("params")
        if params is not None and record.get("params") != params:
            self.problem(
                ProblemKind.PARAMETERS_MODIFIED, "run/record.json", "the run record's params differ from those attested"
            )
        invocation = statement.get("predicate", {}).get("runDetails", {}).get("metadata", {}).get("invocationId")
        if invocation is not None and (record.get("run") or {}).get("id") != invocation:
            self.problem(
                ProblemKind.RUN_MODIFIED,
                "run/record.json",
                f"the record is of run {(record.get('run') or {}).get('id')}, attested {invocation}",
            )

    def _entry_script(self) -> None:
        code = self._json("run/code.json")
        entry = (code or {}).get("entry") if isinstance(code, dict) else None
        if not entry or not entry.get("digest"):
            return
        member = f"run/entry/{PurePosixPath(entry.get('path', '')).name}"
        now = self._digest_of(member)
        if now is None:
            self.problem(
                ProblemKind.MEMBER_MISSING, member, "the entry script the code record names is not in the bundle"
            )
        elif now["blake3"] != entry["digest"]:
            self.problem(
                ProblemKind.CODE_MODIFIED,
                member,
                f"blake3 {now['blake3'][:16]}, the code record names {entry['digest'][:16]}",
            )

    # lineage

    def _lineage(self, statement: dict[str, Any], info: dict[str, Any]) -> None:
        doc = self._json("lineage/graph.json")
        if not isinstance(doc, dict):
            if "lineage/graph.json" not in self.files:
                self.problem(
                    ProblemKind.MEMBER_MISSING,
                    "lineage/graph.json",
                    "no lineage nodes: the lineage digest cannot be recomputed",
                )
            return
        byproducts = statement.get("predicate", {}).get("runDetails", {}).get("byproducts", [])
        attested = next(
            (b.get("digest", {}).get("blake3") for b in byproducts if b.get("name") == "lineage-graph"), None
        )
        try:
            upstream = _graph_of(doc)
            digests = graph.merkle(upstream)
        except (KeyError, TypeError, ValueError) as exc:
            self.problem(ProblemKind.LINEAGE_MODIFIED, "lineage/graph.json", f"unreadable lineage nodes: {exc}")
            return
        if attested is not None and digests.get(upstream.origin) != attested:
            now = digests.get(upstream.origin) or "nothing"
            self.problem(
                ProblemKind.LINEAGE_MODIFIED,
                "lineage/graph.json",
                f"lineage digest is {now[:16]}, attested {attested[:16]}",
            )
        self._lineage_binds(upstream, statement, info)

    def _lineage_binds(self, upstream: graph.Graph, statement: dict[str, Any], info: dict[str, Any]) -> None:
        """The lineage nodes name the same bytes as the bundle: the model, the run's seal, each dataset."""
        model = info.get("model", {})
        origin = upstream.nodes.get(upstream.origin)
        if (
            origin is None
            or upstream.origin != model.get("artifact")
            or origin.identity.get("digest") != model.get("digest")
        ):
            self.problem(
                ProblemKind.LINEAGE_MODIFIED, "lineage/graph.json", "the lineage origin is not the bundled model"
            )
        record = self._json("run/record.json")
        if isinstance(record, dict) and info.get("run"):
            node = upstream.nodes.get(info["run"])
            seal = digest_json(record)
            if node is None or node.identity.get("seal") != seal:
                self.problem(
                    ProblemKind.LINEAGE_MODIFIED,
                    "lineage/graph.json",
                    f"run {info['run'][:12]} in the lineage does not carry the bundled record's seal",
                )
        for dataset in info.get("datasets", []):
            node = upstream.nodes.get(dataset.get("ref"))
            if node is None or node.identity.get("digest") != dataset.get("digest"):
                self.problem(
                    ProblemKind.LINEAGE_MODIFIED,
                    "lineage/graph.json",
                    f"{dataset.get('ref')} in the lineage is not the bundled dataset",
                )


def _graph_of(doc: dict[str, Any]) -> graph.Graph:
    nodes = {n["id"]: graph.Node(n["id"], n["kind"], n["id"], n["attributes"]) for n in doc["nodes"]}
    edges = [graph.Edge(n["id"], parent, "used") for n in doc["nodes"] for parent in n["parents"]]
    if doc["origin"] not in nodes or any(e.target not in nodes for e in edges):
        raise ValueError("a node's parent is not among the nodes")
    return graph.Graph(doc["origin"], "up", None, nodes, sorted(edges), {}, {})


def _valid_at(key: dict[str, Any], signed_at: str) -> bool:
    try:
        when = datetime.fromisoformat(signed_at)
        start = datetime.fromisoformat(str(key.get("valid_from")))
        end = datetime.fromisoformat(key["valid_until"]) if key.get("valid_until") else None
    except (TypeError, ValueError):
        return False
    return start <= when and (end is None or when < end)


def _check_signature(pem: bytes, opened: attestation.Opened) -> str | None:
    try:
        public = serialization.load_pem_public_key(pem)
        keyid = keys.compute_keyid(pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError, UsageError) as exc:
        return f"the bundled public key is unreadable: {exc}"
    mine = [sig for kid, sig in opened.signatures if kid == keyid]
    if not mine:
        signers = ", ".join(k[:16] for k, _ in opened.signatures)
        return f"no signature by the bundled key {keyid[:16]} (signed by {signers})"
    for signature in mine:
        try:
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, opened.signed_bytes)
            elif isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(signature, opened.signed_bytes, ec.ECDSA(hashes.SHA256()))
            else:
                return f"the bundled key is of an unsupported type {type(public).__name__}"
        except InvalidSignature:
            return f"the signature does not verify with the bundled key {keyid[:16]}"
    return None
