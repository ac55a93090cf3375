"""Record-level custody: which records (rows) a dataset version holds, each named by a fingerprint.

``fingerprint`` is the API (``fingerprints``, ``record_ids``, ``fingerprint``, ``to_arrow``,
``duckdb_fingerprint_sql``, ``SCHEME``); ``normalise`` applies the value rules of the encoding it
hashes, ``layout`` assembles the bytes, ``fingerprint_sql`` writes the same encoding as SQL and
``record_text`` the canonical text of keys.
The scheme is specified in docs/record-fingerprint.md. Nothing is imported here, so that importing
one module of the package does not pull in pyarrow for callers that never touch records.
"""
