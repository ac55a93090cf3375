"""The terms a source came under, and where they are kept.

``Terms``: a license (SPDX id, or ``LicenseRef-…`` with its own terms), a consent basis (GDPR Art. 6(1)
or Art. 9(2)), the purposes the data may serve, and a retention limit (a date, or days after the
version was added). They are set with ``custody terms set``, read from a ``terms.toml`` beside the data,
or given per record by a column of consent values (kept as a Parquet object of ``record_id, consent``).
Every setting is an audited ``source_terms`` row; the newest row of a version is in force.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlcustody._canonical import canonical_json, utc_now
from mlcustody.errors import UsageError
from mlcustody.metadata import audit
from mlcustody.metadata.artifacts import ArtifactVersion
from mlcustody.metadata.schema import source_terms
from mlcustody.policy import licenses

# GDPR Art. 6(1)(a)–(f) and Art. 9(2)(a) (explicit consent for special categories), plus the two states
# a record's consent can be in that allow nothing: withdrawn (Art. 7(3)) and none recorded.
BASES = {
    "consent": "Art. 6(1)(a) consent",
    "contract": "Art. 6(1)(b) performance of a contract",
    "legal-obligation": "Art. 6(1)(c) legal obligation",
    "vital-interests": "Art. 6(1)(d) vital interests",
    "public-task": "Art. 6(1)(e) public task",
    "legitimate-interests": "Art. 6(1)(f) legitimate interests",
    "explicit-consent": "Art. 9(2)(a) explicit consent (special categories)",
    "withdrawn": "consent withdrawn (Art. 7(3)): no further processing",
    "none": "no lawful basis recorded",
}
UNLAWFUL = frozenset({"withdrawn", "none"})
TERMS_FILE = "terms.toml"
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9_\-]{0,99}")
_DAYS = re.compile(r"(\d{1,6})d")


@dataclass(frozen=True)
class Terms:
    license: str | None = None
    commercial: bool | None = None  # a custom LicenseRef-… license: may a commercial model use it
    consent: str | None = None
    purposes: tuple[str, ...] = ()
    retention: str | None = None  # YYYY-MM-DD, or NNNd after the version was added
    consent_column: str | None = None
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["purposes"] = list(self.purposes)
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Terms:
        return cls(**{**data, "purposes": tuple(data.get("purposes") or ())})

    def license_info(self) -> licenses.License | None:
        if self.license is None:
            return None
        custom = {"commercial": bool(self.commercial)} if self.commercial is not None else None
        return licenses.lookup(self.license, custom)

    def retention_limit(self, added_at: str) -> dt.date | None:
        """The last day the data may be kept, for a version added at ``added_at``."""
        if self.retention is None:
            return None
        days = _DAYS.fullmatch(self.retention)
        if days:
            return dt.date.fromisoformat(added_at[:10]) + dt.timedelta(days=int(days.group(1)))
        return dt.date.fromisoformat(self.retention)


@dataclass(frozen=True)
class SourceTerms:
    """The terms in force on one version, who set them and when."""

    ref: str
    seq: int
    terms: Terms
    consent: str | None  # digest of the per-record consent table
    actor: str
    at: str
    counts: dict[str, int] = field(default_factory=dict)  # records per consent value


def validate(terms: Terms) -> Terms:
    """Refuse unknown license ids, consent bases, purposes and retention limits (nothing is stored)."""
    terms.license_info()
    if terms.consent is not None and terms.consent not in BASES:
        raise UsageError(f"unknown consent basis {terms.consent!r}", hint=f"use one of {', '.join(BASES)}")
    for purpose in terms.purposes:
        if not _PURPOSE.fullmatch(purpose):
            raise UsageError(
                f"purpose {purpose!r} is not valid", hint="use lower-case words joined by -, e.g. credit-scoring"
            )
    if terms.retention is not None and not _DAYS.fullmatch(terms.retention):
        try:
            dt.date.fromisoformat(terms.retention)
        except ValueError:
            raise UsageError(
                f"retention {terms.retention!r} is not a date or a number of days",
                hint="give YYYY-MM-DD or e.g. 365d (days after the version was added)",
            ) from None
    return terms


def read_file(path: Path) -> Terms:
    """A ``terms.toml``: ``license``, ``commercial``, ``consent``, ``purposes``, ``retention``,
    ``consent_column``, ``notes`` at the top level."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}", hint="fix the TOML syntax at that line") from None
    known = set(Terms.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(unknown)}", hint=f"use only {', '.join(sorted(known))}")
    if isinstance(data.get("purposes"), str):
        data["purposes"] = [data["purposes"]]
    return validate(Terms.from_dict(data))


def beside(path: Path) -> Path | None:
    """The ``terms.toml`` beside a file, or in a directory, if there is one."""
    folder = path if path.is_dir() else path.parent
    found = folder / TERMS_FILE
    return found if found.is_file() else None


def check_consent_values(values: dict[str, int], column: str) -> None:
    unknown = sorted(v for v in values if v not in BASES)
    if unknown:
        raise UsageError(
            f"consent column {column!r} has unknown values: {', '.join(repr(v) for v in unknown)}",
            hint=f"use only {', '.join(BASES)}",
        )


def record(
    conn: Connection, version: ArtifactVersion, terms: Terms, consent: str | None, actor: str
) -> tuple[SourceTerms, audit.Event]:
    """Append the version's next terms row (in the caller's write transaction)."""
    last = conn.execute(
        sa.select(sa.func.max(source_terms.c.seq)).where(
            source_terms.c.name == version.name, source_terms.c.version == version.version
        )
    ).scalar()
    row: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "seq": (last or 0) + 1,
        "terms": canonical_json(terms.as_dict()).decode("utf-8"),
        "consent": consent,
        "actor": actor,
        "at": utc_now(),
    }
    event = audit.record_row(conn, source_terms, row, actor=actor, action="terms.set")
    return SourceTerms(version.ref, row["seq"], terms, consent, actor, row["at"]), event


def in_force(conn: Connection, refs: list[str] | None = None) -> dict[str, SourceTerms]:
    """The terms in force on each version that has any (only ``refs`` when given), by ``NAME@V``."""
    query = sa.select(source_terms).order_by(source_terms.c.seq)
    found: dict[str, SourceTerms] = {}
    wanted = set(refs) if refs is not None else None
    for row in conn.execute(query):
        ref = f"{row.name}@{row.version}"
        if wanted is not None and ref not in wanted:
            continue
        terms = Terms.from_dict(json.loads(row.terms))
        found[ref] = SourceTerms(ref, row.seq, terms, row.consent, row.actor, row.at)
    return found
