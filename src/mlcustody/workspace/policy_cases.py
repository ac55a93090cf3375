"""The policy use cases on a workspace: set terms, check a model's terms, gate an alias, run an
expectation suite on a version and keep the signed result. The CLI (``cli/policy.py``) and the SDK
call these; the rules live in ``mlcustody.policy``."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.config import CONFIG_FILENAME
from mlcustody.errors import UnknownRef, UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.policy import check as terms_check
from mlcustody.policy import evidence, settings, terms

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

    from mlcustody.policy.expectations import SuiteResult
    from mlcustody.workspace.facade import Workspace


def config(ws: Workspace) -> settings.Settings:
    return settings.load(ws.config.store_dir / CONFIG_FILENAME)


# -- terms -------------------------------------------------------------------------------------------


def set_terms(ws: Workspace, ref: str, given: terms.Terms | None) -> terms.SourceTerms:
    """Set the terms of a version: those given, else the ``terms.toml`` beside its path. With a consent
    column, each record's value is kept (record_id, consent) and unknown values are refused."""
    version = ws.resolve(ref)
    if given is None:
        found = terms.beside(ws.root / version.path) if version.path else None
        if found is None:
            raise UsageError(
                f"no terms given for {version.ref} and no {terms.TERMS_FILE} beside it",
                hint="pass --license/--consent/--purpose/--retention, or write a terms.toml beside the data",
            )
        given = terms.read_file(found)
    terms.validate(given)
    consent: str | None = None
    counts: dict[str, int] = {}
    if given.consent_column is not None:
        consent, counts = _consent_table(ws, version, given.consent_column)
    with ws.db.write() as conn:
        done, event = terms.record(conn, version, given, consent, ws.config.actor)
    audit.advance_witness(ws.witness, event)
    return replace(done, counts=counts)


def _consent_table(ws: Workspace, version: ArtifactVersion, column: str) -> tuple[str, dict[str, int]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if version.records is None:
        raise UsageError(
            f"{version.ref} has no record manifest, so its records cannot carry terms",
            hint=f"add it with records: `custody add {version.path or version.name} --records`",
        )
    table = ws.record_table(version)
    if column not in table.column_names:
        listed = ", ".join(c for c in table.column_names if c != "record_id")
        raise UsageError(f"{version.ref} has no column {column!r}", hint=f"its columns are {listed}")
    values = pc.fill_null(pc.cast(table[column], pa.string()), "none")
    counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(values).to_pylist()}
    terms.check_consent_values(counts, column)
    sink = io.BytesIO()
    pq.write_table(pa.table({"record_id": table["record_id"], "consent": values}), sink)
    digest = ws.objects.put_bytes(sink.getvalue())
    ws.objects.barrier()
    return digest, counts


def terms_of(ws: Workspace, version: ArtifactVersion) -> terms.SourceTerms | None:
    with ws.db.read() as conn:
        return terms.in_force(conn, [version.ref]).get(version.ref)


def _subject(ws: Workspace, ref: str) -> tuple[str, str]:
    """(what was named, its artifact): a registered model version or any artifact version."""
    from mlcustody.ledger.registry import versions as registry

    with ws.db.read() as conn:
        try:
            model = registry.get(conn, ref)
            return model.ref, model.artifact
        except UnknownRef:
            pass
    return ref, ws.resolve(ref).ref


def check_terms(
    ws: Workspace, ref: str, *, purpose: str | None = None, commercial: bool = False
) -> terms_check.TermsCheck:
    """Every termed version upstream of a model (or dataset) judged for this use (``policy.check``)."""
    if purpose is not None:
        terms.validate(terms.Terms(purposes=(purpose,)))
    subject, artifact = _subject(ws, ref)
    with ws.db.read() as conn:
        return terms_check.check(conn, ws.objects, subject, artifact, purpose=purpose, commercial=commercial)


@dataclass(frozen=True)
class Override:
    """A signed override of the terms gate, recorded with the alias move it allows."""

    name: str
    alias: str
    version: int
    reason: str
    findings: str
    envelope: str
    keyid: str


