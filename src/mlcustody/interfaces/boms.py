"""Bills of materials of a model version (``custody export cyclonedx``): the use case that opens the
store, builds the document in ``reports`` and, asked, signs it with a registry key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcustody.interfaces.sdk import Workspace


@dataclass(frozen=True)
class Bom:
    model: str  # NAME@VERSION
    format: str  # cyclonedx
    spec: str
    document: dict[str, Any]
    envelope: bytes | None  # the DSSE envelope when signed

    def text(self) -> str:
        """What is written: the signed envelope, else the BOM as indented JSON."""
        if self.envelope is not None:
            return self.envelope.decode("utf-8") + "\n"
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"


def cyclonedx(ws: Workspace, ref: str, *, spec: str = "1.6", sign: bool = False, key: str | None = None) -> Bom:
    """The CycloneDX ML-BOM of model version ``ref``; ``sign`` wraps it in a DSSE envelope."""
    from mlcustody import __version__
    from mlcustody.ledger import keys, registry
    from mlcustody.reports import cyclonedx as cdx

    with ws.db.read() as conn:
        version = registry.get(conn, ref)
        document = cdx.build(conn, ws.objects, version.ref, spec=spec, tool=__version__)
        signer = keys.signer(conn, ws.config.store_dir, key) if sign else None
    envelope = cdx.signed(document, version, signer.sign, signer.keyid) if signer is not None else None
    return Bom(version.ref, "cyclonedx", spec, document, envelope)
