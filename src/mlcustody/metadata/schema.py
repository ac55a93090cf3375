"""Every table of the metadata database, in SQLAlchemy Core; Alembic migrations must match this file.

Times are stored as RFC 3339 UTC strings (``_canonical.utc_now``) so they sort, compare and hash the
same on SQLite and PostgreSQL. JSON columns hold RFC 8785 canonical text for the same reason.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Alembic revision this release's code expects; tests check it is the single head.
REVISION = "0008"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

store_info = Table(
    "store_info",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_digest", String(64), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(300), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(20), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("path", Text, nullable=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("name", "version"),
    Index(None, "digest"),
)

# A run's start: written once when it begins and never changed (its end is a separate row), so it
# can be audited like any insert-only table. ``code`` is the digest of a canonical JSON object in
# the store (git commit, branch, remote, dirty diff, entry script).
runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("parent_id", String(32), nullable=True),
    Column("command", Text, nullable=False),
    Column("code", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", String(32), nullable=False),
    Index(None, "name"),
    Index(None, "started_at"),
)

# A run's end and seal: the digest of its canonical record (an object in the store), which covers
# every param, tag, metric and input/output row below; ``verify`` recomputes it from those rows.
# ``environment`` (interpreter, packages, OS, hardware) is known for sure only once the command ran,
# so it is recorded here; one environment object is shared by every run that had it ("" if unknown).
run_ends = Table(
    "run_ends",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("status", String(10), nullable=False),
    Column("exit_status", Integer, nullable=True),
    Column("error", Text, nullable=False),
    Column("ended_at", String(32), nullable=False),
    Column("processes", Text, nullable=False),
    Column("environment", String(64), nullable=False),
    Column("seal", String(64), nullable=False),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Column("number", Float, nullable=True),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# One row per logged value; NaN is stored as NULL (SQLite cannot hold it) and read back as NaN.
run_metrics = Table(
    "run_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Index(None, "run_id", "key"),
)

# The latest value, range and count of each metric of each run, kept by the run's writer so that
# searching thousands of runs by a metric is one indexed join, not a scan of every logged value.
run_metric_latest = Table(
    "run_metric_latest",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("min", Float, nullable=True),
    Column("max", Float, nullable=True),
    Column("count", BigInteger, nullable=False),
    Index(None, "key", "value"),
)

# Files and artifact versions a run read (role "input") or produced (role "output"). ``source`` says
# how it was learnt: declared by the user, captured from the process's file I/O, or through the SDK.
run_io = Table(
    "run_io",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("role", String(10), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("digest", String(64), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("artifact", String(310), nullable=True),
    Column("source", String(10), nullable=False),
    Index(None, "digest"),
    Index(None, "artifact"),
)

# Record lineage of a run: for each (output version, input version) pair, a Parquet object of
# (output_id, input_id) links sorted by output_id, so tracing one record back is a range read.
# ``relation`` says how records were combined: map, filter, join, aggregate, concat or declared.
record_lineage = Table(
    "record_lineage",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("output", String(310), primary_key=True),
    Column("input", String(310), primary_key=True),
    Column("relation", String(20), nullable=False),
    Column("links", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    Index(None, "output"),
    Index(None, "input"),
)

# Column lineage of a run: each output column and the input columns it was computed from.
column_lineage = Table(
    "column_lineage",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("output", String(310), primary_key=True),
    Column("column", String(250), primary_key=True),
    Column("input", String(310), primary_key=True),
    Column("input_column", String(250), primary_key=True),
    Index(None, "output", "column"),
)

# Signing keys: the public half and its validity. The private half never enters the database: it is
# kept encrypted under .custody/keys/. ``keyid`` is the one securesystemslib computes, so envelopes
# verify with it. A key is valid from ``created_at`` until it is retired (rotated) or revoked.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("keyid", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(20), nullable=False),
    Column("scheme", String(40), nullable=False),
    Column("public_pem", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Index(None, "name"),
)

# What happened to a key after it was made: "retired" (replaced by rotation; its signatures made
# before stay valid) or "revoked" (compromised; none of its signatures is trusted any more).
key_events = Table(
    "key_events",
    metadata,
    Column("keyid", String(64), primary_key=True),
    Column("event", String(10), primary_key=True),
    Column("at", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
)

# A registered model version: the model artifact version, the run that trained it, and the signed
# attestation (a DSSE envelope stored as an object) that binds them to the model's lineage.
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("artifact", String(310), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("lineage_digest", String(64), nullable=False),
    Column("attestation", String(64), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
)

# Alias history: every move of an alias is a new row (``seq`` counts per name and alias); the alias
# points at the version of its highest ``seq``. Nothing is overwritten, so who moved it, when, from
# which version and why is always there.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=True),  # None: the alias was removed
    Column("previous", Integer, nullable=True),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
)

# The decision log (docs/decisions.md). Decisions are stored in Parquet segments, each one blob written
# once with the transaction that appends it (``ledger.decisions.store``); ``frontier`` is the Merkle
# tree's right edge after the segment, so an appender resumes without reading the leaves.
decision_segments = Table(
    "decision_segments",
    metadata,
    Column("first", BigInteger, primary_key=True, autoincrement=False),
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
)

# Roots of the tree's completed perfect subtrees of 4,096 leaves: with one tile's leaves they give any
# root or proof of the log without reading the rest of it.
decision_tiles = Table(
    "decision_tiles",
    metadata,
    Column("tile", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
)

# The index of the decision log: one row per decision at ``position`` (its leaf index, gap-free), for
# lookups by id, with its subject (a ``decision_subjects`` row); everything else is in its segment.
# Kept this small on purpose: every column and index here costs on each of 100,000 inserts a second.
decisions = Table(
    "decisions",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("decision_id", String(200), nullable=False, unique=True),
    Column("subject", Integer, nullable=True),
)

# Which decisions each subject has, for "every decision about this customer". Postings are appended
# to ``decision_postings_new`` (no index: appending costs what a row costs) and, every million or so,
# written sorted as one new ``run`` of ``decision_postings``, whose key starts with the run: each merge
# appends at the end of the tree. An index on ``decisions.subject`` would take each batch's inserts at
# random places over the whole index and rewrite most of it at every commit; merging into one sorted
# table would rewrite all of it at every merge. A lookup seeks once per run.
decision_postings = Table(
    "decision_postings",
    metadata,
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("subject", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)
decision_postings_new = Table(
    "decision_postings_new",
    metadata,
    Column("subject", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
)

# Data subjects of the decision log: the HMAC of their id (``""`` for decisions without a subject) and
# their AES-256-GCM data key. Crypto-shredding sets ``key`` to NULL: their payloads become unreadable,
# the log stays verifiable and their decisions stay findable by subject.
decision_subjects = Table(
    "decision_subjects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(64), nullable=False, unique=True),
    Column("key", LargeBinary, nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("shredded_at", String(32), nullable=True),
)

# Signed checkpoints of the decision log: a c2sp.org/tlog-checkpoint note (origin, size, root) signed
# with the Ed25519 key ``keyid`` (a ``signing_keys`` row named decision-log).
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("at", String(32), nullable=False),
)

# Tables whose every row is written through ``audit.record_row`` and re-checked by ``verify``,
# with the columns that identify a row. An autoincrement surrogate id is assigned by the database
# after the event is built, so it is not part of what is hashed.
AUDITED: dict[str, tuple[str, ...]] = {
    "artifact_versions": ("name", "version"),
    "runs": ("id",),
    "run_ends": ("run_id",),
    "signing_keys": ("keyid",),
    "key_events": ("keyid", "event"),
    "model_versions": ("name", "version"),
    "model_aliases": ("name", "alias", "seq"),
}


# -- policy (0008): terms of sources, signed expectation results, signed overrides of the terms gate --

# The terms a version came under (license, consent basis, purposes, retention): each setting is a new
# ``seq``; the newest is in force, the older ones stay as history. ``terms`` is canonical JSON;
# ``consent`` the digest of a Parquet object (record_id, consent) when terms are set per record.
source_terms = Table(
    "source_terms",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("terms", Text, nullable=False),
    Column("consent", String(64), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
)

# The result of an expectation suite run on a version: the suite and the result as objects, and the
# DSSE envelope (an object) that signs the result with the key ``keyid``.
expectation_results = Table(
    "expectation_results",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("suite", String(64), nullable=False),
    Column("result", String(64), nullable=False),
    Column("success", Integer, nullable=False),
    Column("envelope", String(64), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
)

# An alias moved onto a version whose data's terms were violated, on purpose: who, why, the findings
# overridden (an object) and the DSSE envelope that signs them.
terms_overrides = Table(
    "terms_overrides",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("findings", String(64), nullable=False),
    Column("envelope", String(64), nullable=False),
    Column("keyid", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
)

AUDITED |= {
    "source_terms": ("name", "version", "seq"),
    "expectation_results": ("name", "version", "seq"),
    "terms_overrides": ("name", "alias", "seq"),
}


def hashed_columns(table: Table) -> list[Column[object]]:
    return [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
