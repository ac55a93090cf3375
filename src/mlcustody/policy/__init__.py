"""Policy: the terms data came under (license, consent, purpose, retention), how they reach the models
trained on it, and data-quality expectations kept as signed evidence. Between the ledger (which it signs
with) and forensics; see docs/terms.md and docs/expectations.md."""
