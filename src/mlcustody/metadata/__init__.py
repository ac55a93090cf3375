"""Layer 2 — metadata: the SQLAlchemy Core schema, engines, the audit chain and one module per entity."""
