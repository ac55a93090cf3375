"""``check terms``: the combinations of terms a model's data makes that its use cannot meet.

Each finding names the termed version responsible (a raw source or a dataset on the way), the rule,
how many of its records reach the model and which (up to ``propagation.SAMPLE``):

- ``non_commercial``: a non-commercial license (CC-BY-NC-*, a custom license without commercial use)
  in a model checked ``--commercial``;
- ``no_derivatives``: a no-derivatives license (CC-BY-ND-*): a model is a derivative;
- ``share_alike_conflict``: two different share-alike families (CC-BY-SA-4.0 and ODbL-1.0): a
  derivative cannot carry both;
- ``purpose_not_covered``: ``--purpose P`` not among the source's purposes (consent without named
  purposes covers none: GDPR Art. 6(1)(a) consent is for "one or more specific purposes");
- ``consent_withdrawn``: records (or a whole source) whose consent is withdrawn or has no basis;
- ``retention_expired``: the source's retention limit has passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from mlcustody.metadata import ref_resolution as refs
from mlcustody.policy import propagation, terms
from mlcustody.storage.objects import ObjectStore


@dataclass(frozen=True)
class Finding:
    rule: str
    source: str  # the termed version responsible, NAME@V
    path: str | None  # its workspace path (the vendor file)
    records: int | None  # how many of its records reach the model (None: not counted, no manifest)
    record_ids: list[str]  # which (up to propagation.SAMPLE), when record links lead there
    level: str  # record | artifact
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SourceUse:
    ref: str
    path: str | None
    terms: dict[str, Any]
    level: str
    records: int | None


@dataclass(frozen=True)
class TermsCheck:
    subject: str  # the model version (or dataset) checked
    artifact: str
    purpose: str | None
    commercial: bool
    sources: list[SourceUse] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def tainted(self) -> bool:
        return bool(self.findings)


def check(
    conn: Connection,
    objects: ObjectStore,
    subject: str,
    artifact: str,
    *,
    purpose: str | None = None,
    commercial: bool = False,
    today: dt.date | None = None,
) -> TermsCheck:
    """Walk the lineage of ``artifact`` (``subject`` names it, e.g. ``credit@1``) and judge every
    termed version upstream (the artifact itself included) for that use."""
    walk = propagation.Walk(conn, objects, artifact)
    try:
        found = terms.in_force(conn, [*walk.artifacts(), artifact])
        if not found:
            return TermsCheck(subject, artifact, purpose, commercial)
        reach = walk.reach()
        report = TermsCheck(subject, artifact, purpose, commercial)
        judge = _Judge(conn, objects, walk, purpose, commercial, today or dt.date.today())
        families: dict[str, list[str]] = {}
        for ref in sorted(found):
            item = reach.get(ref) or propagation.Reach(ref, "artifact", _count(conn, ref), None)
            source = found[ref]
            version = refs.resolve(conn, ref)
            report.sources.append(SourceUse(ref, version.path, source.terms.as_dict(), item.level, item.records))
            report.findings.extend(judge.findings(source, item, version.path, version.created_at))
            info = source.terms.license_info()
            if info is not None and info.share_alike:
                families.setdefault(info.share_alike, []).append(ref)
        if len(families) > 1:
            for family, members in sorted(families.items()):
                others = sorted(set(families) - {family})
                for ref in members:
                    item = reach.get(ref) or propagation.Reach(ref, "artifact", _count(conn, ref), None)
                    detail = f"share-alike {family} cannot be kept together with {', '.join(others)}"
                    report.findings.append(
                        judge.finding("share_alike_conflict", item, refs.resolve(conn, ref).path, detail)
                    )
        return report
    finally:
        walk.close()


def _count(conn: Connection, ref: str) -> int | None:
    version = refs.resolve(conn, ref)
    return int(version.records["count"]) if version.records else None


class _Judge:
    def __init__(
        self,
        conn: Connection,
        objects: ObjectStore,
        walk: propagation.Walk,
        purpose: str | None,
        commercial: bool,
        today: dt.date,
    ) -> None:
        self.conn, self.objects, self.walk = conn, objects, walk
        self.purpose, self.commercial, self.today = purpose, commercial, today

    def finding(
        self,
        rule: str,
        reach: propagation.Reach,
        path: str | None,
        detail: str,
        where: str = "",
        params: list[object] | None = None,
    ) -> Finding:
        if reach.level == "record":
            count = self.walk.count(reach, where, params) if where else reach.records
            ids = self.walk.ids(reach, where, params, limit=propagation.SAMPLE)
            return Finding(rule, reach.ref, path, count, ids, "record", detail)
        return Finding(rule, reach.ref, path, reach.records, [], "artifact", detail)

    def findings(
        self, source: terms.SourceTerms, reach: propagation.Reach, path: str | None, added: str
    ) -> list[Finding]:
        t = source.terms
        found: list[Finding] = []
        info = t.license_info()
        if info is not None and self.commercial and not info.commercial:
            found.append(self.finding("non_commercial", reach, path, f"{info.id} does not allow commercial use"))
        if info is not None and not info.derivatives:
            found.append(
                self.finding("no_derivatives", reach, path, f"{info.id} does not allow derivatives such as a model")
            )
        bounded = t.purposes or t.consent in ("consent", "explicit-consent")
        if self.purpose is not None and bounded and self.purpose not in t.purposes:
            allowed = ", ".join(t.purposes) or "no purpose"
            detail = f"purpose {self.purpose!r} is not covered (the data allows {allowed})"
            found.append(self.finding("purpose_not_covered", reach, path, detail))
        if t.consent in terms.UNLAWFUL:
            found.append(
                self.finding("consent_withdrawn", reach, path, f"the source's basis is {terms.BASES[t.consent]}")
            )
        elif source.consent is not None:
            found.extend(self._record_consent(source, reach, path))
        limit = t.retention_limit(added)
        if limit is not None and limit < self.today:
            found.append(self.finding("retention_expired", reach, path, f"retention ended on {limit.isoformat()}"))
        return found

    def _record_consent(self, source: terms.SourceTerms, reach: propagation.Reach, path: str | None) -> list[Finding]:
        """Records whose own consent is withdrawn or missing, among those that reach the model."""
        assert source.consent is not None
        table = str(self.objects.path(source.consent))
        bad = sorted(terms.UNLAWFUL)
        if reach.level == "record" and reach.table is not None:
            marks = ", ".join("?" * len(bad))
            where = f"WHERE record_id IN (SELECT record_id FROM read_parquet(?) WHERE consent IN ({marks}))"
            params: list[object] = [table, *bad]
            count = self.walk.count(reach, where, params)
            if not count:
                return []
            return [
                self.finding(
                    "consent_withdrawn", reach, path, "records whose consent is withdrawn or missing", where, params
                )
            ]
        rows = self.walk.duck.execute(
            f"SELECT record_id FROM read_parquet(?) WHERE consent IN ({', '.join('?' * len(bad))}) ORDER BY 1",
            [table, *bad],
        ).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        detail = "records whose consent is withdrawn or missing"
        return [Finding("consent_withdrawn", reach.ref, path, len(ids), ids[: propagation.SAMPLE], "artifact", detail)]
