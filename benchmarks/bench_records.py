"""Record benchmark: record manifests, record diff and record lookup on a 10M-row table, with references.

    python benchmarks/bench_records.py [--rows N | --quick] [--workdir DIR] [--json FILE] [--keep]

A deterministic 10-column table (ints, floats, strings, a timestamp, a boolean, ~2% nulls; see
_records_data.py) is written as Parquet and as CSV, with a second version in which 1% of the rows
changed (edits, inserts, deletes). For each format, in a fresh workspace, whole ``custody`` processes
are timed from outside with their peak RSS: the record-manifest build of both versions
(``custody add --records --key id``), the record diff of the two, and the lookup of one record. In
the same run, as references: ``dvc add`` of the same files, and, in this process, the record
fingerprints of the in-memory table against ``pandas.util.hash_pandas_object`` of the same frame.
Every target is printed next to its measurement; a missed target is reported, never an error exit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    GB,
    RunResult,
    add_common_options,
    cpu_busy_seconds,
    drop_tree,
    find_executable,
    flush_dirty_pages,
    fmt_bytes,
    fmt_ratio,
    fmt_seconds,
    machine_info,
    ratio,
    render_table,
    run_measured,
    source_revision,
    tool_version,
)
from _records_data import write_version

DEFAULT_ROWS = 10_000_000
QUICK_ROWS = 1_000_000
FORMATS = ("parquet", "csv")
SHOW_REPEAT = 3  # `custody show --record` is cheap: best of this many processes
LOOKUP_CALLS = 5  # warm in-process find_records calls
INPROC_REPEAT = 3  # in-process fingerprint / hash_pandas_object: best of this many, interleaved
CONTENTION_WARNING = 0.25  # other processes kept this many CPUs busy on average: flag the figure

# Targets from the issue ("on 2 cores").
FINGERPRINT_ROWS_PER_S = 1_500_000
VERSUS_PANDAS = 1.5
DIFF_SECONDS = 10.0
PEAK_RSS = 2 * GB
LOOKUP_SECONDS = 0.2

# Write a command's stdout to a file and exec it, so the measured process is the command itself and
# its whole JSON survives (RunResult keeps only the last few kB of output).
_REDIRECT = 'out=$1; shift; exec "$@" > "$out"'


def log(message: str) -> None:
    """Progress on stderr, so a long run shows life and stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def isolated_env(home: Path) -> dict[str, str]:
    """Own HOME and DVC site cache; no CUSTODY_*/DVC_*/GIT_*/XDG_* settings inherited from the caller."""
    inherited = {
        key: value for key, value in os.environ.items() if not key.startswith(("CUSTODY_", "DVC_", "GIT_", "XDG_"))
    }
    return {
        **inherited,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
    }


# ------------------------------------------------------------------------------------- measurements


@dataclass
class Step:
    """One timed whole-process command (or a failure), with the rows it handled."""

    name: str
    fmt: str
    run: RunResult | None
    rows: int | None = None
    note: str = ""
    runs: list[RunResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.run is not None and self.run.ok

    @property
    def seconds(self) -> float | None:
        return self.run.seconds if self.ok and self.run else None

    @property
    def peak_rss(self) -> int | None:
        return self.run.peak_rss_bytes if self.ok and self.run else None

    @property
    def rows_per_s(self) -> float | None:
        return ratio(self.rows, self.seconds)

    @property
    def busy(self) -> bool:
        return any(run.contention > CONTENTION_WARNING for run in self.runs or ([self.run] if self.run else []))


@dataclass
class Results:
    rows: int
    changes: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    diffs: dict[str, dict[str, Any]] = field(default_factory=dict)  # fmt -> {expected, got}
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)  # fmt -> in-process find_records
    inproc: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    generate_seconds: float = 0.0

    def step(self, name: str, fmt: str) -> Step | None:
        return next((s for s in self.steps if s.name == name and s.fmt == fmt), None)