@dataclass(frozen=True)
class Gate:
    """What the terms gate decided for an alias move: nothing to check, clean, or overridden."""

    checked: bool
    findings: int
    override: Override | None = None

    def record(self, conn: Connection, actor: str) -> audit.Event | None:
        """Record the override (in the alias move's write transaction): who, why, what was overridden."""
        o = self.override
        if o is None:
            return None
        _, event = evidence.record_override(
            conn,
            o.name,
            o.alias,
            o.version,
            reason=o.reason,
            findings=o.findings,
            envelope_digest=o.envelope,
            keyid=o.keyid,
            actor=actor,
        )
        return event


def gate_alias(ws: Workspace, name: str, alias: str, version: int | None, override_reason: str | None) -> Gate:
    """Refuse to point a gated alias (``[terms] gated_aliases``) at a version whose data's terms the
    use breaks, unless overridden with a reason: the override is signed here, recorded by ``Gate.record``."""
    rules = config(ws)
    if override_reason is not None and not override_reason.strip():
        raise UsageError("--override-terms needs a reason", hint='pass --reason "why this use is allowed"')
    if version is None or alias not in rules.gated_aliases:
        return Gate(False, 0)
    from mlcustody.ledger.registry import versions as registry

    with ws.db.read() as conn:
        try:
            registry.get(conn, f"{name}@{version}")
        except UnknownRef:
            return Gate(False, 0)  # no such model: the alias move itself says so, after checking its input
    found = check_terms(ws, f"{name}@{version}", purpose=rules.purpose, commercial=rules.commercial)
    if not found.tainted:
        return Gate(True, 0)
    if override_reason is None:
        first = found.findings[0]
        counted = f" ({first.records} records)" if first.records is not None else ""
        raise UsageError(
            f"{name}@{version} breaks the terms of its data: {len(found.findings)} finding(s), first {first.rule} "
            f"from {first.path or first.source}{counted}; {alias} is gated",
            hint=f"see `custody check terms {name}@{version}`, or pass --override-terms --reason TEXT",
        )
    return Gate(True, len(found.findings), _sign_override(ws, name, alias, version, override_reason, found))


def _sign_override(
    ws: Workspace, name: str, alias: str, version: int, reason: str, found: terms_check.TermsCheck
) -> Override:
    from mlcustody.ledger.registry import versions as registry

    with ws.db.read() as conn:
        model = registry.get(conn, f"{name}@{version}")
    listed = [f.as_dict() for f in found.findings]
    findings = ws.store_json(listed)
    predicate = {"model": model.ref, "alias": alias, "reason": reason, "actor": ws.config.actor, "findings": listed}
    envelope, keyid = _sign(ws, evidence.statement(model.ref, model.digest, evidence.OVERRIDE_TYPE, predicate))
    return Override(name, alias, version, reason, findings, envelope, keyid)


def _sign(ws: Workspace, payload: bytes) -> tuple[str, str]:
    """Sign a statement with the active key and store its DSSE envelope: (envelope digest, keyid)."""
    signer = ws.signer()
    envelope = ws.objects.put_bytes(evidence.envelope(payload, signer.keyid, signer.sign(evidence.pae(payload))))
    ws.objects.barrier()
    return envelope, signer.keyid


def check_purpose(ws: Workspace, ref: str, purpose: str | None) -> None:
    """A decision log declared to serve ``purpose`` is refused for a model whose data does not cover it."""
    if purpose is None:
        return
    found = check_terms(ws, ref, purpose=purpose)
    refused = [f for f in found.findings if f.rule in ("purpose_not_covered", "consent_withdrawn")]
    if refused:
        first = refused[0]
        raise UsageError(
            f"{found.subject} may not serve purpose {purpose!r}: {first.rule} from {first.path or first.source} "
            f"({first.records} records)",
            hint=f"see `custody check terms {found.subject} --purpose {purpose}`",
        )


# -- expectations -----------------------------------------------------------------------------------


