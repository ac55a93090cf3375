"""The ``[terms]`` and ``[expectations]`` sections of .custody/config.toml.

``[terms]``: ``gated_aliases`` (aliases the terms gate guards, default ``["production"]``),
``commercial`` (is a gated use commercial, default true), ``purpose`` (the purpose a gated model
serves, default none). ``[expectations]``: ``strict`` (refuse a version whose suite fails, default
false) and ``suites``, a table from artifact-name patterns (fnmatch) to suite files, run at each
``custody add`` of a matching name.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcustody.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    gated_aliases: tuple[str, ...] = ("production",)
    commercial: bool = True
    purpose: str | None = None
    strict: bool = False
    suites: dict[str, str] = field(default_factory=dict)

    def suite_for(self, name: str) -> str | None:
        for pattern, suite in sorted(self.suites.items()):
            if fnmatch.fnmatchcase(name, pattern):
                return suite
        return None


def load(config_file: Path) -> Settings:
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {config_file}: {exc}") from exc
    terms: dict[str, Any] = data.get("terms", {})
    expect: dict[str, Any] = data.get("expectations", {})
    for section, value, known in (
        ("terms", terms, {"gated_aliases", "commercial", "purpose"}),
        ("expectations", expect, {"strict", "suites"}),
    ):
        if not isinstance(value, dict) or set(value) - known:
            raise ConfigError(f"{config_file}: [{section}] knows only {', '.join(sorted(known))}")
    aliases = terms.get("gated_aliases", ["production"])
    suites = expect.get("suites", {})
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ConfigError(f"{config_file}: [terms] gated_aliases must be a list of alias names")
    if not isinstance(suites, dict) or not all(isinstance(v, str) for v in suites.values()):
        raise ConfigError(
            f'{config_file}: [expectations] suites must map name patterns to files, e.g. "raw/*" = "raw.yaml"'
        )
    purpose = terms.get("purpose")
    return Settings(
        tuple(aliases),
        bool(terms.get("commercial", True)),
        str(purpose) if purpose else None,
        bool(expect.get("strict", False)),
        dict(suites),
    )
