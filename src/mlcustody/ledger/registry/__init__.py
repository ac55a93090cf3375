"""The model registry: signed versions and aliases, their attestations, their check, OMS interop."""
