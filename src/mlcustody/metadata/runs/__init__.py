"""Runs in the metadata store: their rows (store), queries over them (query), comparing two (diff),
and how a parameter value reads (values)."""
