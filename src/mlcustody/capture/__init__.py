"""Layer 3 — capture: run context, git/environment/config capture, file-I/O capture for `custody run`."""
