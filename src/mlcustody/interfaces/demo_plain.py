"""`custody demo`'s plain-script chapter: a pipeline that never imports mlcustody keeps its whole chain.

The four scripts of ``plain_pipeline`` run one by one through ``custody run`` in a workspace of their
own. Capture alone makes every file a version, the tables record manifests and the record links
between them; the model is registered from its run, and a decision of it is traced to raw CSV lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from mlcustody.workspace import plain_pipeline

Step = Callable[..., str]


def chapter(step: Step, where: Path) -> None:
    """Run the plain pipeline in ``where/plain``, register its model by run, trace one decision."""
    plain = where / "plain"
    plain.mkdir()
    plain_pipeline.write(plain)
    step("A second workspace for a pipeline of plain pandas scripts (no mlcustody import)", "init", cwd=plain)
    runs = {}
    for stage in plain_pipeline.STAGES:
        title = f"Run {stage}.py as it is: what it reads and writes becomes versions, tables get record links"
        shown = step(title, "run", "--name", stage, "--", sys.executable, f"{stage}.py", cwd=plain)
        runs[stage] = next(line.split()[1] for line in shown.splitlines() if line.startswith("run "))
    step("Every file the scripts read and wrote is a version, typed by its content", "ls", cwd=plain)
    step(
        "The ingest run linked each application to its raw source by the shared key",
        "show",
        runs["ingest"][:12],
        cwd=plain,
    )
    step("A registry key for this workspace", "keys", "generate", cwd=plain)
    register = ("model", "register", "credit", "--run", runs["train"][:12])
    step("Register the model the training run wrote: no path to give, the run knows it", *register, cwd=plain)
    step("Its lineage up to the raw CSV files of every source", "lineage", "credit@1", "--up", cwd=plain)
    log = plain / "predictions.jsonl"
    ids = plain_pipeline.decisions(plain, log)
    step("Import the model's prediction log", "decisions", "import", log.name, "--model", "credit@1", cwd=plain)
    trace = ("trace", "decision", ids[7], "--records", "3")
    step("Trace one decision to its training records and their raw lines, through inferred links", *trace, cwd=plain)
