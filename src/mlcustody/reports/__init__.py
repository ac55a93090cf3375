"""Layer 7 — reports: compliance and forensic reports rendered to HTML, PDF, Markdown and JSON."""
