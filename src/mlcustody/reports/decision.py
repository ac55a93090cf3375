"""The right-to-explanation report of one decision (GDPR Art. 15(1)(h) and 22, AI Act Art. 86).

What it states and where each fact comes from: the decision and its time (the decision-log entry);
the model version and the aliases serving it then (the registry row, the alias history); the
attestation and what checking it found (the DSSE envelope and its key); the training run (its seal)
and the training data with the categories and raw sources it came from (dataset versions and record
manifests); the person's data actually used (the decision's encrypted payload); the logic actually
applied to it — per-feature contributions, the principal reasons drawn only from factors the model
scored, and counterfactuals (``reports.explain``, computed on the registered model reloaded
safely); the most influential training records, pseudonymised, with their raw sources
(``forensics.decision_records``); human-oversight fields left for a person; and the decision's
inclusion proof against the first signed checkpoint that sealed it (CJEU C-203/22: the procedure
actually applied, not the algorithm in general).

What cannot be computed is not left out silently: each gap is listed in ``gaps`` and said in the
section it concerns, so the report is still produced (an unsealed decision, shredded inputs, a
pickled model, an attestation that no longer verifies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody.errors import UsageError
from mlcustody.forensics import decision_records
from mlcustody.ledger import kek, keys, tlog
from mlcustody.ledger.decisions import log as decisions
from mlcustody.ledger.decisions import queries as decision_queries
from mlcustody.ledger.decisions import store as decision_store
from mlcustody.ledger.registry import check as model_check
from mlcustody.ledger.registry import versions as registry
from mlcustody.metadata import ref_resolution as refs
from mlcustody.metadata.schema import checkpoints
from mlcustody.reports import explain, model_facts
from mlcustody.reports.citations import (
    PSEUDONYM_NOTE,
    REVIEW,
    Citations,
    blank,
    deadlines,
    fact,
    pseudonymiser,
    section,
)
from mlcustody.storage.objects import ObjectStore

KIND = "decision"
BASIS = ["GDPR Art. 15(1)(h)", "GDPR Art. 22", "EU AI Act Art. 86", "CJEU C-203/22", "Reg B 12 CFR 1002.9"]
TOP_RECORDS = 5


@dataclass(frozen=True)
class Inclusion:
    """A decision's tlog-proof against the first checkpoint that sealed it (which never changes)."""

    entry: str
    leaf_hash: str
    size: int
    vkey: str
    proof: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def build(
    conn: Connection,
    store: decision_records.Store,
    decision_id: str,
    *,
    keyset: kek.Keyset | None = None,
    top: int = TOP_RECORDS,
    received: date | None = None,
) -> dict[str, Any]:
    """The report's body (``mlcustody.report.decision/v1``): no time of its own, so the same store
    gives the same bytes."""
    decision = decision_queries.get(conn, decision_id)
    version = registry.get(conn, decision.ref)
    cites, gaps = Citations(), []
    entry = cites.decision(decision)
    attested = cites.attestation(version)
    problems = model_check.check(conn, store.objects, version, keys.check)
    if problems:
        gaps.append(f"the attestation of {version.ref} does not verify: {problems[0].detail}")
    inputs = decision_queries.read_inputs(conn, decision, keyset)
    sections = [
        _decision_section(conn, decision, version, cites, entry, received),
        _model_section(version, cites, attested),
        _training_section(conn, store.objects, version, cites, gaps),
        _data_used_section(decision, inputs, entry, gaps),
    ]
    name = pseudonymiser(conn, keyset)
    sections += _logic_sections(conn, store, decision, version, inputs, cites, gaps, top, name)
    sections.append(_oversight_section())
    inclusion = _inclusion(conn, decision)
    if inclusion is None:
        gaps.append(f"decision {decision_id} is not sealed by a signed checkpoint yet: no inclusion proof")
    sections.append(_verification_section(version, problems, inclusion, cites, attested, entry))
    return {
        "schema": f"mlcustody.report.{KIND}/v1",
        "kind": KIND,
        "title": f"Explanation of decision {decision_id}",
        "subject": decision_id,
        "basis": BASIS,
        "gaps": gaps,
        "sections": sections,
        "citations": cites.as_list(),
        "inclusion": inclusion.as_dict() if inclusion is not None else None,
    }


def _decision_section(
    conn: Connection,
    decision: decision_queries.Decision,
    version: registry.ModelVersion,
    cites: Citations,
    entry: str,
    received: date | None,
) -> dict[str, Any]:
    moves = []
    for alias, history in sorted(registry.aliases(conn, version.name).items()):
        before = [m for m in history if m.at <= decision.time]
        if before and before[-1].version == decision.version:
            moves.append((alias, cites.alias(version.name, before[-1])))
    fields = [
        fact("decision_id", "Decision", decision.decision_id, [entry]),
        fact("time", "Made at", decision.time, [entry]),
        fact("output", "Result", decision.output, [entry]),
        fact("subject", "Data subject (pseudonym, HMAC-SHA256)", decision.subject, [entry]),
        fact("model_version", "Model version that served it", decision.ref, [entry]),
        fact("aliases", "Aliases pointing at that version then", [a for a, _ in moves], [c for _, c in moves]),
        *deadlines(received),
        blank(
            "solely_automated",
            "Solely automated, with legal or similar effect?",
            "the regime of this use: Art. 22(1) applies, and under which exception of Art. 22(2)",
        ),
    ]
    return section("decision", "The decision", fields, "GDPR Art. 15(1)(h), 22; AI Act Art. 86")


