"""Store benchmark: mlcustody against DVC and ``cp -r``, on the same freshly written data, in one run.

    python benchmarks/bench_store.py [--quick] [--repeat N] [--workdir DIR] [--json FILE]

Each tool ("side") runs as a user would run it, as whole processes, in its own fresh workspace with
its own HOME and DVC site cache, so no cache leaks between sides. The data is random (incompressible,
undedupable) and made once per dataset, then copied untimed into each side's workspace. Every case
prints its target next to the measured ratio; a missed target is reported, never an error exit.
See benchmarks/README.md for what each case measures and the latest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from _harness import (
    GB,
    MB,
    RunResult,
    Summary,
    add_common_options,
    copy_tree,
    drop_tree,
    find_executable,
    flush_dirty_pages,
    fmt_bytes,
    fmt_ratio,
    fmt_seconds,
    machine_info,
    make_random_tree,
    ratio,
    render_table,
    run_measured,
    source_revision,
    tool_version,
    write_random_file,
)

SUBJECT = "mlcustody"
QUICK_FACTOR = 20
# Flag a figure when other processes kept this many CPUs busy on average while it was measured.
CONTENTION_WARNING = 0.25

# A command template: argv[0] names a tool resolved at start-up, "{target}" is the dataset's path.
Command = tuple[str, ...]


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    """Random files of one size; ``target`` is the path the tools are pointed at inside a workspace."""

    key: str
    file_count: int
    file_size: int
    target: str = "data"

    @property
    def total_bytes(self) -> int:
        return self.file_count * self.file_size

    @property
    def label(self) -> str:
        if self.file_count == 1:
            return f"{fmt_bytes(self.total_bytes)}, one file"
        return f"{fmt_bytes(self.total_bytes)} in {self.file_count:,} files"

    def scaled_down(self, factor: int) -> Dataset:
        """The ~``factor``× smaller smoke-test variant: fewer files, or a smaller single file."""
        if self.file_count >= factor:
            return Dataset(self.key, self.file_count // factor, self.file_size, self.target)
        return Dataset(self.key, self.file_count, self.file_size // factor, self.target)

    def materialize(self, root: Path) -> None:
        """Write the dataset as ``root/target``: one file, or a sharded directory tree."""
        if self.file_count == 1:
            write_random_file(root / self.target, self.file_size)
        else:
            make_random_tree(root / self.target, self.file_count, self.file_size)


# ---------------------------------------------------------------------------------------- the tools


@dataclass(frozen=True)
class Side:
    """One tool under comparison: untimed setup commands for a fresh workspace, then timed operations."""

    name: str
    setup: tuple[Command, ...]
    ops: Mapping[str, Command]

    @property
    def tools(self) -> set[str]:
        return {command[0] for command in (*self.setup, *self.ops.values())}


_CUSTODY_ADD: Command = ("custody", "add", "{target}", "--json")
_DVC_ADD: Command = ("dvc", "add", "{target}")

SIDES: tuple[Side, ...] = (
    Side(
        name=SUBJECT,
        setup=(("custody", "init"),),
        ops={
            "add": _CUSTODY_ADD,
            "status": ("custody", "status", "--json"),
            "readd": _CUSTODY_ADD,
            "verify": ("custody", "verify", "--json"),
        },
    ),
    Side(
        name="dvc",
        setup=(
            ("git", "init", "-q"),
            ("dvc", "init", "-q"),
            # No network here, and none should be timed: no analytics, no update check.
            ("dvc", "config", "core.analytics", "false"),
            ("dvc", "config", "core.check_update", "false"),
        ),
        ops={"add": _DVC_ADD, "status": ("dvc", "status"), "readd": _DVC_ADD},
    ),
    Side(name="cp", setup=(), ops={"add": ("cp", "-r", "{target}", "dest")}),
)

# Follow-up operations run on the workspace the last timed "add" left behind, in this order.
OP_ORDER = ("add", "status", "readd", "verify")


# -------------------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class Outcome:
    """What one side did for one case: measured, not available, failed, or not applicable."""

    state: str  # "ok" | "unavailable" | "failed" | "n/a"
    summary: Summary | None = None
    note: str = ""

    @classmethod
    def from_runs(cls, runs: Sequence[RunResult]) -> Outcome:
        if not runs:
            return cls("failed", note="not run: the add before it failed")
        failures = [run for run in runs if not run.ok]
        if failures:
            return cls("failed", note=failures[0].failure_text())
        return cls("ok", summary=Summary(tuple(runs)))

    @property
    def seconds(self) -> float | None:
        return self.summary.best_seconds if self.summary else None

    @property
    def peak_rss(self) -> int | None:
        return self.summary.peak_rss_bytes if self.summary else None

    def cell(self, value: str) -> str:
        """How this outcome reads in a table cell, given the formatted measurement."""
        return value if self.state == "ok" else {"unavailable": "not available", "n/a": "—"}.get(self.state, "FAILED")


NOT_APPLICABLE = Outcome("n/a")


@dataclass(frozen=True)
class Verdict:
    measured: str
    met: bool | None  # None: cannot be judged (a side is missing or failed)
    value: float | None = None

    @property
    def word(self) -> str:
        return {True: "yes", False: "NO", None: "—"}[self.met]


class Target(Protocol):
    """A goal for the subject in one case; it knows how to describe and judge itself."""

    @property
    def text(self) -> str: ...

    def judge(self, outcomes: Mapping[str, Outcome], dataset: Dataset) -> Verdict: ...


def _unjudgeable(outcomes: Mapping[str, Outcome], *names: str) -> Verdict | None:
    """A 'pending'/'failed' verdict when a side the target needs has no measurement, else None."""
    for name in names:
        outcome = outcomes.get(name)
        if outcome is None:
            return Verdict(f"{name} not run", None)
        if outcome.state != "ok":
            label = "pending" if outcome.state == "unavailable" else outcome.state
            return Verdict(f"{name} {label}", None)
    return None


@dataclass(frozen=True)
class FasterThan:
    """Subject time ≤ ``max_ratio`` × the reference side's time."""

    reference: str
    max_ratio: float

    @property
    def text(self) -> str:
        return f"≤ {self.max_ratio:.1f}× {self.reference}"

    def judge(self, outcomes: Mapping[str, Outcome], dataset: Dataset) -> Verdict:
        missing = _unjudgeable(outcomes, SUBJECT, self.reference)
        if missing:
            return missing
        value = ratio(outcomes[SUBJECT].seconds, outcomes[self.reference].seconds)
        assert value is not None
        return Verdict(f"{fmt_ratio(value)} {self.reference}", value <= self.max_ratio, value)


