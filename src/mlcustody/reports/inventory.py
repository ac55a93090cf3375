"""A model inventory in the spirit of SR 11-7 (section VI) and its successor SR 26-2 / OCC Bulletin 2026-13:
every registered model version with its status, training data, validation, usage and integrity.

The store fills, per version: when and by whom it was registered, its status (``production`` and
other aliases pointing at it now; ``retired`` when an alias once pointed at it and has moved on;
``development`` otherwise), its training run and data snapshots, the metrics of runs that evaluated
it and the investigations stored about it, how many decisions it made (the decision log), whether its
signed attestation verifies now (the last verification) and, as open findings, what does not. A
person fills, per model: purpose and products, materiality tier (exposure × purpose), whether it is in
scope of SR 26-2 (not generative or agentic AI, not deterministic rules), the owner and validator,
restrictions and limitations, and the validation dates.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from mlcustody.ledger.registry import versions as registry
from mlcustody.reports import model_facts
from mlcustody.reports.citations import Citations, blank, fact, section
from mlcustody.storage.objects import ObjectStore

KIND = "inventory"
BASIS = ["SR 11-7 section VI", "SR 26-2 / OCC Bulletin 2026-13", "FDIC FIL-15-2026"]


def build(conn: Connection, objects: ObjectStore) -> dict[str, Any]:
    """The inventory's body (``mlcustody.report.inventory/v1``)."""
    cites, gaps = Citations(), []
    used = model_facts.usage(conn)
    rows = []
    for version in registry.listing(conn):
        attested = cites.attestation(version)
        trained = model_facts.training(conn, objects, version, cites)
        problems = model_facts.verified(conn, objects, version)
        found = model_facts.investigations(conn, version, cites)
        status, alias_cites = _status(conn, version, cites)
        rows.append(
            {
                "model": version.ref,
                "registered": version.created_at,
                "registered_by": version.actor,
                "status": status,
                "training_run": trained.run.id if trained.run is not None else None,
                "training_data": [d["ref"] for d in trained.datasets],
                "investigations": [i["report"] for i in found],
                "decisions": used[version.ref],
                "attestation_verified": not problems,
                "open_findings": [p.detail for p in problems],
                "cites": [
                    attested,
                    *trained.cite,
                    *alias_cites,
                    *model_facts.cited(trained.datasets),
                    *model_facts.cited(found),
                ],
            }
        )
        if problems:
            gaps.append(f"{version.ref}: the attestation does not verify ({problems[0].detail})")
    if not rows:
        gaps.append("no model is registered: register one with `custody model register NAME --run RUN`")
    fields = [
        fact("models", "Every model version", rows, model_facts.cited(rows)),
        blank("purpose", "Purpose, products, restrictions on use (per model)", "SR 11-7 VI: what each model is for"),
        blank("materiality", "Materiality tier (per model)", "SR 26-2: exposure × purpose"),
        blank("scope", "In scope of SR 26-2 (per model)", "not generative or agentic AI, not deterministic rules"),
        blank("owners", "Owner, developer, validator (per model)", "the people responsible"),
        blank("validation_dates", "Validation completed and planned; validity period", "dates and the triggers"),
        blank("limitations", "Limitations and policy exceptions (per model)", "what each must not be used for"),
    ]
    return {
        "schema": f"mlcustody.report.{KIND}/v1",
        "kind": KIND,
        "title": "Model inventory",
        "subject": "all",
        "basis": BASIS,
        "gaps": gaps,
        "sections": [section("inventory", "Models", fields, "SR 11-7 VI; SR 26-2")],
        "citations": cites.as_list(),
    }


def _status(conn: Connection, version: registry.ModelVersion, cites: Citations) -> tuple[str, list[str]]:
    now, before = [], False
    cited = []
    for alias, moves in sorted(registry.aliases(conn, version.name).items()):
        if moves[-1].version == version.version:
            now.append(alias)
            cited.append(cites.alias(version.name, moves[-1]))
        elif any(m.version == version.version for m in moves):
            before = True
            cited.append(cites.alias(version.name, moves[-1]))
    return (", ".join(now) if now else "retired" if before else "development"), cited