def timed(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float, out: Path | None = None
) -> tuple[RunResult, Any]:
    """Run one command (stdout to ``out`` if given), after flushing dirty pages; parse its JSON."""
    flush_dirty_pages()
    if out is not None:
        argv = ["sh", "-c", _REDIRECT, "sh", str(out), *argv]
    result = run_measured(argv, cwd, env, timeout)
    document = None
    if out is not None and result.ok:
        try:
            document = json.loads(out.read_text())
        except (OSError, ValueError) as exc:
            document = {"unparsable": str(exc)}
    state = "ok" if result.ok else "FAILED"
    log(
        f"  {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv[5:] if out else argv))[:70]:<70} "
        f"{fmt_seconds(result.seconds):>9}  peak RSS {fmt_bytes(result.peak_rss_bytes):>9}  "
        f"others {result.contention:.1f} CPUs  {state}"
    )
    return result, document


def setup(commands: Sequence[Sequence[str]], repo: Path, env: Mapping[str, str], timeout: float) -> None:
    for command in commands:
        result = run_measured(command, repo, env, timeout)
        if not result.ok:
            raise RuntimeError(f"setup failed: {result.failure_text()}")


def copy_file(source: Path, destination: Path) -> None:
    """Untimed setup copy (a real copy: no tool may share the benchmark's inodes)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def run_custody(fmt: str, data: Path, base: Path, res: Results, custody: Path, timeout: float) -> Path | None:
    """add v1, add v2, diff, show: whole processes in a fresh workspace. Returns the repo, or None."""
    repo, home = base / "repo", base / "home"
    drop_tree(base)
    repo.mkdir(parents=True)
    home.mkdir()
    env = isolated_env(home)
    setup([[str(custody), "init"]], repo, env, timeout)
    target = f"data.{fmt}"
    expected_rows = {1: res.rows, 2: int(res.changes["rows_v2"])}
    for version in (1, 2):
        copy_file(data / f"v{version}.{fmt}", repo / target)
        run, doc = timed(
            [str(custody), "add", target, "--records", "--key", "id", "--json"],
            repo,
            env,
            timeout,
            base / f"add{version}.json",
        )
        step = Step(f"add v{version}", fmt, run, rows=expected_rows[version])
        res.steps.append(step)
        if not run.ok:
            step.note = run.failure_text()
            return None
        count = doc["results"][0]["artifact"]["meta"]["records"]["count"]
        if count != expected_rows[version]:
            res.notes.append(f"{fmt}: add v{version} counted {count:,} records, expected {expected_rows[version]:,}")

    run, doc = timed(
        [str(custody), "diff", "data@1", "data@2", "--records", "--json"], repo, env, timeout, base / "diff.json"
    )
    step = Step("record diff", fmt, run, rows=res.rows + int(res.changes["rows_v2"]))
    res.steps.append(step)
    expected = {
        "added": res.changes["inserted"],
        "removed": res.changes["deleted"],
        "changed": res.changes["edited"],
        "unchanged": res.rows - res.changes["deleted"] - res.changes["edited"],
    }
    got = doc["summary"] if run.ok and doc and "summary" in doc else None
    res.diffs[fmt] = {"expected": expected, "got": got, "matched_by": doc.get("matched_by") if doc else None}
    if not run.ok:
        step.note = run.failure_text()
    elif got != expected:
        res.notes.append(f"{fmt}: record diff {got} differs from the construction {expected}")

    show_runs: list[RunResult] = []
    ids = [res.changes["sample_edited"][0], res.changes["sample_inserted"][0]]
    for attempt in range(SHOW_REPEAT):
        record_id = ids[attempt % len(ids)]
        run, doc = timed(
            [str(custody), "show", "data@2", "--record", str(record_id), "--json"],
            repo,
            env,
            timeout,
            base / "show.json",
        )
        show_runs.append(run)
        if not run.ok:
            break
        found = (doc or {}).get("found") or []
        if not found or not found[0].get("verified") or found[0]["values"].get("id") != record_id:
            res.notes.append(f"{fmt}: show --record {record_id} did not return that record verified")
    best = min((r for r in show_runs if r.ok), key=lambda r: r.seconds, default=show_runs[-1])
    step = Step("lookup (process)", fmt, best, runs=show_runs)
    if not best.ok:
        step.note = best.failure_text()
    res.steps.append(step)
    return repo


def lookup_in_process(repo: Path, res: Results, fmt: str) -> None:
    """``Workspace.find_records`` warm (imports and the first call done), in this process."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CUSTODY_")}
    try:
        from mlcustody import Workspace

        ws = Workspace.open(repo)
        ids = [*res.changes["sample_edited"], *res.changes["sample_inserted"]]
        started = time.perf_counter()
        ws.find_records("data@2", record_id=str(ids[0]))
        first = time.perf_counter() - started
        times = []
        for i in range(LOOKUP_CALLS):
            record_id = ids[(i + 1) % len(ids)]
            started = time.perf_counter()
            _, found = ws.find_records("data@2", record_id=str(record_id))
            times.append(time.perf_counter() - started)
            if not found or not found[0].record.verified:
                res.notes.append(f"{fmt}: find_records({record_id}) did not return a verified record")
        res.lookups[fmt] = {"first_seconds": first, "seconds": times, "median_seconds": statistics.median(times)}
        median = statistics.median(times)
        log(f"  find_records in-process: first {first * 1000:.0f} ms, warm median {median * 1000:.0f} ms")
    finally:
        os.environ.update(saved)