def _model_section(version: registry.ModelVersion, cites: Citations, attested: str) -> dict[str, Any]:
    model = cites.artifact(version.artifact, version.digest)
    fields = [
        fact("model", "Model file", version.artifact, [model]),
        fact("model_digest", "Model digest (BLAKE3)", version.digest, [model]),
        fact("model_sha256", "Model digest (SHA-256)", version.sha256, [attested]),
        fact("attestation", "Signed attestation (DSSE envelope)", version.attestation, [attested]),
        fact("signing_key", "Signed by key", version.keyid, [attested]),
        fact("registered_at", "Registered at", version.created_at, [attested]),
    ]
    return section("model", "The model that made it", fields, "AI Act Art. 12")


def _training_section(
    conn: Connection, objects: ObjectStore, version: registry.ModelVersion, cites: Citations, gaps: list[str]
) -> dict[str, Any]:
    trained = model_facts.training(conn, objects, version, cites)
    if trained.run is None:
        gaps.append(f"{version.ref} has no training run: its training data is not known")
        return section("training", "Training", [blank("training_data", "Training data", "not known to the store")])
    raw = model_facts.sources(conn, version, cites)
    columns = sorted({c for d in trained.datasets for c in d["columns"]})
    fields = [
        fact("run", "Training run", trained.run.id, trained.cite),
        fact("run_name", "Step", trained.run.start.name, trained.cite),
        fact("datasets", "Training data snapshots", trained.datasets, model_facts.cited(trained.datasets)),
        fact("sources", "Sources of the training data", raw, model_facts.cited(raw)),
        fact("categories", "Categories of data (columns)", columns, model_facts.cited(trained.datasets)),
        blank(
            "collection_purpose",
            "Original purpose of collection",
            "AI Act Art. 10(2)(b): why these data were collected, and the legal basis of their use for training",
        ),
    ]
    return section("training", "Training data", fields, "GDPR Art. 15(1)(g); AI Act Art. 10")


def _data_used_section(
    decision: decision_queries.Decision, inputs: dict[str, Any] | None, entry: str, gaps: list[str]
) -> dict[str, Any]:
    if inputs is None:
        state = "not kept by policy" if decision.payload_digest is None else "crypto-shredded (subject's key destroyed)"
        gaps.append(f"the inputs of {decision.decision_id} were {state}: the logic cannot be shown on them")
        value: Any = state
    else:
        value = [{"input": name, "value": inputs[name], "source": "decision log payload"} for name in sorted(inputs)]
    fields = [
        fact("inputs", "The person's data the model used", value, [entry]),
        fact("input_digest", "Digest of those inputs as logged", decision.input_digest, [entry]),
    ]
    return section("data_used", "Your data that was used", fields, "GDPR Art. 15(1)(g); CJEU C-203/22")


def _logic_sections(
    conn: Connection,
    store: decision_records.Store,
    decision: decision_queries.Decision,
    version: registry.ModelVersion,
    inputs: dict[str, Any] | None,
    cites: Citations,
    gaps: list[str],
    top: int,
    name: Callable[[str], str],
) -> list[dict[str, Any]]:
    if inputs is None:
        return [section("logic", "How the result was reached", [blank("logic", "Logic", "no inputs to explain")])]
    try:
        found = decision_records.training_set(conn, store, version, list(inputs), None)
        x = decision_records.point(found, inputs, f"the inputs of decision {decision.decision_id}")
        with decision_records.quiet_feature_names():
            explained = explain.explain(found.model, found.features, x, found.rows())
    except (UsageError, ValueError) as exc:
        gaps.append(f"the logic could not be computed: {exc}")
        return [section("logic", "How the result was reached", [blank("logic", "Logic", str(exc))])]
    model = cites.artifact(version.artifact, version.digest)
    data = [cites.artifact(found.dataset.ref, found.dataset.digest)]
    basis = [model, *data, cites.decision(decision)]
    contributions = [
        {"feature": c.feature, "value": c.value, "training_average": c.baseline, "effect": c.effect}
        for c in explained.contributions
    ]
    reasons = [
        f"{c.feature} = {c.value} ({'raised' if c.effect > 0 else 'lowered'} the score by {abs(c.effect):.4g} "
        f"against the training average {c.baseline:.4g})"
        for c in explain.principal(explained)
    ]
    counterfactuals = [
        {"factor": c.feature, "now": c.value, "would_have_to_be": c.needed, "result_then": c.outcome}
        for c in explained.counterfactuals
    ]
    fields = [
        fact("model_type", "Kind of model", type(found.model).__name__, [model]),
        fact("features", "Factors the model scores", found.features, [model, *data]),
        fact("method", "How contributions were computed", explained.method, [model]),
        fact(
            "score",
            "Score",
            {
                "unit": explained.score,
                "this_decision": explained.value,
                "training_average": explained.baseline_value,
                "predicted": explained.predicted,
            },
            basis,
        ),
        fact("contributions", "What each factor contributed", contributions, basis),
        fact(
            "principal_reasons",
            "Principal reasons",
            reasons,
            basis,
            REVIEW,
            "only factors the model actually scored; the wording given to the person needs approval "
            "(Reg B 12 CFR 1002.9(b)(2))",
        ),
        fact(
            "counterfactuals",
            "What would have changed the result",
            counterfactuals,
            basis,
            REVIEW,
            "the nearest value of one factor, all others as they were, that changes the predicted result; check "
            "each change is realistic and not discriminatory before it is given",
        ),
        blank("reason_wording", "Reasons as worded for the person", "plain-language text of each principal reason"),
        blank(
            "redactions",
            "Redactions (trade secrets)",
            "what is withheld from the person and why; it stays "
            "available to the supervisory authority or court (CJEU C-203/22)",
        ),
    ]
    logic = section("logic", "How the result was reached", fields, "GDPR Art. 15(1)(h); AI Act Art. 86")
    return [logic, _records_section(conn, store, found, x, cites, top, name)]


