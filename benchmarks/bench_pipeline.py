"""Pipeline benchmark: a plain-script pipeline bare, through `custody run`, and through `dvc repro`, in one run.

    python benchmarks/bench_pipeline.py [--rows N] [--repeat N] [--workdir DIR] [--keep] [--json FILE]

The pipeline is the one the demo and the continuity tests run (``mlcustody.workspace.plain_pipeline``):
three raw CSV sources of ``--rows`` rows in all (default 1,000,002) → ``ingest.py`` → ``clean.py`` →
``features.py`` → ``train.py``, pandas and scikit-learn scripts that never import mlcustody. Each side
runs the four stages as whole processes in its own fresh copy (setup untimed):

* plain: ``python STAGE.py``;
* custody: ``custody run --name STAGE -- python STAGE.py`` after ``custody init``: every file read or
  written becomes a version, each table gets a record manifest, and record links between a stage's
  input and output tables are inferred from their shared key (the work the continuity issue made
  automatic);
* dvc: ``dvc repro --single-item STAGE`` after ``git init`` and ``dvc init``, with a ``dvc.yaml`` naming
  each stage's deps and outs: DVC hashes and caches every output, the nearest peer for "a pipeline whose
  data is versioned". DVC keeps no record-level lineage, so it is a yardstick, not an equivalent.

Afterwards the custody side is checked: the clean and features stages must carry inferred-key links
covering every clean row, and the model's upstream lineage must reach the three raw files. The target,
from the continuity issue: the whole pipeline through ``custody run`` ≤ +50 % over the bare pipeline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    RunResult,
    add_common_options,
    copy_tree,
    drop_tree,
    find_executable,
    flush_dirty_pages,
    fmt_ratio,
    fmt_seconds,
    machine_info,
    new_parser,
    ratio,
    render_table,
    run_measured,
    source_revision,
    tool_version,
)
from mlcustody.workspace import plain_pipeline

TARGET_OVERHEAD = 0.50
CONTENTION_WARNING = 0.25
DEFAULT_ROWS = 1_000_002
SIDES = ("plain", "custody", "dvc")

# DVC's view of the same pipeline: what each stage reads and writes.
DVC_STAGES = {
    "ingest": (["ingest.py", "raw"], ["data/applications.csv"]),
    "clean": (["clean.py", "data/applications.csv"], ["data/clean.csv"]),
    "features": (["features.py", "data/clean.csv"], ["data/features.csv"]),
    "train": (["train.py", "data/features.csv"], ["model.skops"]),
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Side:
    """One way of running the pipeline: the best time of each stage over the repetitions, or why none."""

    name: str
    runs: dict[str, list[RunResult]] = field(default_factory=lambda: {stage: [] for stage in plain_pipeline.STAGES})
    note: str = ""

    def best(self, stage: str) -> RunResult | None:
        done = [run for run in self.runs[stage] if run.ok]
        return min(done, key=lambda run: run.seconds) if done else None

    def total(self) -> float | None:
        best = [self.best(stage) for stage in plain_pipeline.STAGES]
        return sum(run.seconds for run in best if run is not None) if all(best) else None


def dvc_yaml() -> str:
    lines = ["stages:"]
    for stage, (deps, outs) in DVC_STAGES.items():
        lines += [f"  {stage}:", f"    cmd: {sys.executable} {stage}.py", "    deps:"]
        lines += [f"      - {dep}" for dep in deps]
        lines += ["    outs:"] + [f"      - {out}" for out in outs]
    return "\n".join(lines) + "\n"


def setup_commands(side: str, tools: Mapping[str, Path]) -> list[list[str]]:
    if side == "custody":
        return [[str(tools["custody"]), "init"]]
    if side == "dvc":
        return [["git", "init", "-q"], [str(tools["dvc"]), "init", "-q"]]
    return []


def stage_command(side: str, stage: str, tools: Mapping[str, Path]) -> list[str]:
    if side == "custody":
        return [str(tools["custody"]), "run", "--name", stage, "--", sys.executable, f"{stage}.py"]
    if side == "dvc":
        return [str(tools["dvc"]), "repro", "--single-item", stage]
    return [sys.executable, f"{stage}.py"]


def run_side(
    side: Side, source: Path, base: Path, tools: Mapping[str, Path], env: Mapping[str, str], timeout: float
) -> Path | None:
    """One repetition of a side in a fresh copy; the copy (for the checks), or None when a command failed."""
    job = base / side.name
    drop_tree(job)
    copy_tree(source, job)
    if side.name == "dvc":
        (job / "dvc.yaml").write_text(dvc_yaml())
    for argv in setup_commands(side.name, tools):
        done = run_measured(argv, job, env, timeout)
        if not done.ok:
            side.note = f"setup failed: {done.failure_text()}"
            return None
    for stage in plain_pipeline.STAGES:
        flush_dirty_pages()
        result = run_measured(stage_command(side.name, stage, tools), job, env, timeout)
        side.runs[stage].append(result)
        state = "ok" if result.ok else "FAILED"
        busy = f"others used {result.contention:.1f} CPUs"
        say(f"  {side.name:<8} {stage:<9} {fmt_seconds(result.seconds):>8}  {busy}  {state}")
        if not result.ok:
            side.note = result.failure_text()
            return None
    return job


def check_custody(job: Path, custody: Path, env: Mapping[str, str], rows: int) -> list[str]:
    """What the custody side must have recorded; each miss is a line of the report."""

    def doc(*args: str) -> Any:
        done = subprocess.run(
            [str(custody), *args, "--json"], check=False, cwd=job, env=env, capture_output=True, text=True
        )
        return json.loads(done.stdout) if done.returncode == 0 else {}

    problems = []
    clean_rows = sum(1 for _ in (job / "data" / "clean.csv").open()) - 1
    for stage in ("clean", "features"):
        [listed, *_] = doc("runs", "--name", stage).get("runs", [{}])
        links = doc("show", listed.get("id", "?")).get("capture", {}).get("links", [])
        if not any(link.get("relation") == "inferred-key" and link.get("matched") == clean_rows for link in links):
            problems.append(f"{stage}: no inferred-key link covering its {clean_rows:,} rows: {links}")
    sources = {item.get("id") for item in doc("lineage", "model@1", "--up").get("sources", [])}
    expected = {f"raw/{source}@1" for source in plain_pipeline.SOURCES}
    if not expected <= sources:
        problems.append(f"model@1's lineage reaches {sorted(sources)}, not the raw files {sorted(expected)}")
    if clean_rows > rows:
        problems.append(f"clean.csv has {clean_rows:,} rows, more than the {rows:,} raw ones")
    return problems


def _seconds(side: Side, stage: str) -> float | None:
    """A stage's best time, or the sum of the best of each stage for "total"."""
    if stage == "total":
        return side.total()
    best = side.best(stage)
    return best.seconds if best else None


