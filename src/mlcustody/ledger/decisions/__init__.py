"""The decision log: its append path (log, batch, store, seal), what it answers (queries, subjects,
files), and its checks (check, verify, anchor, resume)."""
