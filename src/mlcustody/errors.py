"""Every exception mlcustody raises on purpose, in one leaf module.

Each class carries a stable ``code`` (for JSON and REST), the process ``exit_code`` the CLI uses,
an ``http_status`` for the server, and a ``hint`` that tells the user how to fix the problem.
Classes also subclass the builtin they resemble, so ``except LookupError`` keeps working::

    CustodyError
    ├── UsageError (ValueError)                       exit 2, HTTP 400 — bad input, nothing changed
    │   ├── NotAWorkspace (FileNotFoundError)         no .custody/ here or above
    │   ├── WorkspaceExists (FileExistsError)         init on an existing workspace
    │   ├── ConfigError                               unreadable or invalid .custody/config.toml
    │   ├── PathError (OSError)                       missing, unreadable or outside the workspace
    │   ├── UnknownRef (LookupError)                  a reference that names nothing, HTTP 404
    │   ├── AmbiguousRef (LookupError)                a digest prefix that names several things
    │   └── WouldOverwrite (FileExistsError)          checkout would clobber unsaved changes
    ├── SchemaError                                   store schema not at this release's revision, exit 2
    ├── DiskFull (OSError)                            no space left where the store writes, exit 2
    ├── StoreReadOnly (PermissionError)               the store (database or objects) cannot be written, exit 2
    └── StoreBusy (TimeoutError)                      another process held the store too long, exit 3

Checks (``verify``, ``status``) never raise for what they find: they return a report with
``problems`` and the CLI exits 1 when there are any. Anything else that escapes is a bug: exit 3.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Root of mlcustody's errors: a one-line message plus the fix."""

    code = "custody_error"
    exit_code = 3
    http_status = 500
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """``<what> — <fix>`` on one line, as the CLI prints it after ``error: ``."""
        text = " ".join(self.message.split())
        return f"{text} — {self.hint}" if self.hint else text


class UsageError(CustodyError, ValueError):
    code = "usage_error"
    exit_code = 2
    http_status = 400


class NotAWorkspace(UsageError, FileNotFoundError):
    code = "not_a_workspace"
    hint = "run `custody init` in the project directory first, or pass --dir"


class WorkspaceExists(UsageError, FileExistsError):
    code = "workspace_exists"
    hint = "use the existing workspace, or remove its .custody directory to start over"


class ConfigError(UsageError):
    code = "config_error"
    hint = "fix or delete .custody/config.toml (see docs/cli.md, section Configuration)"


class PathError(UsageError, OSError):
    code = "path_error"
    hint = "check the path; it must exist, be readable and lie inside the workspace"


class UnknownRef(UsageError, LookupError):
    code = "unknown_ref"
    http_status = 404
    hint = "list what exists with `custody ls`; references are NAME, NAME@VERSION or a digest prefix"


class AmbiguousRef(UsageError, LookupError):
    code = "ambiguous_ref"
    hint = "give more characters of the digest, or use NAME@VERSION"


class WouldOverwrite(UsageError, FileExistsError):
    code = "would_overwrite"
    hint = "version your changes with `custody add` first, or pass --force to discard them"


class SchemaError(CustodyError):
    code = "schema_error"
    exit_code = 2
    http_status = 503
    hint = "run `custody migrate` to bring the store to this release's schema"


class DiskFull(CustodyError, OSError):
    """No space left on the store's disk (or quota): what was being written is not recorded."""

    code = "disk_full"
    exit_code = 2
    http_status = 507
    hint = "free space on the store's disk (or raise the quota) and run the command again; nothing was recorded"


class StoreReadOnly(CustodyError, PermissionError):
    """The store's database or object directory cannot be written by this user or on this mount."""

    code = "store_read_only"
    exit_code = 2
    http_status = 503


class StoreBusy(CustodyError, TimeoutError):
    code = "store_busy"
    exit_code = 3
    http_status = 503
    hint = "another custody process holds the store; retry when it has finished"
