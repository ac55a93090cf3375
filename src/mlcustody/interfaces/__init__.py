"""Layer 8 — interfaces: the Python SDK facade, the JSON shapes, and the `custody` CLI."""