def _records_section(
    conn: Connection,
    store: decision_records.Store,
    found: decision_records.TrainingSet,
    x: list[Any],
    cites: Citations,
    top: int,
    name: Callable[[str], str],
) -> dict[str, Any]:
    from mlcustody.forensics import attribution  # lazily: only an explained decision needs NumPy and its methods

    with decision_records.quiet_feature_names():
        result = attribution.attribute(found.model, found.rows(), found.labels(), x, top)
    ranked = decision_records.traced(conn, store, found, result.top)
    manifest = (found.dataset.records or {}).get("manifest", "")
    cited = [cites.records(found.dataset.ref, manifest)]
    rows = []
    for item in ranked:
        sources = []
        for node in item.sources:
            origin = refs.resolve(conn, node.ref)
            cited.append(cites.records(origin.ref, (origin.records or {}).get("manifest", "")))
            sources.append(f"{node.ref} {node.source or ''}".strip())
        rows.append(
            {
                "rank": item.rank,
                "record": name(item.record_id),
                "effect": item.delta,
                "label": item.label,
                "sources": sources,
            }
        )
    fields = [
        fact("method", "Method", result.method, cited[:1]),
        fact("measure", "Effect means", result.measure, cited[:1]),
        fact(
            "records",
            "Most influential training records (pseudonymised)",
            rows,
            sorted(set(cited)),
            note=PSEUDONYM_NOTE,
        ),
    ]
    return section("records", "Training records that weighed most", fields, "GDPR Art. 15(1)(h)")


def _oversight_section() -> dict[str, Any]:
    fields = [
        blank("reviewer", "Reviewed by", "who reviewed the decision (AI Act Art. 14, 26(2); WP251: not token)"),
        blank("reviewed_at", "Reviewed on", "when"),
        blank("review_outcome", "Outcome of the review", "agreed, or overrode the model, and why"),
        blank(
            "contest",
            "How to contest",
            "how to obtain human intervention, express a view and contest "
            "(GDPR Art. 22(3)); complaint to the supervisory authority (Art. 77)",
        ),
    ]
    return section("oversight", "Human oversight", fields, "GDPR Art. 22(3); AI Act Art. 14")


def _verification_section(
    version: registry.ModelVersion,
    problems: list[Any],
    inclusion: Inclusion | None,
    cites: Citations,
    attested: str,
    entry: str,
) -> dict[str, Any]:
    checked = [entry]
    if inclusion is not None:
        checked.append(cites.checkpoint(inclusion.size, tlog.parse_proof_text(inclusion.proof).checkpoint_note))
    fields = [
        fact(
            "attestation_verified",
            f"Attestation of {version.ref} verified",
            not problems,
            [attested],
            note="; ".join(p.detail for p in problems),
        ),
        fact(
            "log_inclusion_verified",
            "Decision proven in the signed decision log",
            inclusion is not None,
            checked,
            note="" if inclusion is None else f"tlog inclusion proof against the checkpoint of size {inclusion.size}",
        ),
    ]
    return section("verification", "Verification", fields, "GDPR Art. 5(2)")


def _inclusion(conn: Connection, decision: decision_queries.Decision) -> Inclusion | None:
    """The proof against the smallest checkpoint covering the decision: later decisions never change it."""
    row = conn.execute(
        sa.select(checkpoints).where(checkpoints.c.size > decision.position).order_by(checkpoints.c.size).limit(1)
    ).first()
    if row is None:
        return None
    path = decision_store.tree(conn, row.size).inclusion_proof(decision.position, row.size)
    proof = tlog.inclusion_proof_text(decision.position, path, row.note)
    entry = decision.entry()
    vkey = decisions.verifier_key(conn, row.keyid)
    tlog.verify_proof_text(proof, entry, vkey)
    return Inclusion(entry.decode("utf-8"), tlog.leaf_hash(entry).hex(), row.size, vkey, proof)
