"""Layer 1 — bytes: content-addressed objects, Merkle manifests, the stat cache, links, checkout, diff."""
