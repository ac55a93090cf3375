"""Terminal and JSON output of the policy commands (terms, check terms, expectation results)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcustody.interfaces import shapes
from mlcustody.interfaces.cli import output

if TYPE_CHECKING:
    from mlcustody.policy.check import TermsCheck
    from mlcustody.policy.terms import SourceTerms


def terms_set(done: SourceTerms, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.terms_set(done))
        return
    t = done.terms
    parts = [
        f"license {t.license}" if t.license else "",
        f"consent {t.consent}" if t.consent else "",
        f"purposes {', '.join(t.purposes)}" if t.purposes else "",
        f"retention {t.retention}" if t.retention else "",
    ]
    output.line(f"{done.ref}: terms #{done.seq} set — " + "; ".join(p for p in parts if p))
    for value, count in sorted(done.counts.items()):
        output.line(f"  {count:>10} records with consent {value}")


def evidence(ref: str, found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.policy_evidence(ref, found))
        return
    for text in evidence_lines(found):
        output.line(text)


def evidence_lines(found: dict[str, Any]) -> list[str]:
    """Lines for ``custody show``: the terms in force and each signed expectation result."""
    lines = []
    t = found.get("terms")
    if t is not None:
        bits = [
            f"{k} {v if not isinstance(v, list) else ', '.join(v)}"
            for k, v in t.items()
            if k in ("license", "consent", "purposes", "retention", "consent_column") and v
        ]
        lines.append(f"{'terms':>11}: " + "; ".join(bits) + f" (set by {t['actor']} at {t['at'][:19]})")
    for item in found.get("expectations", []):
        failed = [r for r in item["results"] if not r["success"]]
        state = "passed" if item["success"] else f"FAILED {len(failed)} of {len(item['results'])}"
        lines.append(f"{'expectations':>11}: {state}, signed by {item['keyid'][:12]} at {item['at'][:19]}")
        lines.extend(f"{'':>13}✗ {r['expectation']} {r['kwargs']} ({r['unexpected_count']} unexpected)" for r in failed)
    return lines


def checked(found: TermsCheck, as_json: bool) -> None:
    if as_json:
        output.emit_json(shapes.terms_check(found))
        return
    use = ", ".join(
        x for x in ("commercial" if found.commercial else "", f"purpose {found.purpose}" if found.purpose else "") if x
    )
    output.line(f"{found.subject} ({found.artifact}) for {use or 'any use'}: {len(found.sources)} termed source(s)")
    for s in found.sources:
        counted = f"{s.records} records" if s.records is not None else "records not counted"
        output.line(f"  {s.path or s.ref} ({s.ref}): {s.terms.get('license') or 'no license'}, {counted} ({s.level})")
    if not found.findings:
        output.line("OK: the terms of its data allow this use.")
        return
    lines = []
    for f in found.findings:
        counted = f"{f.records} records" if f.records is not None else "all records"
        ids = f"; e.g. {', '.join(f.record_ids[:5])}" if f.record_ids else ""
        lines.append(f"{f.rule}: {f.path or f.source} ({f.source}) — {counted} — {f.detail}{ids}")
    output.failures(lines, f" in the terms of {found.subject}'s data")
