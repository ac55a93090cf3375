"""Workspace configuration: ``.custody/config.toml`` plus ``CUSTODY_*`` environment → one frozen Config.

The environment wins over the file so that CI and a shared server can point a checkout at another
database without editing it. Recognised settings (see docs/cli.md, section Configuration)::

    [core]
    db_url = "postgresql+psycopg://user@host/db"   # default: SQLite in .custody/metadata.db
    link_mode = "copy"                             # copy | hardlink | symlink | reflink
    actor = "alice"                                # default: the login name
    kek_file = "~/.config/mlcustody/kek/ID.key"    # key-encryption key of the decision log (ledger/kek.py)

    [capture]
    env = ["MY_SEED"]          # environment variables runs record, besides the built-in allow-list
    store_max_bytes = 1073741824   # files a run reads or writes above this stay digest-only (default: none)
    ignore = ["scratch/**"]    # more patterns of files kept digest-only (besides .git, virtualenvs, caches)
    keys = ["loan_id"]         # record key columns of captured tables, when present and unique
    records = true             # record manifests and inferred record links for captured tables
    records_max_bytes = 536870912  # … for tables up to this size (default 512 MiB)
    records_max_files = 32     # … when a run reads and writes at most this many tables
    redact = ["^db[-_.]"]      # more names whose values runs never record (capture/redact.py)

``CUSTODY_DB_URL``, ``CUSTODY_LINK_MODE``, ``CUSTODY_ACTOR`` and ``CUSTODY_KEK_FILE`` override the file.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mlcustody.errors import ConfigError, NotAWorkspace, PathError

STORE_DIRNAME = ".custody"
CONFIG_FILENAME = "config.toml"
# [terms] and [expectations] are read and checked by mlcustody.policy (policy.settings)
_SECTIONS = {"core", "capture", "terms", "expectations"}
LINK_MODES = ("copy", "hardlink", "symlink", "reflink")
_KNOWN_KEYS = {"db_url", "link_mode", "actor", "kek_file"}
# Files under these patterns are hashed but neither stored nor versioned when a run touches them:
# version control, virtual environments, caches. ``[capture] ignore`` adds to them.
DEFAULT_IGNORE = (
    ".git/**",
    "**/.git/**",
    ".venv/**",
    "venv/**",
    "**/site-packages/**",
    "**/__pycache__/**",
    "**/.ipynb_checkpoints/**",
    ".cache/**",
    "**/.pytest_cache/**",
    "**/.mypy_cache/**",
    "**/.ruff_cache/**",
    "**/node_modules/**",
)
_CAPTURE_KEYS = {
    "env",
    "redact",
    "store_max_bytes",
    "ignore",
    "keys",
    "records",
    "records_max_bytes",
    "records_max_files",
}


@dataclass(frozen=True)
class CapturePolicy:
    """What ``custody run`` does with the files a command reads and writes (``[capture]``).

    Every file under the workspace becomes an artifact version, stored in the store, unless it is
    larger than ``store_max_bytes`` or matches an ``ignore`` pattern: then only its digest is kept.
    Tables (CSV, Parquet, JSON Lines, Arrow) also get a record manifest and inferred record links
    while they and their number stay within ``records_max_bytes`` and ``records_max_files``: the
    limits keep a job over thousands of shards from paying a manifest per shard.
    """

    store_max_bytes: int | None = None
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    keys: tuple[str, ...] = ()
    records: bool = True
    records_max_bytes: int = 512 * 1024 * 1024
    records_max_files: int = 32


@dataclass(frozen=True)
class Config:
    """Where a workspace keeps its data, and how it behaves."""

    root: Path
    db_url: str
    link_mode: str
    actor: str
    capture_env: tuple[str, ...] = ()
    capture: CapturePolicy = CapturePolicy()
    capture_redact: tuple[str, ...] = ()
    kek_file: str | None = None  # the decision log's key-encryption key file (ledger/kek.py); None: default

    @property
    def store_dir(self) -> Path:
        return self.root / STORE_DIRNAME

    @property
    def config_path(self) -> Path:
        return self.store_dir / CONFIG_FILENAME

    @property
    def stat_cache_path(self) -> Path:
        return self.store_dir / "cache" / "stat.db"

    def relpath(self, path: Path | str) -> str:
        """``path`` relative to the workspace root (posix), refusing anything outside it."""
        absolute = Path(os.path.abspath(path))
        try:
            rel = absolute.relative_to(self.root)
        except ValueError as exc:
            raise PathError(
                f"{path} is outside the workspace {self.root}",
                hint="move or copy it into the workspace, or run custody from a workspace that contains it",
            ) from exc
        if rel.parts and rel.parts[0] == STORE_DIRNAME:
            raise PathError(f"{path} is inside the store itself", hint="add your data, not .custody")
        if not rel.parts:
            raise PathError("cannot add the workspace root itself", hint="add its data directories")
        return rel.as_posix()


def default_db_url(root: Path) -> str:
    return f"sqlite:///{root / STORE_DIRNAME / 'metadata.db'}"


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds a ``.custody`` store."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / STORE_DIRNAME / CONFIG_FILENAME).is_file():
            return candidate
    raise NotAWorkspace(f"no mlcustody workspace at {start} or any parent directory")


def is_workspace(start: Path) -> bool:
    """Whether ``start`` or a directory above it holds a workspace."""
    try:
        find_root(start)
    except NotAWorkspace:
        return False
    return True


def load(root: Path) -> Config:
    """Read the config of the workspace at ``root``; a broken file is a ConfigError, never a crash."""
    path = root / STORE_DIRNAME / CONFIG_FILENAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotAWorkspace(f"{path} is missing") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    core, capture = data.get("core", {}), data.get("capture", {})
    sections_ok = isinstance(core, dict) and isinstance(capture, dict)
    if not sections_ok or set(data) - _SECTIONS or set(core) - _KNOWN_KEYS or set(capture) - _CAPTURE_KEYS:
        unknown = sorted(
            (set(data) - _SECTIONS)
            | (set(core) - _KNOWN_KEYS if isinstance(core, dict) else set())
            | ({f"capture.{k}" for k in set(capture) - _CAPTURE_KEYS} if isinstance(capture, dict) else set())
        )
        raise ConfigError(
            f"{path} has unknown settings {unknown}; "
            f"known: [core] {sorted(_KNOWN_KEYS)}, [capture] {sorted(_CAPTURE_KEYS)}"
        )
    capture_env = _names(capture, "env", path, 'env = ["MY_SEED"]')
    capture_redact = _patterns(path, capture.get("redact", []))
    settings = {key: str(value) for key, value in core.items()}
    for key in _KNOWN_KEYS:
        env = os.environ.get(f"CUSTODY_{key.upper()}")
        if env:
            settings[key] = env
    link_mode = settings.get("link_mode", "copy")
    if link_mode not in LINK_MODES:
        raise ConfigError(f"link_mode {link_mode!r} is not one of {', '.join(LINK_MODES)}")
    return Config(
        root=root,
        db_url=settings.get("db_url") or default_db_url(root),
        link_mode=link_mode,
        actor=settings.get("actor") or _login_name(),
        capture_env=capture_env,
        capture=_capture_policy(capture, path),
        capture_redact=capture_redact,
        kek_file=settings.get("kek_file") or None,
    )


def _names(section: dict[str, object], key: str, path: Path, example: str) -> tuple[str, ...]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ConfigError(f"{path}: [capture] {key} must be a list of strings, e.g. {example}")
    return tuple(value)


def _capture_policy(section: dict[str, object], path: Path) -> CapturePolicy:
    default = CapturePolicy()
    sizes: dict[str, int | None] = {}
    for key in ("store_max_bytes", "records_max_bytes", "records_max_files"):
        value = section.get(key, getattr(default, key))
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{path}: [capture] {key} must be a whole number ≥ 0, e.g. {key} = 1000000")
        sizes[key] = value
    records = section.get("records", True)
    if not isinstance(records, bool):
        raise ConfigError(f"{path}: [capture] records must be true or false")
    return CapturePolicy(
        store_max_bytes=sizes["store_max_bytes"],
        ignore=DEFAULT_IGNORE + _names(section, "ignore", path, 'ignore = ["scratch/**"]'),
        keys=_names(section, "keys", path, 'keys = ["loan_id"]'),
        records=records,
        records_max_bytes=sizes["records_max_bytes"] or 0,
        records_max_files=sizes["records_max_files"] or 0,
    )


def _patterns(path: Path, value: object) -> tuple[str, ...]:
    """``[capture] redact``: regular expressions that compile."""
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f'{path}: [capture] redact must be a list of regular expressions, e.g. redact = ["^db_"]')
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{path}: [capture] redact pattern {pattern!r} does not compile ({exc})") from exc
    return tuple(value)


def write_initial(root: Path, db_url: str | None, link_mode: str) -> None:
    """Write the config file that ``custody init`` creates; only non-default settings are stored."""
    if link_mode not in LINK_MODES:
        raise ConfigError(f"link_mode {link_mode!r} is not one of {', '.join(LINK_MODES)}")
    lines = ["# mlcustody workspace settings; CUSTODY_* environment variables override them.", "[core]"]
    if db_url:
        lines.append(f"db_url = {_toml_string(db_url)}")
    lines.append(f"link_mode = {_toml_string(link_mode)}")
    (root / STORE_DIRNAME / CONFIG_FILENAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
