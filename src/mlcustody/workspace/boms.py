"""Bills of materials of a model version (``custody export cyclonedx|spdx``): the use case that opens the
store, builds the document in ``reports`` and, asked, signs it with a registry key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcustody.workspace.terminal import ask_secret

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace


@dataclass(frozen=True)
class Bom:
    model: str  # NAME@VERSION
    format: str  # cyclonedx | spdx
    spec: str
    document: dict[str, Any]
    envelope: bytes | None  # the DSSE envelope when signed

    def text(self) -> str:
        """What is written: the signed envelope, else the document as indented JSON."""
        if self.envelope is not None:
            return self.envelope.decode("utf-8") + "\n"
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"

    @property
    def serial(self) -> str | None:
        """The document's own identity: CycloneDX's serial number, SPDX's document id."""
        if self.format == "cyclonedx":
            return str(self.document["serialNumber"])
        return next(str(e["spdxId"]) for e in self.document["@graph"] if e["type"] == "SpdxDocument")

    @property
    def components(self) -> int:
        """What it describes: CycloneDX components, SPDX packages."""
        if self.format == "cyclonedx":
            return len(self.document["components"])
        return sum(1 for e in self.document["@graph"] if e["type"].endswith("Package"))


def cyclonedx(ws: Workspace, ref: str, *, spec: str = "1.6", sign: bool = False, key: str | None = None) -> Bom:
    """The CycloneDX ML-BOM of model version ``ref``; ``sign`` wraps it in a DSSE envelope."""
    from mlcustody.reports import cyclonedx as cdx

    return _bom(
        ws,
        ref,
        "cyclonedx",
        spec,
        cdx.PREDICATE_TYPE,
        sign,
        key,
        lambda c, r, t: cdx.build(c, ws.objects, r, spec=spec, tool=t),
    )


def spdx(ws: Workspace, ref: str, *, sign: bool = False, key: str | None = None) -> Bom:
    """The SPDX 3.0.1 document (AI and Dataset profiles) of model version ``ref``."""
    from mlcustody.reports import spdx as spdx_report

    return _bom(
        ws,
        ref,
        "spdx",
        "3.0.1",
        spdx_report.PREDICATE_TYPE,
        sign,
        key,
        lambda c, r, t: spdx_report.build(c, ws.objects, r, tool=t),
    )


def _bom(ws: Workspace, ref: str, fmt: str, spec: str, predicate: str, sign: bool, key: str | None, build: Any) -> Bom:
    from mlcustody import __version__
    from mlcustody.ledger import keys
    from mlcustody.ledger.registry import versions as registry
    from mlcustody.reports import signed_statement

    with ws.db.read() as conn:
        version = registry.get(conn, ref)
        document = build(conn, version.ref, __version__)
        signer = keys.signer(conn, ws.config.store_dir, key, prompt=ask_secret) if sign else None
    envelope = None
    if signer is not None:
        envelope = signed_statement.signed(document, version, predicate, signer.sign, signer.keyid)
    return Bom(version.ref, fmt, spec, document, envelope)