def run_dvc(fmt: str, data: Path, base: Path, res: Results, tools: Mapping[str, Path | None], timeout: float) -> None:
    """``dvc add`` of version 1 in a fresh git + DVC repository (setup untimed)."""
    dvc, git = tools["dvc"], tools["git"]
    if dvc is None or git is None:
        res.steps.append(Step("dvc add v1", fmt, None, rows=res.rows, note="dvc or git not available"))
        return
    repo, home = base / "repo", base / "home"
    drop_tree(base)
    repo.mkdir(parents=True)
    home.mkdir()
    env = isolated_env(home)
    setup(
        [
            [str(git), "init", "-q"],
            [str(dvc), "init", "-q"],
            [str(dvc), "config", "core.analytics", "false"],
            [str(dvc), "config", "core.check_update", "false"],
        ],
        repo,
        env,
        timeout,
    )
    copy_file(data / f"v1.{fmt}", repo / f"data.{fmt}")
    run, _ = timed([str(dvc), "add", f"data.{fmt}"], repo, env, timeout)
    res.steps.append(Step("dvc add v1", fmt, run, rows=res.rows, note="" if run.ok else run.failure_text()))


def interleaved(repeat: int, calls: Mapping[str, Callable[[], object]]) -> dict[str, dict[str, Any]]:
    """Time each call ``repeat`` times, alternating between them so that a burst of load from other
    processes hits every contender alike; the best run of each is its figure. Each run also records
    how many CPUs other processes kept busy meanwhile (as the harness does for whole commands)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    contention: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            busy, own = cpu_busy_seconds(), _own_cpu_seconds()
            started = time.perf_counter()
            call()
            elapsed = time.perf_counter() - started
            others = cpu_busy_seconds() - busy - (_own_cpu_seconds() - own)
            times[name].append(elapsed)
            contention[name].append(max(0.0, others) / elapsed if elapsed > 0 else 0.0)
    return {name: {"seconds": min(runs), "runs": runs, "contention": contention[name]} for name, runs in times.items()}


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fingerprint_in_process(parquet: Path, res: Results) -> None:
    """Record fingerprints of the in-memory table against hash_pandas_object of the same frame.

    The frame is ``table.to_pandas()`` (pandas' own dtypes for that table); both sides are warm.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    import mlcustody
    from mlcustody.storage.records.fingerprint import fingerprints

    table = pq.read_table(parquet)
    frame = table.to_pandas()
    fingerprints(table.slice(0, 1000))  # imports, hasher choice: not part of the figure
    pd.util.hash_pandas_object(frame.head(1000), index=False)
    out: dict[str, Any] = {
        "rows": table.num_rows,
        "pandas_dtypes": {str(name): str(dtype) for name, dtype in frame.dtypes.items()},
    }
    out |= interleaved(
        INPROC_REPEAT,
        {
            "fingerprints_arrow": lambda: fingerprints(table),
            "hash_pandas_object": lambda: pd.util.hash_pandas_object(frame, index=False),
        },
    )
    out |= interleaved(
        1,
        {
            "fingerprint_with_ids": lambda: mlcustody.fingerprint(table, key="id"),
            "fingerprints_pandas": lambda: fingerprints(frame),
        },
    )
    pairs = zip(out["hash_pandas_object"]["runs"], out["fingerprints_arrow"]["runs"], strict=True)
    out["speedup_per_pair"] = [pandas_s / ours for pandas_s, ours in pairs]
    for name in ("fingerprints_arrow", "hash_pandas_object", "fingerprint_with_ids", "fingerprints_pandas"):
        log(f"  {name:<22} {fmt_seconds(out[name]['seconds'])}")
    res.inproc = out


# ------------------------------------------------------------------------------------------ report


def _star(step: Step | None) -> str:
    return "*" if step is not None and step.busy else ""


def _rate(rows_per_s: float | None) -> str:
    return "—" if rows_per_s is None else f"{rows_per_s / 1e6:.2f}M rows/s"


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def command_rows(res: Results) -> list[list[str]]:
    rows = []
    for step in res.steps:
        run = step.run
        if not step.ok:
            rows.append([step.name, step.fmt, "FAILED" if run else "not available", "—", "—", "—"])
            continue
        assert run is not None
        rows.append(
            [
                step.name,
                step.fmt,
                fmt_seconds(step.seconds) + _star(step),
                _rate(step.rows_per_s) if step.name != "lookup (process)" else "—",
                fmt_bytes(step.peak_rss),
                f"{run.cpu_seconds:.1f} s",
            ]
        )
    return rows


def inproc_rows(res: Results) -> list[list[str]]:
    data, rows = res.inproc, res.inproc.get("rows")
    out = []
    labels = (
        ("fingerprints_arrow", "fingerprints(Arrow table)"),
        ("fingerprint_with_ids", "mlcustody.fingerprint(table, key='id')"),
        ("hash_pandas_object", "pandas hash_pandas_object(frame, index=False)"),
        ("fingerprints_pandas", "fingerprints(same pandas frame)"),
    )
    for key, label in labels:
        if key in data:
            runs, busy = data[key]["runs"], data[key]["contention"]
            star = "*" if busy[runs.index(min(runs))] > CONTENTION_WARNING else ""
            out.append([label, fmt_seconds(data[key]["seconds"]) + star, _rate(ratio(rows, data[key]["seconds"]))])
    for fmt, lookup in res.lookups.items():
        out.append([f"Workspace.find_records, {fmt}, first call", _ms(lookup["first_seconds"]), "—"])
        warm = f"Workspace.find_records, {fmt}, warm median of {LOOKUP_CALLS}"
        out.append([warm, _ms(lookup["median_seconds"]), "—"])
    return out


def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
    return "—" if value is None else ("yes" if ok(value) else "NO")


def target_rows(res: Results) -> list[list[Any]]:
    """[what, target, measured, met, value] per target."""
    out: list[list[Any]] = []
    data = res.inproc
    fp = data.get("fingerprints_arrow", {}).get("seconds")
    hpo = data.get("hash_pandas_object", {}).get("seconds")
    fp_rate = ratio(data.get("rows"), fp)
    out.append(
        [
            "fingerprint, in-process (Arrow)",
            f"≥ {FINGERPRINT_ROWS_PER_S / 1e6:.1f}M rows/s",
            _rate(fp_rate),
            verdict(fp_rate, lambda v: v >= FINGERPRINT_ROWS_PER_S),
            fp_rate,
        ]
    )
    speedup = ratio(hpo, fp)
    pairs = data.get("speedup_per_pair") or []
    spread = f" (pairs {min(pairs):.2f}–{max(pairs):.2f}×)" if len(pairs) > 1 else ""
    out.append(
        [
            "fingerprint vs hash_pandas_object",
            f"≥ {VERSUS_PANDAS:.1f}× faster",
            fmt_ratio(speedup) + spread,
            verdict(speedup, lambda v: v >= VERSUS_PANDAS),
            speedup,
        ]
    )
    for fmt in FORMATS:
        add = res.step("add v1", fmt)
        if add is None:
            continue
        rate = add.rows_per_s
        out.append(
            [
                f"manifest build ({fmt}, whole `custody add`)",
                f"≥ {FINGERPRINT_ROWS_PER_S / 1e6:.1f}M rows/s",
                _rate(rate) + _star(add),
                verdict(rate, lambda v: v >= FINGERPRINT_ROWS_PER_S),
                rate,
            ]
        )
        diff = res.step("record diff", fmt)
        if diff is not None:
            out.append(
                [
                    f"record diff ({fmt})",
                    f"≤ {DIFF_SECONDS:.0f} s",
                    fmt_seconds(diff.seconds) + _star(diff),
                    verdict(diff.seconds, lambda v: v <= DIFF_SECONDS),
                    diff.seconds,
                ]
            )
        peak_steps = [s for s in res.steps if s.fmt == fmt and not s.name.startswith("dvc") and s.ok]
        if peak_steps:
            worst = max(peak_steps, key=lambda s: s.peak_rss or 0)
            out.append(
                [
                    f"peak RSS ({fmt}, worst: {worst.name})",
                    f"≤ {fmt_bytes(PEAK_RSS)}",
                    fmt_bytes(worst.peak_rss),
                    verdict(worst.peak_rss, lambda v: v <= PEAK_RSS),
                    worst.peak_rss,
                ]
            )
        show = res.step("lookup (process)", fmt)
        if show is not None:
            out.append(
                [
                    f"lookup ({fmt}, whole `custody show`)",
                    f"≤ {LOOKUP_SECONDS * 1000:.0f} ms",
                    _ms(show.seconds) + _star(show),
                    verdict(show.seconds, lambda v: v <= LOOKUP_SECONDS),
                    show.seconds,
                ]
            )
        lookup = res.lookups.get(fmt)
        if lookup is not None:
            value = lookup["median_seconds"]
            out.append(
                [
                    f"lookup ({fmt}, find_records warm)",
                    f"≤ {LOOKUP_SECONDS * 1000:.0f} ms",
                    _ms(value),
                    verdict(value, lambda v: v <= LOOKUP_SECONDS),
                    value,
                ]
            )
    return out


def render_report(res: Results) -> str:
    diff_rows = []
    for fmt, d in res.diffs.items():
        got = d["got"] or {}
        diff_rows.append(
            [fmt, d.get("matched_by") or "—", *(f"{got.get(k, '—')} / {v}" for k, v in d["expected"].items())]
        )
    dvc = {fmt: res.step("dvc add v1", fmt) for fmt in FORMATS}
    ref_rows = []
    for fmt in FORMATS:
        add, ref = res.step("add v1", fmt), dvc[fmt]
        if add is not None and ref is not None:
            versus = fmt_ratio(ratio(add.seconds, ref.seconds))
            ref_rows.append([fmt, fmt_seconds(add.seconds), fmt_seconds(ref.seconds), versus])
    sections = [
        f"Whole processes ({res.rows:,} rows; v2 has {res.changes.get('rows_v2', 0):,}; rows/s = rows ÷ wall time)",
        render_table(["step", "format", "wall time", "rows/s", "peak RSS", "CPU"], command_rows(res)),
        "Record diff, got / expected from the construction",
        render_table(["format", "matched by", "added", "removed", "changed", "unchanged"], diff_rows),
        "custody add --records vs dvc add (version 1; DVC only hashes the file)",
        render_table(["format", "custody add", "dvc add", "custody ÷ dvc"], ref_rows),
        "In-process (this interpreter, warm)",
        render_table(["measurement", "time", "rows/s"], inproc_rows(res)),
        "Targets",
        render_table(["what", "target", "measured", "met"], [row[:4] for row in target_rows(res)]),
    ]
    notes = list(res.notes)
    notes += [f"{s.name} ({s.fmt}): {s.note}" for s in res.steps if s.note]
    inproc_busy = any(
        max(v["contention"]) > CONTENTION_WARNING
        for v in res.inproc.values()
        if isinstance(v, dict) and "contention" in v
    )
    if inproc_busy or any(s.busy for s in res.steps):
        notes.append(
            f"* other processes kept > {CONTENTION_WARNING} CPUs busy on average during that measurement "
            f"({os.cpu_count()} CPUs): likely inflated"
        )
    if notes:
        sections += ["Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(sections)


def report_json(res: Results, meta: Mapping[str, Any]) -> dict[str, Any]:
    def run_json(run: RunResult | None) -> dict[str, Any] | None:
        if run is None:
            return None
        return {
            "seconds": run.seconds,
            "peak_rss_bytes": run.peak_rss_bytes,
            "cpu_seconds": run.cpu_seconds,
            "contention": run.contention,
            "returncode": run.returncode,
        }

    return {
        **meta,
        "rows": res.rows,
        "changes": res.changes,
        "generate_seconds": res.generate_seconds,
        "steps": [
            {
                "step": s.name,
                "format": s.fmt,
                "ok": s.ok,
                "rows": s.rows,
                "rows_per_s": s.rows_per_s,
                "note": s.note or None,
                "run": run_json(s.run),
                "runs": [run_json(r) for r in s.runs],
            }
            for s in res.steps
        ],
        "record_diff": res.diffs,
        "find_records": res.lookups,
        "in_process": res.inproc,
        "targets": [
            {
                "what": what,
                "target": goal,
                "measured": shown,
                "met": {"yes": True, "NO": False}.get(met),
                "value": value,
            }
            for what, goal, shown, met, value in target_rows(res)
        ],
        "notes": res.notes,
    }


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, metavar="N", help=f"rows of version 1 (default {DEFAULT_ROWS:,})"
    )
    size.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows: a smoke run")
    add_common_options(parser, workdir_help="where to write data and workspaces (default: a temporary dir)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of: parquet,csv")
    parser.add_argument("--no-dvc", action="store_true", help="skip the dvc add reference")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process fingerprint comparison")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = QUICK_ROWS
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if unknown := set(args.formats) - set(FORMATS):
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = {name: find_executable(name) for name in ("custody", "dvc", "git")}
    if tools["custody"] is None:
        raise SystemExit("custody is not installed: pip install -e . (or '.[bench]')")
    res = Results(rows=args.rows)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-records-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        data = workdir / "data"
        log(f"writing {args.rows:,} rows as Parquet and CSV, version 1 and 2")
        t0 = time.perf_counter()
        write_version(args.rows, 1, data / "v1.parquet", data / "v1.csv")
        res.changes = write_version(args.rows, 2, data / "v2.parquet", data / "v2.csv").as_dict()
        res.generate_seconds = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in sorted(data.iterdir())}
        shown = ", ".join(f"{name} {fmt_bytes(size)}" for name, size in sizes.items())
        log(f"  done in {fmt_seconds(res.generate_seconds)}: {shown}")
        for fmt in args.formats:
            log(f"mlcustody, {fmt}")
            base = workdir / f"custody-{fmt}"
            try:
                repo = run_custody(fmt, data, base, res, tools["custody"], args.timeout)
                if repo is not None:
                    lookup_in_process(repo, res, fmt)
            except Exception as exc:  # report and go on: the other format and the references still run
                res.notes.append(f"{fmt}: {type(exc).__name__}: {exc}")
            if not args.keep:
                drop_tree(base)
            if not args.no_dvc:
                log(f"dvc, {fmt}")
                try:
                    run_dvc(fmt, data, workdir / f"dvc-{fmt}", res, tools, args.timeout)
                except Exception as exc:
                    res.notes.append(f"dvc {fmt}: {type(exc).__name__}: {exc}")
                if not args.keep:
                    drop_tree(workdir / f"dvc-{fmt}")
        if not args.no_inprocess:
            log("in-process fingerprints vs hash_pandas_object")
            fingerprint_in_process(data / "v1.parquet", res)
        if not args.keep:
            drop_tree(data)
    total = time.perf_counter() - started
    print(render_report(res))
    scale = "quick" if args.quick else "full" if args.rows == DEFAULT_ROWS else "custom"
    print(f"\n{args.rows:,} rows ({scale}); {os.cpu_count()} CPUs; whole benchmark took {fmt_seconds(total)}")
    if args.json:
        meta = {
            "benchmark": "records",
            "quick": args.quick,
            "total_seconds": total,
            "machine": machine_info(),
            "versions": {
                "dvc": tool_version(tools["dvc"], "--version") if tools["dvc"] else None,
                "mlcustody_checkout": source_revision(Path(__file__).resolve().parent),
            },
        }
        args.json.write_text(json.dumps(report_json(res, meta), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
