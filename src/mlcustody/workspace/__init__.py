"""The use-case layer: every operation a user can ask for, between the domain layers and the interfaces.

``facade.Workspace`` is the handle (config, database, object store, lock, resolving refs) and the one
object the CLI, the server and Python users call; ``results`` holds what the use cases return; the
other modules are one area each (run tracking, run files, run lineage, imports, BOMs, …). This package
imports nothing at import time, so ``custody run`` can load ``tracking``'s light parts without paying
for SQLAlchemy before the child starts.
"""