def report(sides: Mapping[str, Side], problems: list[str], rows: int, repeat: int) -> tuple[str, bool | None]:
    plain, custody, dvc = (sides[name] for name in SIDES)
    table = []
    for stage in (*plain_pipeline.STAGES, "total"):
        p, c, d = (_seconds(side, stage) for side in (plain, custody, dvc))
        over = ratio(c, p)
        busy = any(
            run.contention > CONTENTION_WARNING
            for side in sides.values()
            for name in (plain_pipeline.STAGES if stage == "total" else (stage,))
            for run in side.runs[name]
        )
        mark = "*" if busy else ""
        table.append(
            [
                stage,
                fmt_seconds(p) + mark,
                fmt_seconds(c) + mark,
                f"{(over - 1) * 100:+.0f}%" if over is not None else "—",
                fmt_seconds(d) + mark,
                fmt_ratio(ratio(c, d)),
            ]
        )
    total_over = ratio(custody.total(), plain.total())
    met = None if total_over is None else total_over - 1 <= TARGET_OVERHEAD
    headers = ["stage", "plain", "custody run", "overhead", "dvc repro", "custody ÷ dvc"]
    lines = [
        f"Pipeline of plain scripts on {rows:,} raw rows, best of {repeat} per stage",
        "",
        render_table(headers, table),
        "",
        f"target: whole pipeline through custody run ≤ +{TARGET_OVERHEAD:.0%} over bare: "
        + {None: "not measured", True: "met", False: "NOT met"}[met],
    ]
    notes = [f"{name}: {side.note}" for name, side in sides.items() if side.note] + problems
    if any("*" in cell for row in table for cell in row):
        notes.append("* other processes kept more than 0.25 CPUs busy during a measurement: likely inflated")
    if notes:
        lines += ["", "Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines), met


def main(argv: Sequence[str] | None = None) -> int:
    parser = new_parser(__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"raw rows in all (default {DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions per side, the best kept (default 1)")
    add_common_options(parser, workdir_help="where the copies go (default: a temporary directory)")
    args = parser.parse_args(argv)
    tools = {name: path for name in ("custody", "dvc") if (path := find_executable(name)) is not None}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTODY_", "DVC_"))}
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=args.workdir))
    source = base / "source"
    say(f"writing the pipeline and {args.rows:,} raw rows")
    plain_pipeline.write(source, rows_per_source=-(-args.rows // len(plain_pipeline.SOURCES)))
    sides = {name: Side(name) for name in SIDES}
    ran = ["plain", *(name for name in ("custody", "dvc") if name in tools)]
    for name in set(SIDES) - set(ran):
        sides[name].note = f"{name} not found: pip install -e '.[bench]'"
    last: dict[str, Path | None] = {}
    for _ in range(args.repeat):  # the sides alternate, so a burst of load hits each of them
        for name in ran:
            last[name] = run_side(sides[name], source, base, tools, env, args.timeout)
    job = last.get("custody")
    problems = check_custody(job, tools["custody"], env, args.rows) if job is not None else []
    text, met = report(sides, problems, args.rows, args.repeat)
    if args.keep:
        say(f"kept {base}")
    else:
        drop_tree(base)
    print(text)
    print(f"\n{os.cpu_count()} CPUs; whole benchmark took {time.perf_counter() - started:.0f} s")
    if args.json:
        raw = {
            side: {stage: [run.seconds for run in runs] for stage, runs in data.runs.items()}
            for side, data in sides.items()
        }
        versions = {name: tool_version(path, "--version") for name, path in tools.items()}
        doc = {"rows": args.rows, "seconds": raw, "met": met, "problems": problems, "versions": versions}
        doc |= {"machine": machine_info(), "revision": source_revision(Path(__file__).parent)}
        args.json.write_text(json.dumps(doc, indent=2))
    return 1 if any(sides[name].note for name in ran) or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
