"""Alembic migrations of the metadata schema; run through ``metadata.migrate``, never by hand."""
