"""The synthetic credit world of the demo's forensic chapter, built in a test workspace by the same
scripts the demo runs (in-process, so tests stay fast)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from _models import PASSPHRASE
from conftest import Cli
from mlcustody import Workspace
from mlcustody.interfaces import demo_investigate as world
from mlcustody.workspace import fluent
from mlcustody.workspace.results import RecordSpec


def build(cli: Cli, monkeypatch: pytest.MonkeyPatch, **sizes: int) -> world.Planted:
    """init, key, raw files with records, the pipeline and training scripts, `credit-risk@1` registered."""
    monkeypatch.setenv("CUSTODY_KEY_PASSPHRASE", PASSPHRASE)
    cli("init")
    cli("keys", "generate", "--name", "registry")
    planted = world.write_sources(cli.cwd, **sizes)
    ws = Workspace.open(cli.cwd)
    try:
        for path, key in ((world.BRANCH, "loan_id"), (world.PURCHASED, "loan_id"), (world.CUSTOMERS, "customer_id")):
            ws.add([cli.cwd / path], type="dataset", records=RecordSpec(key=(key,)))
        monkeypatch.chdir(cli.cwd)
        fluent._process_workspace.cache_clear()  # the scripts' default workspace is this one
        for name, text in (("credit_pipeline.py", world.PIPELINE), ("credit_train.py", world.TRAIN)):
            script = Path(cli.cwd / name)
            script.write_text(text, encoding="utf-8")
            runpy.run_path(str(script), run_name="__main__")
        run_id = ws.runs(name="credit-train-model")[0].id
        ws.register_model("credit-risk", run=run_id)
    finally:
        ws.close()
        fluent._process_workspace().close()
        fluent._process_workspace.cache_clear()
    return planted
