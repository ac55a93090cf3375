"""Offline provenance bundles: one ``.tar.gz`` that proves a model version's chain of custody anywhere.

``export`` gathers, for one registered model version, everything its attestation names and what is
needed to check it without the store or the database: the DSSE envelope, the public key that signed
it (with its status at export), the model file(s), the sealed run record, the run's code record,
dirty diff and entry script, its environment record, each input dataset's manifest object and record
manifest, and the model's upstream lineage (PROV-JSON for people, ``lineage/graph.json`` with every
node's identity, parents and digest for ``verify``). ``--with-data`` adds the datasets' files.

``manifest.json`` lists every other member with its size, sha256 and BLAKE3 digest. ``bundle.check`` reads
the bundle alone and names each thing that does not hold: a member missing, altered or unlisted; the
signature (by the bundled key, whose keyid must be the envelope's); the model files against the
Statement's subjects; each dependency and byproduct against the member that carries it; the run
record against its seal; the lineage digest recomputed from the bundled nodes.

Layout (``REF`` is a dataset version with ``/`` written ``%2F``)::

    manifest.json                  bundle.json              attestation.dsse.json
    key/public.pem  key/key.json   model/FILE…              lineage/prov.json  lineage/graph.json
    run/record.json  run/code.json  run/dirty.diff  run/entry/SCRIPT  run/environment.json
    datasets/REF/manifest  datasets/REF/records.parquet  datasets/REF/data/FILE…
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote

import blake3
from sqlalchemy.engine import Connection

from mlcustody._canonical import utc_now
from mlcustody.errors import PathError, UsageError
from mlcustody.ledger import keys
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import export as lineage_export
from mlcustody.lineage import graph
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.storage import dir_manifest as manifest
from mlcustody.storage.objects import ObjectStore

SCHEMA = "mlcustody-bundle/v1"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_LEVEL = 6  # as gzip(1) does: level 9 is 3x slower for 1-2% on already compressed Parquet and models


@dataclass(frozen=True)
class Exported:
    model: str  # NAME@V
    path: Path
    size: int  # bytes of the .tar.gz
    members: int  # files in it besides manifest.json
    content_bytes: int  # their total size before compression
    with_data: bool


# -- export ------------------------------------------------------------------------------------------


def export(
    conn: Connection, objects: ObjectStore, version: registry.ModelVersion, target: Path, *, with_data: bool = False
) -> Exported:
    """Write the bundle of ``version`` to ``target`` (atomically: a temp file renamed into place)."""
    if not target.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"{target} does not end in .tar.gz", hint="name the bundle e.g. credit-1.tar.gz")
    if not target.parent.is_dir():
        raise PathError(f"{target.parent} is not a directory", hint="create it first, or choose another --bundle")
    members = _members(conn, objects, version, with_data)
    listing = [{"path": path, **_digests_of(source)} for path, source in members]
    doc = {"schema": SCHEMA, "members": listing}
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=_LEVEL, mtime=0) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add(tar, MANIFEST, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))
            for path, source in members:
                _add(tar, path, source)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PathError(f"cannot write {target}: {exc.strerror}", hint="choose a writable --bundle path") from exc
    total = sum(int(item["size"]) for item in listing)
    return Exported(version.ref, target, target.stat().st_size, len(members), total, with_data)


Source = bytes | Path


def _members(
    conn: Connection, objects: ObjectStore, version: registry.ModelVersion, with_data: bool
) -> list[tuple[str, Source]]:
    model = refs.resolve(conn, version.artifact)
    key = keys.get(conn, version.keyid)
    found: list[tuple[str, Source]] = [
        ("attestation.dsse.json", objects.read_bytes(version.attestation)),
        ("key/public.pem", key.public_pem.encode("ascii")),
        ("key/key.json", json_bytes(_key_record(key))),
    ]
    for subject in registry.subjects(objects, model):
        found.append((f"model/{subject.name}", objects.path(subject.blake3)))
    datasets: list[dict[str, Any]] = []
    run = runs.get(conn, version.run_id) if version.run_id else None
    if run is not None:
        found += _run_members(objects, run)
        for item in run.files("input"):
            if item.artifact is not None:
                datasets.append(_dataset_members(conn, objects, item.artifact, with_data, found))
    upstream = graph.walk(conn, model.ref, direction="up")
    found.append(("lineage/prov.json", json_bytes(lineage_export.prov_json(upstream))))
    found.append(("lineage/graph.json", json_bytes(_lineage_record(upstream))))
    info = {
        "schema": SCHEMA,
        "model": {"ref": version.ref, **version.__dict__},
        "run": version.run_id,
        "datasets": datasets,
        "exported_at": utc_now(),
        "with_data": with_data,
    }
    found.insert(0, ("bundle.json", json_bytes(info)))
    return found


def _key_record(key: keys.KeyInfo) -> dict[str, Any]:
    return {
        "keyid": key.keyid,
        "name": key.name,
        "type": key.type,
        "scheme": key.scheme,
        "status": key.status,
        "valid_from": key.valid_from,
        "valid_until": key.valid_until,
        "revoked_at": key.revoked_at,
        "reason": key.reason,
        "status_at": utc_now(),
    }


def _run_members(objects: ObjectStore, run: runs.Run) -> list[tuple[str, Source]]:
    found: list[tuple[str, Source]] = [("run/code.json", objects.path(run.start.code))]
    if run.end is not None:
        found.append(("run/record.json", objects.path(run.end.seal)))
        if run.end.environment:
            found.append(("run/environment.json", objects.path(run.end.environment)))
    code = json.loads(objects.read_bytes(run.start.code))
    git, entry = code.get("git") or {}, code.get("entry") or {}
    if git.get("diff") and objects.exists(git["diff"]):
        found.append(("run/dirty.diff", objects.path(git["diff"])))
    if entry.get("digest") and objects.exists(entry["digest"]):
        found.append((f"run/entry/{PurePosixPath(entry['path']).name}", objects.path(entry["digest"])))
    return found


def _dataset_members(
    conn: Connection, objects: ObjectStore, ref: str, with_data: bool, found: list[tuple[str, Source]]
) -> dict[str, Any]:
    dataset = refs.resolve(conn, ref)
    where = f"datasets/{quote(ref, safe='@')}"
    if dataset.kind == "dir":
        found.append((f"{where}/manifest", objects.path(dataset.digest)))
    if dataset.records is not None:
        found.append((f"{where}/records.parquet", objects.path(dataset.records["manifest"])))
    if with_data:
        if dataset.kind == "dir":
            for entry in manifest.decode(objects.read_bytes(dataset.digest)):
                found.append((f"{where}/data/{entry.path}", objects.path(entry.digest)))
        else:
            found.append(
                (f"{where}/data/{PurePosixPath(dataset.path or dataset.name).name}", objects.path(dataset.digest))
            )
    return {"ref": ref, "dir": where, "kind": dataset.kind, "path": dataset.path, "digest": dataset.digest}


def _lineage_record(upstream: graph.Graph) -> dict[str, Any]:
    """What ``check`` needs to recompute the lineage digest: each node's identity attributes and parents."""
    digests = graph.merkle(upstream)
    return {
        "origin": upstream.origin,
        "algorithm": "mlcustody-lineage/v1",
        "nodes": [
            {
                "id": node.id,
                "kind": node.kind,
                "attributes": dict(node.attributes),
                "identity": node.identity,
                "parents": sorted({e.target for e in upstream.parents(node.id) if e.kind != "associated_with"}),
                "digest": digests.get(node.id),
            }
            for node in (upstream.nodes[i] for i in sorted(upstream.nodes))
        ],
    }


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8")


def _add(tar: tarfile.TarFile, name: str, source: Source) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uname, info.gname = 0o644, 0, "", ""
    if isinstance(source, bytes):
        info.size = len(source)
        tar.addfile(info, io.BytesIO(source))
        return
    info.size = source.stat().st_size
    with open(source, "rb") as handle:
        tar.addfile(info, handle)


def _digests_of(source: Source) -> dict[str, Any]:
    if isinstance(source, bytes):
        return {
            "size": len(source),
            "sha256": hashlib.sha256(source).hexdigest(),
            "blake3": blake3.blake3(source).hexdigest(),
        }
    with open(source, "rb") as handle:
        return hash_stream(handle)


def hash_stream(handle: IO[bytes]) -> dict[str, Any]:
    sha, b3, size = hashlib.sha256(), blake3.blake3(), 0
    while chunk := handle.read(_CHUNK):
        sha.update(chunk)
        b3.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": sha.hexdigest(), "blake3": b3.hexdigest()}
