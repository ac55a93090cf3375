"""Layer 4 — lineage: graph queries at artifact and record level, and exports (PROV, OpenLineage)."""