@dataclass(frozen=True)
class PeakRssAtMost:
    """Subject peak RSS ≤ a fixed budget, whatever the data size."""

    max_bytes: int

    @property
    def text(self) -> str:
        return f"peak RSS ≤ {fmt_bytes(self.max_bytes)}"

    def judge(self, outcomes: Mapping[str, Outcome], dataset: Dataset) -> Verdict:
        missing = _unjudgeable(outcomes, SUBJECT)
        if missing:
            return missing
        rss = outcomes[SUBJECT].peak_rss
        assert rss is not None
        return Verdict(fmt_bytes(rss), rss <= self.max_bytes, float(rss))


@dataclass(frozen=True)
class ThroughputAtLeast:
    """Dataset bytes ÷ subject wall time ≥ a rate; the whole process counts, start-up included."""

    min_bytes_per_s: float

    @property
    def text(self) -> str:
        return f"≥ {fmt_bytes(self.min_bytes_per_s)}/s"

    def judge(self, outcomes: Mapping[str, Outcome], dataset: Dataset) -> Verdict:
        missing = _unjudgeable(outcomes, SUBJECT)
        if missing:
            return missing
        value = ratio(dataset.total_bytes, outcomes[SUBJECT].seconds)
        assert value is not None
        return Verdict(f"{fmt_bytes(value)}/s", value >= self.min_bytes_per_s, value)


