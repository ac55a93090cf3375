"""What common data and code licenses allow when their data trains a model: the table ``check terms``
reads. Sources (checked 2026-12): the SPDX License List 3.25 (https://spdx.org/licenses/) for the ids
and names; the Creative Commons legal codes (https://creativecommons.org/licenses/) for NC, ND and SA;
the Open Data Commons licenses (https://opendatacommons.org/licenses/) for ODbL and PDDL; the CDLA
texts (https://cdla.dev/) for CDLA-Permissive-2.0 and CDLA-Sharing-1.0; the OSI texts for the code
licenses. The whole table is in docs/terms.md.

``commercial``: may a commercial model use it. ``derivatives``: may derived data (features, a model)
be made from it. ``share_alike``: the copyleft family whose terms a derivative must keep — two
different families in one model cannot both be met.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mlcustody.errors import UsageError


@dataclass(frozen=True)
class License:
    id: str
    name: str
    commercial: bool
    derivatives: bool
    share_alike: str | None  # the copyleft family, None when permissive


def _cc(version: str) -> list[License]:
    v = version
    return [
        License(f"CC-BY-{v}", f"Creative Commons Attribution {v}", True, True, None),
        License(f"CC-BY-SA-{v}", f"Creative Commons Attribution Share Alike {v}", True, True, f"CC-BY-SA-{v}"),
        License(f"CC-BY-NC-{v}", f"Creative Commons Attribution Non Commercial {v}", False, True, None),
        License(
            f"CC-BY-NC-SA-{v}",
            f"Creative Commons Attribution Non Commercial Share Alike {v}",
            False,
            True,
            f"CC-BY-NC-SA-{v}",
        ),
        License(f"CC-BY-ND-{v}", f"Creative Commons Attribution No Derivatives {v}", True, False, None),
        License(
            f"CC-BY-NC-ND-{v}", f"Creative Commons Attribution Non Commercial No Derivatives {v}", False, False, None
        ),
    ]


LICENSES: dict[str, License] = {
    lic.id: lic
    for lic in [
        *_cc("4.0"),
        *_cc("3.0"),
        *_cc("2.0"),
        License("CC0-1.0", "Creative Commons Zero v1.0 Universal", True, True, None),
        License("PDDL-1.0", "Open Data Commons Public Domain Dedication & License 1.0", True, True, None),
        License("ODC-By-1.0", "Open Data Commons Attribution License v1.0", True, True, None),
        License("ODbL-1.0", "Open Data Commons Open Database License v1.0", True, True, "ODbL-1.0"),
        License("CDLA-Permissive-2.0", "Community Data License Agreement Permissive 2.0", True, True, None),
        License("CDLA-Sharing-1.0", "Community Data License Agreement Sharing 1.0", True, True, "CDLA-Sharing-1.0"),
        License("MIT", "MIT License", True, True, None),
        License("Apache-2.0", "Apache License 2.0", True, True, None),
        License("BSD-3-Clause", 'BSD 3-Clause "New" or "Revised" License', True, True, None),
        License("GPL-3.0-only", "GNU General Public License v3.0 only", True, True, "GPL-3.0"),
        License("GPL-3.0-or-later", "GNU General Public License v3.0 or later", True, True, "GPL-3.0"),
        License("AGPL-3.0-only", "GNU Affero General Public License v3.0", True, True, "AGPL-3.0"),
        License("LicenseRef-Proprietary", "Proprietary: terms in the license text", True, True, None),
    ]
}

CUSTOM_PREFIX = "LicenseRef-"  # SPDX's form for a license not on the list


def lookup(license_id: str, custom: dict[str, bool] | None = None) -> License:
    """The license an SPDX id names; a ``LicenseRef-…`` id is a custom license whose terms (commercial,
    derivatives) are given with it. An unknown id is refused with the closest known ids."""
    if license_id in LICENSES:
        return LICENSES[license_id]
    if license_id.startswith(CUSTOM_PREFIX) and len(license_id) > len(CUSTOM_PREFIX):
        given = custom or {}
        return License(license_id, license_id, given.get("commercial", False), given.get("derivatives", True), None)
    folded = {known.lower(): known for known in LICENSES}
    close = difflib.get_close_matches(license_id.lower(), list(folded), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(folded[c] for c in close)}? " if close else ""
    raise UsageError(
        f"unknown SPDX license id {license_id!r}",
        hint=hint
        + "see docs/terms.md for the known ids, or name a custom one LicenseRef-NAME with --commercial/--no-commercial",
    )
