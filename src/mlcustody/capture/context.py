"""What a run records without being asked: code (git state, entry script) and environment.

Both are plain JSON values; the caller stores them as canonical objects, so a run refers to them by
digest and a thousand runs in the same environment share one object. Nothing here may record a
secret: remote URLs lose their credentials, and environment variables are taken only from an
allow-list, minus any name that looks like it holds a credential; the values kept lose URL passwords
and token-shaped parts (``redact``).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlcustody._canonical import digest_bytes
from mlcustody.capture.redact import Redactor

# Variables that change what a training run computes, or where; extended by [capture] env.
ENV_ALLOW = (
    "PYTHONHASHSEED",
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_DETERMINISTIC_OPS",
    "SOURCE_DATE_EPOCH",
    "TZ",
    "LANG",
    "LC_ALL",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CI",
)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASS|KEY|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|CERT", re.IGNORECASE)
# Files that pin an environment, looked for at the repository (or workspace) root.
ENV_FILES = (
    "Dockerfile",
    "Containerfile",
    "requirements.txt",
    "requirements-dev.txt",
    "constraints.txt",
    "pyproject.toml",
    "setup.cfg",
    "poetry.lock",
    "uv.lock",
    "Pipfile",
    "Pipfile.lock",
    "pdm.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
)
_GIT_TIMEOUT = 10
# In `git status --porcelain=v2`, the number of space-separated fields before the path, by entry type.
_PATH_FIELD = {"1 ": 8, "2 ": 9, "u ": 10}


@dataclass(frozen=True)
class Code:
    """The code side of a run, plus the bytes (dirty diff, entry script) to store as objects."""

    value: dict[str, Any]
    blobs: tuple[bytes, ...]


def capture_code(root: Path, entry: Path | None) -> Code:
    """Git commit, branch, remote and dirty diff of the repository holding ``root``; the entry script."""
    blobs: list[bytes] = []
    git = _git_state(root)
    if git is not None:
        diff = _git(root, "diff", "HEAD", "--binary") if git["dirty"] else None
        git["diff"] = digest_bytes(diff) if diff else None
        if diff:
            blobs.append(diff)
    script = None
    if entry is not None and entry.is_file():
        data = entry.read_bytes()
        blobs.append(data)
        script = {"path": _display_path(entry, root), "digest": digest_bytes(data), "size": len(data)}
    return Code({"git": git, "entry": script}, tuple(blobs))


def _git_state(root: Path) -> dict[str, Any] | None:
    status = _git(root, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = branch = None
    changed = []
    fields = iter(status.decode("utf-8", "replace").split("\0"))
    for line in fields:
        if line.startswith("# branch.oid "):
            commit = line.split()[2]
            commit = None if commit == "(initial)" else commit
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2]
            branch = None if branch == "(detached)" else branch
        elif line[:2] in _PATH_FIELD:
            changed.append(line.split(" ", _PATH_FIELD[line[:2]])[-1])
            if line.startswith("2 "):
                next(fields, None)  # a rename's original path
    toplevel = _git(root, "rev-parse", "--show-toplevel")
    return {
        "commit": commit,
        "branch": branch,
        "remote": _remote_url(root),
        "dirty": bool(changed),
        "changed": sorted(changed),
        "root": _display_path(Path(toplevel.decode().strip()), root) if toplevel else None,
    }


def _remote_url(root: Path) -> str | None:
    remotes = (_git(root, "remote") or b"").decode().split()
    if not remotes:
        return None
    chosen = "origin" if "origin" in remotes else remotes[0]
    url = _git(root, "remote", "get-url", chosen)
    return strip_credentials(url.decode().strip()) if url else None


def strip_credentials(url: str) -> str:
    """``https://user:token@host/repo`` → ``https://host/repo``; scp-style and paths are kept."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _git(root: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _display_path(path: Path, root: Path) -> str:
    """Workspace-relative when inside it, else absolute: what a reader of the record can find."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix() or "."
    except ValueError:
        return absolute.as_posix()


# -- environment -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interpreter:
    """The Python that ran a step: reported by the process itself (SDK) or by the capture hook."""

    version: str
    implementation: str
    executable: str
    path: tuple[str, ...]

    @classmethod
    def current(cls) -> Interpreter:
        return cls(
            platform.python_version(),
            sys.implementation.name,
            sys.executable,
            tuple(p for p in sys.path if p),
        )

    def packages(self) -> dict[str, str]:
        """Installed distributions on this interpreter's path, by normalised name.

        Read from the ``*.dist-info`` / ``*.egg-info`` directory names (which carry name and version
        by the packaging spec), so a thousand-package environment costs a directory listing.
        """
        found: dict[str, str] = {}
        for entry in self.path:
            try:
                names = os.listdir(entry)
            except OSError:
                continue
            for name in names:
                stem, dot, suffix = name.rpartition(".")
                if not dot or suffix not in ("dist-info", "egg-info"):
                    continue
                dist, _, version = stem.partition("-")
                key = re.sub(r"[-_.]+", "-", dist).lower()
                if version and key not in found:  # the first on the path wins, as at import time
                    found[key] = version.split("-py")[0]
        return dict(sorted(found.items()))


def capture_environment(
    root: Path,
    interpreter: Interpreter | None,
    extra_env: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    redact: Sequence[str] = (),
) -> dict[str, Any]:
    """Interpreter and packages (when a Python ran), OS, hardware, container, env files, allowed variables
    (redacted by the built-in rules and the ``[capture] redact`` patterns ``redact``)."""
    environ = os.environ if environ is None else environ
    python = None
    if interpreter is not None:
        python = {
            "version": interpreter.version,
            "implementation": interpreter.implementation,
            "executable": interpreter.executable,
            "packages": interpreter.packages(),
        }
    return {
        "python": python,
        "os": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "hardware": {"cpus": os.cpu_count(), "memory_bytes": _memory_bytes(), "cpu": _cpu_model()},
        "container": _container(environ),
        "files": _env_files(root),
        "variables": Redactor(redact).variables(allowed_variables(environ, extra_env)),
    }


def allowed_variables(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    names = {*ENV_ALLOW, *extra}
    return {k: environ[k] for k in sorted(names) if k in environ and not _SECRET_NAME.search(k)}


def _env_files(root: Path) -> dict[str, str]:
    found = {}
    for name in ENV_FILES:
        path = root / name
        if path.is_file():
            found[name] = digest_bytes(path.read_bytes())
    return found


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _container(environ: Mapping[str, str]) -> dict[str, str | None] | None:
    """The container the run is in, if any: runtime, container id, and the image digest when known.

    A process cannot see its own image digest; orchestrators pass it in (``CUSTODY_IMAGE_DIGEST``,
    or Kubernetes' downward API as ``POD_IMAGE_DIGEST``), and it is recorded when they do.
    """
    runtime = None
    if Path("/.dockerenv").exists():
        runtime = "docker"
    elif Path("/run/.containerenv").exists():
        runtime = "podman"
    elif "KUBERNETES_SERVICE_HOST" in environ:
        runtime = "kubernetes"
    image = environ.get("CUSTODY_IMAGE_DIGEST") or environ.get("POD_IMAGE_DIGEST")
    if runtime is None and image is None:
        return None
    return {"runtime": runtime, "id": _container_id(), "image_digest": image}


def _container_id() -> str | None:
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"/(?:docker|containers|overlay-containers)/([0-9a-f]{64})", text)
    return match.group(1) if match else None