@dataclass(frozen=True)
class Case:
    """One row of the report: an operation on a dataset, and the subject's targets for it."""

    key: str
    verb: str
    op: str
    dataset: Dataset
    targets: tuple[Target, ...]

    @property
    def title(self) -> str:
        return f"{self.verb} {self.dataset.label}"


def build_cases(scale_down: int = 1) -> list[Case]:
    """The store's performance targets, at full size or scaled down for ``--quick``."""
    medium = Dataset("tree-2k", file_count=2_000, file_size=500_000).scaled_down(scale_down)
    single = Dataset("one-file", file_count=1, file_size=GB, target="model.bin").scaled_down(scale_down)
    small = Dataset("tree-100k", file_count=100_000, file_size=4_096).scaled_down(scale_down)
    versus_dvc_and_cp = (FasterThan("dvc", 0.6), FasterThan("cp", 1.3))
    return [
        Case("add-2k", "add", "add", medium, versus_dvc_and_cp),
        Case("add-1file", "add", "add", single, versus_dvc_and_cp),
        Case("add-100k", "add", "add", small, (FasterThan("dvc", 0.3), PeakRssAtMost(300 * MB))),
        Case("status-100k", "status, unchanged", "status", small, (FasterThan("dvc", 0.5),)),
        Case("readd-100k", "re-add unchanged", "readd", small, (FasterThan("dvc", 0.5),)),
        Case("verify-1gb", "verify", "verify", medium, (ThroughputAtLeast(GB),)),
    ]


# --------------------------------------------------------------------------------------- running


class SetupError(Exception):
    """A side's untimed workspace setup failed, so none of its cases can be measured."""


@dataclass(frozen=True)
class Options:
    workdir: Path
    repeat: int
    timeout: float
    keep: bool
    tools: Mapping[str, Path | None]


@dataclass(frozen=True)
class Workspace:
    repo: Path
    env: Mapping[str, str]


