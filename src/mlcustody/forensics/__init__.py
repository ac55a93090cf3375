"""Layer 6 — forensics: attribution, contamination, profiling, drift and bias investigations."""
