"""A draft of the EU AI Act Annex IV technical documentation of one model version, its nine sections.

The store fills what it knows, each fact cited: the version and its relation to earlier ones, the
software and hardware it was trained with, the development steps (the runs upstream), the design
facts it can see (model type, hyperparameters), the training data with provenance, records and
columns per Art. 10, validation metrics and stored investigations (bias, drift…), the logging of
Art. 12 (the decision log: entries and signed checkpoints for this version), and the lifecycle from
the registry and alias history. What only the provider can write — intended purpose, risk management
(Art. 9), harmonised standards, the declaration of conformity (Art. 47), the monitoring plan — is a
clearly marked blank. Art. 11: drawn up before placing on the market; Art. 18: kept ten years.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import json_number
from mlcustody.ledger.registry import versions as registry
from mlcustody.lineage import graph
from mlcustody.metadata.runs import store as runs
from mlcustody.metadata.schema import checkpoints, run_io
from mlcustody.reports import model_facts
from mlcustody.reports.citations import REVIEW, Citations, blank, fact, section
from mlcustody.storage.objects import ObjectStore

KIND = "annex-iv"
BASIS = ["EU AI Act Art. 11", "EU AI Act Annex IV", "EU AI Act Art. 10, 12, 18"]


def build(conn: Connection, objects: ObjectStore, ref: str) -> dict[str, Any]:
    """The draft's body (``mlcustody.report.annex-iv/v1``)."""
    version = registry.get(conn, ref)
    cites, gaps = Citations(), []
    attested = cites.attestation(version)
    problems = model_facts.verified(conn, objects, version)
    if problems:
        gaps.append(f"the attestation of {version.ref} does not verify: {problems[0].detail}")
    trained = model_facts.training(conn, objects, version, cites)
    if trained.run is None:
        gaps.append(f"{version.ref} has no training run: its development process and data are not known")
    found = model_facts.investigations(conn, version, cites)
    if not found:
        gaps.append(
            f"no investigation is stored for {version.ref}: run `custody investigate bias|case` for "
            "Art. 10(2)(f) and the per-group accuracy of section 3"
        )
    sections = [
        _general(conn, version, trained, cites, attested),
        _development(conn, version, trained, cites, attested, problems),
        _monitoring(conn, version, found, cites),
        section(
            "metrics",
            "4. Appropriateness of the performance metrics",
            [blank("metrics_rationale", "Why these metrics", "why the metrics in 2(g) suit the intended purpose")],
        ),
        section(
            "risk",
            "5. Risk management system (Art. 9)",
            [blank("risk_management", "Risk management", "the Art. 9 system: risks identified, estimated, mitigated")],
        ),
        _lifecycle(conn, version, cites),
        section(
            "standards",
            "7. Standards applied",
            [
                blank(
                    "standards",
                    "Harmonised standards",
                    "standards applied in full or in part; otherwise the "
                    "solutions adopted to meet Chapter III Section 2, and common specifications used",
                )
            ],
        ),
        section(
            "conformity",
            "8. EU declaration of conformity (Art. 47)",
            [blank("declaration", "Declaration of conformity", "a copy of the declaration")],
        ),
        section(
            "post_market",
            "9. Post-market monitoring (Art. 72)",
            [
                blank(
                    "monitoring_plan",
                    "Monitoring plan",
                    "the system that evaluates performance after placing on the market, with the plan",
                ),
                fact(
                    "drift_reports",
                    "Drift investigations stored",
                    [i for i in found if "-drift-" in i["report"]],
                    model_facts.cited([i for i in found if "-drift-" in i["report"]]) or [attested],
                ),
            ],
        ),
    ]
    return {
        "schema": f"mlcustody.report.{KIND}/v1",
        "kind": KIND,
        "title": f"Technical documentation (draft) of {version.ref}",
        "subject": version.ref,
        "basis": BASIS,
        "gaps": gaps,
        "sections": sections,
        "citations": cites.as_list(),
    }


def _general(
    conn: Connection,
    version: registry.ModelVersion,
    trained: model_facts.Training,
    cites: Citations,
    attested: str,
) -> dict[str, Any]:
    earlier = [v for v in registry.listing(conn) if v.name == version.name and v.version < version.version]
    lineage = [
        {"version": v.ref, "registered": v.created_at, "digest": v.digest, "cites": [cites.attestation(v)]}
        for v in earlier
    ]
    software = model_facts.software(trained.environment)
    fields = [
        blank("purpose", "1(a) Intended purpose and provider", "what the system is for, who provides it"),
        fact("version", "1(a) Version", version.ref, [attested]),
        fact(
            "previous_versions", "1(a) Relation to previous versions", lineage, model_facts.cited(lineage) or [attested]
        ),
        blank("interactions", "1(b) Interaction with other hardware, software, AI systems", "what it exchanges with"),
        fact("software", "1(c) Software it was built with", software, trained.cite)
        if software is not None
        else blank("software", "1(c) Software it was built with", "not captured"),
        blank("placing", "1(d) Forms of placing on the market", "packages, downloads, APIs"),
        blank("hardware", "1(e) Hardware it is meant to run on", "the training hardware is in 1(c); the target here"),
        blank("interface", "1(f)–(h) Illustrations, user interface, instructions for use", "for the deployer"),
    ]
    return section("general", "1. General description", fields, "Annex IV(1)")


