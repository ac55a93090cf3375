"""Record-level custody: which records (rows) a dataset version holds, each named by a fingerprint.

``fingerprint`` is the API (``fingerprints``, ``record_ids``, ``fingerprint``, ``to_arrow``,
``duckdb_fingerprint_sql``, ``SCHEME``); ``normalise`` builds the canonical encoding it hashes,
``fingerprint_sql`` writes that encoding as SQL and ``record_text`` the canonical text of keys.
The scheme is specified in docs/record-fingerprint.md. Nothing is imported here, so that importing
one module of the package does not pull in pyarrow for callers that never touch records.
"""
