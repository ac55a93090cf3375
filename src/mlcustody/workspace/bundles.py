"""Bundles: export a model version with its chain of custody, check one offline, reproduce its training run.

Each function is the whole of one use case over the workspace handle; ``Workspace`` delegates to it in
one line. The domain modules are imported inside the functions that use them: the ledger (cryptography)
and forensics (numpy, scikit-learn) load only for the commands that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlcustody.config import STORE_DIRNAME
from mlcustody.errors import PathError

if TYPE_CHECKING:
    from mlcustody.ledger.bundle import check as bundle_check
    from mlcustody.ledger.bundle import export as bundle
    from mlcustody.ledger.bundle import reproduce as bundle_reproduce
    from mlcustody.workspace.facade import Workspace


def export_bundle(ws: Workspace, ref: str, path: Path | str, *, with_data: bool = False) -> bundle.Exported:
    """Write a model version's offline provenance bundle (``FILE.tar.gz``): attestation, public key,
    model, run record, code, environment, dataset and record manifests, lineage; the data if asked."""
    from mlcustody.ledger.bundle import export as bundle
    from mlcustody.ledger.registry import versions as model_registry

    with ws.db.read() as conn:
        version = model_registry.get(conn, ref)
        return bundle.export(conn, ws.objects, version, Path(os.path.abspath(path)), with_data=with_data)


def verify_bundle(path: Path | str) -> bundle_check.BundleCheck:
    """Check a bundle offline, with no workspace: members, signature, digests, seal, lineage digest."""
    from mlcustody.ledger.bundle import check as bundle_check

    return bundle_check.check(Path(path))


def reproduce(ws: Workspace, ref: str, to: Path | str) -> bundle_reproduce.Reproduction:
    """Materialise what trained a model version into an empty directory: entry script, params, code
    record and dirty diff, and its input data versions at their workspace-relative paths."""
    from mlcustody.ledger.bundle import reproduce as bundle_reproduce
    from mlcustody.ledger.registry import versions as model_registry

    target = Path(os.path.abspath(to))
    if STORE_DIRNAME in target.parts:
        raise PathError(f"{target} is inside the store", hint="reproduce somewhere else")
    with ws.db.read() as conn:
        version = model_registry.get(conn, ref)
        return bundle_reproduce.reproduce(conn, ws.objects, ws.cache, version, target)