def _development(
    conn: Connection,
    version: registry.ModelVersion,
    trained: model_facts.Training,
    cites: Citations,
    attested: str,
    problems: list[Any],
) -> dict[str, Any]:
    walked = graph.walk(conn, version.artifact, direction="up")
    steps = []
    for run in runs.load(conn, sorted(walked.ids("run"))):
        seal = run.end.seal if run.end is not None else ""
        seconds = _seconds(run)
        steps.append(
            {
                "step": run.start.name,
                "run": run.id,
                "started": run.start.started_at,
                "seconds": seconds,
                "cites": [cites.run(run.id, seal)] if seal else [],
            }
        )
    steps.sort(key=lambda s: (s["started"], s["run"]))
    sources = model_facts.sources(conn, version, cites)
    validation = _validation(conn, version, cites)
    fields = [
        fact("steps", "2(a) Development steps (runs upstream)", steps, model_facts.cited(steps)),
        fact("params", "2(b) Hyperparameters as run", trained.run.params, trained.cite)
        if trained.run is not None
        else blank("params", "2(b) Hyperparameters", "not known: no training run"),
        blank("design", "2(b) Design choices, rationale, assumptions, trade-offs", "what it optimises and why"),
        blank("architecture", "2(c) Architecture", "how the components feed each other"),
        fact(
            "compute",
            "2(c) Compute used per step (seconds)",
            {s["step"]: s["seconds"] for s in steps},
            model_facts.cited(steps),
        ),
        fact(
            "training_data",
            "2(d) Training data: snapshots, records, columns",
            trained.datasets,
            model_facts.cited(trained.datasets),
        ),
        fact("provenance", "2(d) Provenance: the raw sources", sources, model_facts.cited(sources)),
        blank("labelling", "2(d) Labelling and cleaning procedures", "how labels were made, outliers handled"),
        blank("oversight", "2(e) Human oversight measures (Art. 14)", "and the aids to interpret outputs"),
        blank("changes", "2(f) Pre-determined changes", "and how compliance is kept through them"),
        fact(
            "validation",
            "2(g) Validation metrics (runs that read the model)",
            validation,
            model_facts.cited(validation) or [attested],
            REVIEW,
            "test logs and reports must be dated and signed by the responsible persons",
        ),
        fact(
            "integrity",
            "2(h) Integrity: signed attestation verified",
            not problems,
            [attested],
            note="; ".join(p.detail for p in problems),
        ),
        blank("cybersecurity", "2(h) Cybersecurity measures", "beyond artifact signing and integrity checks"),
    ]
    return section("development", "2. Elements and development process", fields, "Annex IV(2); Art. 10")


def _monitoring(
    conn: Connection, version: registry.ModelVersion, found: list[dict[str, Any]], cites: Citations
) -> dict[str, Any]:
    used = model_facts.usage(conn)[version.ref]
    sealed = conn.execute(sa.select(sa.func.count()).select_from(checkpoints)).scalar() or 0
    fields = [
        fact(
            "decisions",
            "Decisions logged by this version (Art. 12)",
            used,
            [cites.attestation(version)],
            note=f"hash-chained decision log, RFC 6962 Merkle tree, {sealed} signed checkpoint(s); "
            "`custody verify --decisions` recomputes it",
        ),
        fact(
            "investigations",
            "Investigations stored (bias, slices, drift…)",
            found,
            model_facts.cited(found) or [cites.attestation(version)],
        ),
        blank(
            "limits",
            "Capabilities and limits, foreseeable risks",
            "accuracy for specific groups and overall; "
            "unintended outcomes; sources of risk to health, safety, fundamental rights",
        ),
        blank("input_specification", "Input data specification", "what inputs the system expects"),
    ]
    return section("monitoring", "3. Monitoring, functioning and control", fields, "Annex IV(3); Art. 12, 13")


def _lifecycle(conn: Connection, version: registry.ModelVersion, cites: Citations) -> dict[str, Any]:
    moves = []
    for alias, history in sorted(registry.aliases(conn, version.name).items()):
        for move in history:
            moves.append(
                {
                    "alias": alias,
                    "to": move.version,
                    "from": move.previous,
                    "at": move.at,
                    "by": move.actor,
                    "why": move.reason,
                    "cites": [cites.alias(version.name, move)],
                }
            )
    moves.sort(key=lambda m: (m["at"], m["alias"]))
    fields = [
        fact(
            "alias_history",
            "Changes of what is deployed",
            moves,
            model_facts.cited(moves) or [cites.attestation(version)],
        )
    ]
    return section("lifecycle", "6. Changes over the lifecycle", fields, "Annex IV(6)")


def _validation(conn: Connection, version: registry.ModelVersion, cites: Citations) -> list[dict[str, Any]]:
    readers = sa.select(run_io.c.run_id).where(run_io.c.role == "input", run_io.c.artifact == version.artifact)
    found = []
    for run in runs.load(conn, sorted(set(conn.execute(readers).scalars()))):
        if run.metrics and run.end is not None and run.end.seal:
            found.append(
                {
                    "run": run.id,
                    "step": run.start.name,
                    "metrics": {k: json_number(m.value) for k, m in sorted(run.metrics.items())},
                    "cites": [cites.run(run.id, run.end.seal)],
                }
            )
    return found


def _seconds(run: runs.Run) -> float | None:
    from datetime import datetime

    if run.end is None:
        return None
    return (datetime.fromisoformat(run.end.ended_at) - datetime.fromisoformat(run.start.started_at)).total_seconds()