def log(message: str) -> None:
    """Progress on stderr, so a long run shows life and stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def isolated_env(home: Path) -> dict[str, str]:
    """The environment of one side: its own HOME and DVC site cache, no inherited tool settings.

    CUSTODY_*/DVC_*/GIT_*/XDG_* from the caller are dropped so a developer's own configuration (a
    Postgres URL, a global DVC cache) cannot change what is measured.
    """
    inherited = {
        key: value for key, value in os.environ.items() if not key.startswith(("CUSTODY_", "DVC_", "GIT_", "XDG_"))
    }
    identity = {
        f"GIT_{role}_{part}": value
        for role in ("AUTHOR", "COMMITTER")
        for part, value in (("NAME", "bench"), ("EMAIL", "bench@example.invalid"))
    }
    return {
        **inherited,
        **identity,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
    }


def resolve(command: Command, dataset: Dataset, tools: Mapping[str, Path | None]) -> list[str]:
    executable = tools[command[0]]
    assert executable is not None, command[0]
    return [str(executable), *(arg.format(target=dataset.target) for arg in command[1:])]


def prepare_workspace(side: Side, dataset: Dataset, source: Path, base: Path, opts: Options) -> Workspace:
    """A fresh repo for one side: run its setup, then copy the data in (all untimed)."""
    drop_tree(base)
    repo, home = base / "repo", base / "home"
    repo.mkdir(parents=True)
    home.mkdir()
    workspace = Workspace(repo, isolated_env(home))
    for command in side.setup:
        result = run_measured(resolve(command, dataset, opts.tools), repo, workspace.env, opts.timeout)
        if not result.ok:
            raise SetupError(f"setup failed, {result.failure_text()}")
    copy_tree(source / dataset.target, repo / dataset.target)
    return workspace


def run_op(side: Side, op: str, workspace: Workspace, dataset: Dataset, opts: Options) -> RunResult:
    """Time one operation of one side; dirty pages are flushed first so writeback does not interfere."""
    flush_dirty_pages()
    result = run_measured(resolve(side.ops[op], dataset, opts.tools), workspace.repo, workspace.env, opts.timeout)
    status = "ok" if result.ok else "FAILED"
    log(
        f"  {side.name:<9} {op:<6} {fmt_seconds(result.seconds):>9}  "
        f"peak RSS {fmt_bytes(result.peak_rss_bytes):>9}  others used {result.contention:.1f} CPUs  {status}"
    )
    return result


def time_side(
    side: Side, dataset: Dataset, ops: Sequence[str], source: Path, opts: Options
) -> dict[str, list[RunResult]]:
    """Every wanted operation of one side, ``repeat`` times each.

    "add" gets a fresh workspace per repetition (a second add would be a re-add); the follow-ups
    (status, re-add, verify) are idempotent and reuse the workspace of the last add.
    """
    runs: dict[str, list[RunResult]] = {op: [] for op in ops}
    base = opts.workdir / dataset.key
    workspace: Workspace | None = None
    for attempt in range(opts.repeat):
        if workspace is not None:
            drop_tree(workspace.repo.parent)
        workspace = prepare_workspace(side, dataset, source, base / f"{side.name}-{attempt}", opts)
        runs["add"].append(run_op(side, "add", workspace, dataset, opts))
    assert workspace is not None
    if all(run.ok for run in runs["add"]):
        for op in ops[1:]:
            runs[op] = [run_op(side, op, workspace, dataset, opts) for _ in range(opts.repeat)]
    if not opts.keep:
        drop_tree(workspace.repo.parent)
    return runs


def run_side(side: Side, dataset: Dataset, ops: Sequence[str], source: Path, opts: Options) -> dict[str, Outcome]:
    """The outcomes of one side on one dataset, with missing tools and setup failures reported."""
    wanted = [op for op in ops if op in side.ops]
    missing = sorted(tool for tool in side.tools if opts.tools.get(tool) is None)
    if missing:
        log(f"  {side.name:<9} not available: {', '.join(missing)} not found")
        return {op: Outcome("unavailable", note=f"{', '.join(missing)} not found") for op in wanted}
    try:
        runs = time_side(side, dataset, wanted, source, opts)
    except SetupError as exc:
        log(f"  {side.name:<9} {exc}")
        return {op: Outcome("failed", note=str(exc)) for op in wanted}
    return {op: Outcome.from_runs(op_runs) for op, op_runs in runs.items()}


def run_dataset(
    dataset: Dataset, ops: Sequence[str], sides: Sequence[Side], opts: Options
) -> dict[str, dict[str, Outcome]]:
    """Make the data once, then run every side on its own copy; returns outcomes by side, then op."""
    root = opts.workdir / dataset.key
    drop_tree(root)
    source = root / "source"
    log(f"{dataset.key}: writing {dataset.label} of random data")
    dataset.materialize(source)
    try:
        return {side.name: run_side(side, dataset, ops, source, opts) for side in sides}
    finally:
        if not opts.keep:
            drop_tree(root)


def run_cases(cases: Sequence[Case], sides: Sequence[Side], opts: Options) -> dict[str, dict[str, Outcome]]:
    """Outcomes by case key, then side name. Cases sharing a dataset share its workspaces."""
    results: dict[str, dict[str, Outcome]] = {}
    datasets = list(dict.fromkeys(case.dataset for case in cases))
    for dataset in datasets:
        own = [case for case in cases if case.dataset == dataset]
        ops = [op for op in OP_ORDER if op == "add" or any(case.op == op for case in own)]
        by_side = run_dataset(dataset, ops, sides, opts)
        for case in own:
            results[case.key] = {name: per_op.get(case.op, NOT_APPLICABLE) for name, per_op in by_side.items()}
    return results


# -------------------------------------------------------------------------------------- reporting


def _side_cells(outcomes: Mapping[str, Outcome], names: Sequence[str], metric: str) -> list[str]:
    """One formatted cell per side, for the time or the peak-RSS table."""
    cells = []
    for name in names:
        outcome = outcomes.get(name, NOT_APPLICABLE)
        if metric == "time":
            value = fmt_seconds(outcome.seconds) + ("*" if _busy(outcome) else "")
        else:
            value = fmt_bytes(outcome.peak_rss)
        cells.append(outcome.cell(value))
    return cells


def _ratio_cells(outcomes: Mapping[str, Outcome], references: Sequence[str]) -> list[str]:
    subject = outcomes.get(SUBJECT, NOT_APPLICABLE).seconds
    return [fmt_ratio(ratio(subject, outcomes.get(ref, NOT_APPLICABLE).seconds)) for ref in references]


def _notes(cases: Sequence[Case], results: Mapping[str, Mapping[str, Outcome]]) -> list[str]:
    """Why a cell is empty, and which figures were taken while other processes competed for CPUs."""
    missing = {
        f"{name}: {outcome.note}" for outcomes in results.values() for name, outcome in outcomes.items() if outcome.note
    }
    worst = max((_contention(outcome) for outcomes in results.values() for outcome in outcomes.values()), default=0)
    busy = (
        [
            f"* measured while other processes kept more than {CONTENTION_WARNING} CPUs busy on average "
            f"(worst {worst:.1f} of {os.cpu_count()}): likely inflated; rerun on a quiet machine"
        ]
        if worst > CONTENTION_WARNING
        else []
    )
    return [*sorted(missing), *busy]


def _contention(outcome: Outcome) -> float:
    return outcome.summary.max_contention if outcome.summary else 0.0


def _busy(outcome: Outcome) -> bool:
    """Whether other processes competed for the CPUs enough to distrust this time."""
    return _contention(outcome) > CONTENTION_WARNING


def render_report(
    cases: Sequence[Case], results: Mapping[str, Mapping[str, Outcome]], names: Sequence[str], repeat: int
) -> str:
    """The three tables (time with ratios, peak RSS, targets) and any notes about failed sides."""
    references = [name for name in names if name != SUBJECT]
    time_rows = [
        [
            case.title,
            *_side_cells(results[case.key], names, "time"),
            *_ratio_cells(results[case.key], references),
        ]
        for case in cases
    ]
    rss_rows = [[case.title, *_side_cells(results[case.key], names, "rss")] for case in cases]
    target_rows = []
    for case in cases:
        for target in case.targets:
            verdict = target.judge(results[case.key], case.dataset)
            target_rows.append([case.title, target.text, verdict.measured, verdict.word])
    notes = _notes(cases, results)
    sections = [
        f"Wall time, best of {repeat} (ratio = {SUBJECT} ÷ other)",
        render_table(["case", *names, *(f"÷ {ref}" for ref in references)], time_rows),
        f"Peak RSS of the command, max of {repeat}",
        render_table(["case", *names], rss_rows),
        f"Targets for {SUBJECT}",
        render_table(["case", "target", "measured", "met"], target_rows),
    ]
    if notes:
        sections += ["Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(sections)


def _outcome_json(outcome: Outcome) -> dict[str, object]:
    runs = outcome.summary.runs if outcome.summary else ()
    return {
        "state": outcome.state,
        "note": outcome.note or None,
        "best_seconds": outcome.seconds,
        "peak_rss_bytes": outcome.peak_rss,
        "runs": [
            {
                "seconds": run.seconds,
                "peak_rss_bytes": run.peak_rss_bytes,
                "cpu_seconds": run.cpu_seconds,
                "contention": run.contention,
            }
            for run in runs
        ],
    }


def _case_json(case: Case, outcomes: Mapping[str, Outcome]) -> dict[str, object]:
    verdicts = [(target, target.judge(outcomes, case.dataset)) for target in case.targets]
    return {
        "key": case.key,
        "title": case.title,
        "op": case.op,
        "dataset": {
            "files": case.dataset.file_count,
            "file_size": case.dataset.file_size,
            "total_bytes": case.dataset.total_bytes,
        },
        "sides": {name: _outcome_json(outcome) for name, outcome in outcomes.items()},
        "targets": [
            {"target": target.text, "measured": verdict.measured, "value": verdict.value, "met": verdict.met}
            for target, verdict in verdicts
        ],
    }


def report_json(
    cases: Sequence[Case], results: Mapping[str, Mapping[str, Outcome]], meta: Mapping[str, object]
) -> dict[str, object]:
    return {**meta, "cases": [_case_json(case, results[case.key]) for case in cases]}


# ------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    case_keys = [case.key for case in build_cases()]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"scale every case down {QUICK_FACTOR}x for a smoke run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each command N times per side and report the minimum (default 1)",
    )
    add_common_options(parser, workdir_help="where to write data (default: a temporary dir)")
    parser.add_argument("--only", metavar="KEYS", help=f"comma-separated subset of: {','.join(case_keys)}")
    parser.add_argument(
        "--sides", metavar="NAMES", help=f"comma-separated subset of: {','.join(side.name for side in SIDES)}"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


_Item = TypeVar("_Item", Case, Side)


def _select(items: Sequence[_Item], names: str | None, attr: str) -> list[_Item]:
    """Filter cases or sides by a comma-separated list of their keys or names."""
    if not names:
        return list(items)
    wanted = {name.strip() for name in names.split(",")}
    unknown = wanted - {getattr(item, attr) for item in items}
    if unknown:
        raise SystemExit(f"unknown {attr}: {', '.join(sorted(unknown))}")
    return [item for item in items if getattr(item, attr) in wanted]


def locate_tools(sides: Sequence[Side]) -> dict[str, Path | None]:
    return {tool: find_executable(tool) for side in sides for tool in sorted(side.tools)}


def versions(tools: Mapping[str, Path | None]) -> dict[str, str | None]:
    """Tool versions for the JSON report, so numbers can be compared across runs."""
    found = {name: path for name, path in tools.items() if path is not None and name != "cp"}
    reported = {name: tool_version(path, "--version") for name, path in found.items()}
    # `custody` has no --version; the checkout this benchmark sits in is the best available label.
    return {**reported, "mlcustody_checkout": source_revision(Path(__file__).resolve().parent)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = _select(build_cases(QUICK_FACTOR if args.quick else 1), args.only, "key")
    sides = _select(SIDES, args.sides, "name")
    tools = locate_tools(sides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        opts = Options(workdir=workdir, repeat=args.repeat, timeout=args.timeout, keep=args.keep, tools=tools)
        results = run_cases(cases, sides, opts)
    total = time.perf_counter() - started
    names = [side.name for side in sides]
    print(render_report(cases, results, names, args.repeat))
    scale = f"quick (1/{QUICK_FACTOR} size; targets are not meaningful)" if args.quick else "full size"
    print(f"\n{scale}; {os.cpu_count()} CPUs; whole benchmark took {fmt_seconds(total)}")
    if args.json:
        meta = {
            "benchmark": "store",
            "quick": args.quick,
            "repeat": args.repeat,
            "total_seconds": total,
            "machine": machine_info(),
            "versions": versions(tools),
        }
        args.json.write_text(json.dumps(report_json(cases, results, meta), indent=2) + "\n")
    failed = any(outcome.state == "failed" for outcomes in results.values() for outcome in outcomes.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
