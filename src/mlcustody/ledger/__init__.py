"""Layer 5 — ledger: model registry and aliases, attestations, the decision log and its checkpoints."""
