"""Registered models: register a version with its signed attestation, move aliases, show, verify, OMS bundles.

Each function is the whole of one use case over the workspace handle; ``Workspace`` delegates to it in
one line. The domain modules are imported inside the functions that use them: the ledger (cryptography)
and forensics (numpy, scikit-learn) load only for the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlcustody.checks import Problem
from mlcustody.errors import UsageError
from mlcustody.metadata import audit
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.runs import store as runs
from mlcustody.workspace import keys as key_cases
from mlcustody.workspace.results import ModelDetails
from mlcustody.workspace.terminal import ask_secret

if TYPE_CHECKING:
    from mlcustody.ledger.registry import versions as registry
    from mlcustody.workspace.facade import Workspace


def register_model(
    ws: Workspace,
    name: str,
    *,
    run: str | None = None,
    path: Path | str | None = None,
    key: str | None = None,
    trust_pickle: bool = False,
) -> registry.ModelVersion:
    """Register the next version of a model: the model a run produced (``run``) or the file at
    ``path``, bound by a signed in-toto/SLSA attestation to its run, data and lineage. A pickle
    is refused unless ``trust_pickle`` (the attestation then names it)."""
    from mlcustody.ledger import keys
    from mlcustody.ledger.registry import attestation
    from mlcustody.ledger.registry import versions as model_registry

    if run is None and path is None:
        raise UsageError("give a run or a model path", hint="custody model register NAME --run RUN [--path FILE]")
    model_registry.validate_name(name)
    if path is not None and run is None:
        model = ws.current_version(Path(path)) or ws.add([Path(path)], type="model")[0].version
    with ws.db.read() as conn:
        run_id: str | None = model.meta.get("run") if run is None else runs.resolve(conn, run)
        if run is not None and run_id is not None:
            model = model_registry.model_of_run(conn, run_id, ws.relpath(path) if path is not None else None)
        prepared = model_registry.prepare(conn, ws.objects, name, model, run_id, trust_pickle=trust_pickle)
        signer = keys.signer(conn, ws.config.store_dir, key, prompt=ask_secret)
    signature = signer.sign(attestation.pae(attestation.PAYLOAD_TYPE, prepared.statement))
    envelope = ws.objects.put_bytes(attestation.envelope(prepared.statement, signer.keyid, signature))
    ws.objects.barrier()
    with ws.db.write() as conn:
        version, event = model_registry.record(conn, prepared, envelope, signer.keyid, ws.config.actor)
    audit.advance_witness(ws.witness, event)
    return version


def alias_model(
    ws: Workspace, name: str, alias: str, version: int | None, reason: str, *, override_terms: bool = False
) -> registry.AliasMove:
    """Point an alias at a version (None removes it); the move is kept in the alias's history. A gated
    alias (production) refuses a version whose data's terms its use breaks, unless ``override_terms``:
    then the reason is signed and recorded with the move (``policy_cases.gate_alias``)."""
    from mlcustody.ledger.registry import versions as model_registry
    from mlcustody.workspace import policy_cases

    gate = policy_cases.gate_alias(ws, name, alias, version, reason if override_terms else None)
    with ws.db.write() as conn:
        move, event = model_registry.move_alias(conn, name, alias, version, reason, ws.config.actor)
        event = gate.record(conn, ws.config.actor) or event
    audit.advance_witness(ws.witness, event)
    return move


def models(ws: Workspace) -> list[registry.ModelVersion]:
    from mlcustody.ledger.registry import versions as model_registry

    with ws.db.read() as conn:
        return model_registry.listing(conn)


def model(ws: Workspace, ref: str) -> ModelDetails:
    """A model version (``NAME@V``, ``NAME:ALIAS``, ``NAME``) with its chain of custody."""
    from mlcustody.ledger.registry import attestation
    from mlcustody.ledger.registry import versions as model_registry

    with ws.db.read() as conn:
        version = model_registry.get(conn, ref)
        aliases = model_registry.aliases(conn, version.name)
    envelope = ws.objects.read_bytes(version.attestation)
    details = ws.run(version.run_id) if version.run_id else None
    return ModelDetails(version, aliases, envelope, attestation.open_envelope(envelope).statement, details)


def verify_model(ws: Workspace, ref: str) -> tuple[registry.ModelVersion, list[Problem]]:
    """Re-derive every digest the version's attestation names; the problems found (none: intact)."""
    from mlcustody.ledger import keys
    from mlcustody.ledger.registry import check as model_check
    from mlcustody.ledger.registry import versions as model_registry

    with ws.db.read() as conn:
        version = model_registry.get(conn, ref)
        return version, model_check.check(conn, ws.objects, version, keys.check)


def model_oms_bundle(ws: Workspace, ref: str, *, key: str | None = None) -> bytes:
    """An OpenSSF model-signing (OMS) bundle for a model version, to save as ``model.sig`` beside it.

    Signed on demand (the registry keeps no copy: no schema change) with the active key of ``key``,
    by default of the name whose key signed the version, over the per-file sha256 digests the
    version's attestation signed — refused if ``verify_model`` finds those broken. Needs an ECDSA
    P-256 key: OMS verifiers accept no Ed25519."""
    from mlcustody.ledger import keys
    from mlcustody.ledger.registry import attestation, oms
    from mlcustody.ledger.registry import check as model_check
    from mlcustody.ledger.registry import versions as model_registry

    with ws.db.read() as conn:
        version = model_registry.get(conn, ref)
        problems = model_check.check(conn, ws.objects, version, keys.check)
        model = refs.resolve(conn, version.artifact)
        name = key or keys.get(conn, version.keyid).name
    attested = attestation.open_envelope(ws.objects.read_bytes(version.attestation)).statement
    payload = oms.registered_statement(model, attested, problems)
    return oms.bundle(payload, keys.open_signer(key_cases.keyring(ws), name))


def verify_oms_bundle(bundle: Path | str, public_key: Path | str, model: Path | str) -> list[Problem]:
    """Check an OMS ``model.sig`` signed by anyone, with no workspace: the signature with the PEM
    public key in ``public_key``, and every file digest it signs against the model on disk."""
    from mlcustody.ledger.registry import oms

    return oms.verify_paths(Path(bundle), Path(public_key), Path(model)).problems