def run_expectations(ws: Workspace, ref: str, suite_file: Path, *, strict: bool = False) -> SuiteResult:
    """Run a suite on a version, store the suite and its result, sign the result and record it on the
    version. ``strict``: a failed suite is refused (exit 2) — it is still recorded, as evidence."""
    from mlcustody.policy import expectations

    version = ws.resolve(ref)
    suite = expectations.parse(suite_file)
    result = expectations.run(suite, load_frame(ws, version), lambda other: load_frame(ws, ws.resolve(other)))
    suite_digest = ws.objects.put_bytes(suite_file.read_bytes())
    result_digest = ws.store_json(result.as_dict())
    predicate = {"suite": {"file": suite_file.name, "blake3": suite_digest}, "result": result.as_dict()}
    envelope, keyid = _sign(ws, evidence.statement(version.ref, version.digest, evidence.EXPECTATIONS_TYPE, predicate))
    with ws.db.write() as conn:
        _, event = evidence.record_expectations(
            conn,
            version.name,
            version.version,
            suite=suite_digest,
            result=result_digest,
            success=result.success,
            envelope_digest=envelope,
            keyid=keyid,
            actor=ws.config.actor,
        )
    audit.advance_witness(ws.witness, event)
    if strict and not result.success:
        failed = [r.expectation for r in result.results if not r.success]
        raise UsageError(
            f"{version.ref} fails {len(failed)} expectation(s) of {suite_file.name}: {', '.join(failed[:3])}",
            hint=f"see `custody show {version.ref}`; fix the data or the suite (the result is kept as evidence)",
        )
    return result


def load_frame(ws: Workspace, version: ArtifactVersion) -> pd.DataFrame:
    """The version's records as a DataFrame (from its record manifest, else from the file by suffix)."""
    import pandas as pd

    if version.records is not None:
        return ws.record_table(version).drop_columns(["record_id"]).to_pandas()
    suffix = Path(version.path or version.name).suffix.lower()
    if version.kind != "file" or suffix not in (".csv", ".parquet", ".jsonl", ".json"):
        raise UsageError(
            f"{version.ref} is not a table expectations can read",
            hint="add it with --records, or as a .csv, .parquet or .jsonl file",
        )
    path = ws.objects.path(version.digest)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=suffix == ".jsonl")


def after_add(ws: Workspace, versions: list[ArtifactVersion], suite_file: Path | None, strict: bool) -> None:
    """What ``add`` does after recording: apply a ``terms.toml`` beside new data, and run the suite
    given (or the one ``[expectations] suites`` names for the artifact)."""
    rules = config(ws)
    for version in versions:
        beside = terms.beside(ws.root / version.path) if version.path else None
        if beside is not None and terms_of(ws, version) is None:
            set_terms(ws, version.ref, terms.read_file(beside))
        chosen = suite_file or (Path(s) if (s := rules.suite_for(version.name)) else None)
        if chosen is not None:
            run_expectations(
                ws, version.ref, ws.root / chosen if not chosen.is_absolute() else chosen, strict=strict or rules.strict
            )


def check_suite(suite_file: Path | None) -> None:
    """Parse a suite before anything is stored: a broken suite changes nothing."""
    if suite_file is not None:
        from mlcustody.policy import expectations

        expectations.parse(suite_file)


def evidence_of(ws: Workspace, version: ArtifactVersion) -> dict[str, Any]:
    """The terms in force on a version and its signed expectation results, for ``show``."""
    with ws.db.read() as conn:
        rows = evidence.expectation_rows(conn, version.name, version.version)
    in_force = terms_of(ws, version)
    results = []
    for row in rows:
        body = ws.read_json(row["result"])
        results.append(
            {
                "seq": row["seq"],
                "success": bool(row["success"]),
                "suite": row["suite"],
                "envelope": row["envelope"],
                "keyid": row["keyid"],
                "actor": row["actor"],
                "at": row["at"],
                "results": body["results"],
            }
        )
    shown = None
    if in_force is not None:
        shown = {
            **in_force.terms.as_dict(),
            "seq": in_force.seq,
            "consent_table": in_force.consent,
            "actor": in_force.actor,
            "at": in_force.at,
        }
    return {"terms": shown, "expectations": results}
