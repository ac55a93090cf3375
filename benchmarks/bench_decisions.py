"""Decision-log benchmark: batch ingest, one-at-a-time record, trace, subject listing, disk, verify.

    python benchmarks/bench_decisions.py [--quick] [--decisions N] [--repeat N] [--only KEYS] [--profile]
                                         [--workdir DIR] [--json FILE]

A deployed model logs every prediction it makes, so the log has to keep up with the model and stay
cheap to search when a decision is contested. One workspace holds a small registered model
(``credit@1``, trained by a run that read a record-keyed CSV); ``batch-ingest`` then appends N
decisions with ``DecisionLog.record_batch`` from polars frames of ``--batch`` rows (decision_id, four
float inputs, output, subject), and the same rows are inserted with a plain ``sqlite3`` executemany into
a table of the same database as the reference. ``record`` logs 100,000 decisions one ``record`` call at
a time in a log of their own (``close`` included). ``trace`` calls ``Workspace.trace_decision`` for 200
random ids and runs whole ``custody trace decision ID --json`` processes; ``subject`` lists every
decision of one subject; ``disk`` is the database growth per decision; ``verify`` times
``Workspace.verify_decisions`` over the whole log. In-process figures are ``time.perf_counter`` around
the calls; whole processes are timed from outside by _harness.run_measured. A missed target is
reported (with a cProfile of the operation), never an error exit: exit 1 only when a case could not run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import (
    add_common_options,
    add_only_option,
    chosen_cases,
    cpu_busy_seconds,
    drop_tree,
    find_executable,
    flush_dirty_pages,
    fmt_bytes,
    fmt_ratio,
    fmt_seconds,
    machine_info,
    new_parser,
    ratio,
    render_table,
    run_measured,
    source_revision,
)

if TYPE_CHECKING:
    import polars as pl

    from mlcustody import Workspace

CASES = ("batch-ingest", "record", "trace", "subject", "disk", "verify", "pg-ingest")
# ``record`` runs first, on an empty log, so its figure is the same whatever N is.
RUN_ORDER = ("record", "batch-ingest", "trace", "subject", "disk", "verify", "pg-ingest")
SEED = 20_260_301
MODEL_REF = "credit@1"
PASSPHRASE = "benchmark passphrase, not a secret"  # keys live and die in the benchmark's workspace
INPUTS = ("income", "age", "debt_ratio", "score")
DECISIONS_PER_SUBJECT = 100
TRACE_SAMPLES = 200
PROFILE_TOP = 15
CONTENTION_WARNING = 0.25

DEFAULT_DECISIONS = 10_000_000  # the size
QUICK_DECISIONS = 100_000
RECORD_CALLS = 100_000
QUICK_RECORD_CALLS = 20_000
BATCH_ROWS = 100_000
PG_DECISIONS = 1_000_000  # on PostgreSQL (the same frames, the first N of them)

# Targets from the issue.
INGEST_PER_S = 100_000
RECORD_US = 50.0
TRACE_S = 0.100
TRACE_RSS = 500_000_000
SUBJECT_S = 1.0

_STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, so a long run shows life and stdout stays the report."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else fmt_seconds(seconds)


def _rate(count: float | None) -> str:
    return "—" if count is None else f"{count:,.0f}/s"


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Contention:
    """CPUs kept busy by *other* processes while a block ran, on average (a 2-core VM is shared)."""

    def __enter__(self) -> Contention:
        self.busy, self.own, self.started = cpu_busy_seconds(), _own_cpu(), time.perf_counter()
        self.value = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        window = time.perf_counter() - self.started
        others = cpu_busy_seconds() - self.busy - (_own_cpu() - self.own)
        self.value = max(0.0, others) / window if window > 0 else 0.0


def _percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (p99 of 200 samples is the second slowest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# ------------------------------------------------------------------------------------------- data


def subject_of(index: int, subjects: int) -> str:
    return f"S-{index % subjects:07d}"


def decision_frame(start: int, rows: int, subjects: int) -> pl.DataFrame:
    """Rows start..start+rows-1 of the seeded decision table: id, four float inputs, output, subject."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(SEED + start)
    index = np.arange(start, start + rows)
    values = rng.normal(0, 1, (rows, len(INPUTS)))
    columns: dict[str, Any] = {"decision_id": [f"D-{i:09d}" for i in index.tolist()]}
    columns |= {name: values[:, k] for k, name in enumerate(INPUTS)}
    columns["output"] = (values[:, 0] + 0.5 * values[:, 1] > 0).tolist()
    columns["subject"] = [subject_of(i, subjects) for i in index.tolist()]
    return pl.DataFrame(columns)


def model_workspace(root: Path, db_url: str | None = None) -> Workspace:
    """A fresh workspace with a signing key and ``credit@1``: a logistic regression trained by a run
    that read a 500-record CSV added with a record manifest (so a trace reaches records); its
    metadata in ``db_url`` when given (default: SQLite)."""
    from sklearn.linear_model import LogisticRegression

    from mlcustody import Workspace
    from mlcustody.workspace.results import RecordSpec

    drop_tree(root)
    data = root / "data" / "train.csv"
    data.parent.mkdir(parents=True)
    lines = [f"{i},{(i * 37) % 101 / 10},{int((i * 37) % 101 > 50)}" for i in range(500)]
    data.write_text("id,x,y\n" + "\n".join(lines) + "\n")
    ws = Workspace.init(root, db_url=db_url)
    ws.generate_key("registry")
    ws.add([data], records=RecordSpec(key=("id",)))
    with ws.start_run("train", params={"C": 1.0}) as run:
        import polars as pl

        table = pl.read_csv(run.use("data/train.csv"))
        model = LogisticRegression().fit(table.select("x").to_numpy(), table["y"].to_numpy())
        run.save_model(model, root / "model.skops")
    ws.register_model("credit", run=run.id)
    return ws


def database_bytes(ws: Workspace) -> int:
    """The SQLite metadata database with its WAL (what the decisions take on disk)."""
    store = ws.root / ".custody"
    return sum(path.stat().st_size for path in store.glob("metadata.db*") if path.is_file())


# ------------------------------------------------------------------------------------------- cases


@dataclass
class Results:
    decisions: int
    record_calls: int
    batch_rows: int
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    trace_process: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Session:
    """The workspace every case shares: ``batch-ingest`` fills its log, the reading cases use it."""

    args: argparse.Namespace
    workdir: Path
    custody: Path | None
    ws: Workspace | None = None
    ingested: int = 0  # decisions D-… of the batch-ingest frames, which the reading cases look up
    logged: int = 0  # every decision in the log (batch-ingested, recorded, and those of profiled calls)
    profiles: dict[str, Callable[[], object]] = field(default_factory=dict)

    @property
    def subjects(self) -> int:
        return max(1, self.args.decisions // DECISIONS_PER_SUBJECT)

    def workspace(self) -> Workspace:
        if self.ws is None:
            log(f"setup: workspace with {MODEL_REF} registered")
            self.ws = model_workspace(self.workdir / "workspace")
        return self.ws

    def filled(self, res: Results) -> Workspace:
        """The workspace with N decisions logged (ingesting them untimed-as-a-case when needed)."""
        if not self.ingested:
            case_batch_ingest(self, res)
        return self.workspace()


def case_batch_ingest(session: Session, res: Results) -> None:
    """N decisions through ``record_batch`` in frames of ``batch_rows``; then a plain executemany."""
    ws, count, chunk = session.workspace(), session.args.decisions, session.args.batch
    if session.ingested:
        return
    log(f"batch-ingest: making {count:,} decisions ({session.subjects:,} subjects)")
    frames = [decision_frame(start, min(chunk, count - start), session.subjects) for start in range(0, count, chunk)]
    before = database_bytes(ws)
    flush_dirty_pages()
    log(f"batch-ingest: record_batch in {len(frames)} frame(s) of up to {chunk:,} rows")
    with Contention() as busy, ws.decision_log(MODEL_REF) as decision_log:
        started = time.perf_counter()
        for frame in frames:
            decision_log.record_batch(frame, id_col="decision_id", output_col="output", subject_col="subject")
    seconds = time.perf_counter() - started  # close (the final checkpoint) included
    session.ingested = count
    session.logged += count
    grown = database_bytes(ws) - before
    res.figures["batch-ingest"] = {"seconds": seconds, "per_s": count / seconds, "contention": busy.value}
    res.figures["disk"] = {"bytes": grown, "per_decision": grown / count}
    log(f"batch-ingest: {count / seconds:,.0f} decisions/s; reference executemany")
    flush_dirty_pages()
    with Contention() as busy:
        reference = reference_insert(ws.root / ".custody" / "metadata.db", frames)
    res.figures["batch-ingest"] |= {
        "reference_seconds": reference,
        "reference_per_s": count / reference,
        "reference_contention": busy.value,
    }
    last = frames[-1]
    session.profiles["batch-ingest"] = lambda: _profiled_batch(session, last.with_columns(_fresh_ids(last)))


def _fresh_ids(frame: pl.DataFrame) -> Any:
    import polars as pl

    return [(pl.lit("P-") + pl.col(name)).alias(name) for name in ("decision_id", "subject")]


def _profiled_batch(session: Session, frame: pl.DataFrame) -> None:
    with session.workspace().decision_log(MODEL_REF) as decision_log:
        decision_log.record_batch(frame, id_col="decision_id", output_col="output", subject_col="subject")
    session.logged += frame.height


def reference_insert(database: Path, frames: Sequence[pl.DataFrame]) -> float:
    """Seconds to insert the same rows with sqlite3 executemany, one transaction, same pragmas as the store."""
    columns = ["decision_id", *INPUTS, "output", "subject"]
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("DROP TABLE IF EXISTS bench_reference")
        typed = ", ".join(f"{name} REAL" for name in INPUTS)
        conn.execute(f"CREATE TABLE bench_reference (decision_id TEXT PRIMARY KEY, {typed}, output TEXT, subject TEXT)")
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO bench_reference ({', '.join(columns)}) VALUES ({placeholders})"
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for frame in frames:
            conn.executemany(statement, frame.select(columns).iter_rows())
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_reference")
        return seconds
    finally:
        conn.close()


def case_record(session: Session, res: Results) -> None:
    """``record`` one decision at a time, in a log of its own; amortised over the calls, close included."""
    ws, calls = session.workspace(), session.args.record_calls
    rng = random.Random(SEED)
    pending = [
        (
            f"R-{i:09d}",
            {name: rng.gauss(0, 1) for name in INPUTS},
            {"approved": rng.random() > 0.5},
            f"R-S-{i % 1000:07d}",
        )
        for i in range(calls)
    ]
    flush_dirty_pages()
    log(f"record: {calls:,} single record calls")
    with Contention() as busy:
        started = time.perf_counter()
        decision_log = ws.decision_log(MODEL_REF)
        for decision_id, inputs, output, subject in pending:
            decision_log.record(decision_id, inputs, output, subject=subject)
        closing = time.perf_counter()
        decision_log.close()
        ended = time.perf_counter()
    seconds = ended - started
    session.logged += calls
    res.figures["record"] = {
        "seconds": seconds,
        "close_seconds": ended - closing,
        "us_per_decision": seconds / calls * 1e6,
        "contention": busy.value,
    }

    def profiled() -> None:
        with ws.decision_log(MODEL_REF) as again:
            for decision_id, inputs, output, subject in pending[:10_000]:
                again.record("P" + decision_id, inputs, output, subject=subject)
        session.logged += 10_000

    session.profiles["record"] = profiled


def case_trace(session: Session, res: Results) -> None:
    """``trace_decision`` of TRACE_SAMPLES random batch-ingested ids, then whole CLI processes."""
    ws = session.filled(res)
    rng = random.Random(SEED + 1)
    ids = [f"D-{rng.randrange(session.ingested):09d}" for _ in range(TRACE_SAMPLES)]
    flush_dirty_pages()
    log(f"trace: {len(ids)} Workspace.trace_decision calls")
    seconds: list[float] = []
    with Contention() as busy:
        for decision_id in ids:
            started = time.perf_counter()
            found = ws.trace_decision(decision_id)
            seconds.append(time.perf_counter() - started)
            if found.decision.decision_id != decision_id or found.problems:
                raise RuntimeError(f"trace of {decision_id} is wrong or found problems: {found.problems}")
    res.figures["trace"] = {
        "first": seconds[0],
        "p50": _percentile(seconds[1:], 0.50),
        "p99": _percentile(seconds[1:], 0.99),
        "max": max(seconds),
        "contention": busy.value,
    }
    session.profiles["trace"] = lambda: ws.trace_decision(ids[-1])
    if session.custody is None:
        res.notes.append("custody is not installed: the whole `custody trace decision` process was not measured")
        return
    env = _process_env(session.workdir / "home")
    for decision_id in ids[: max(1, min(3, session.args.repeat))]:
        run = run_measured([str(session.custody), "trace", "decision", decision_id, "--json"], ws.root, env)
        doc = _json_or_none(run.stdout_tail)
        ok = run.ok and doc is not None and doc.get("decision", {}).get("decision_id") == decision_id
        res.trace_process.append({**vars(run), "traced": ok})
        if not ok:
            raise RuntimeError(f"`custody trace decision` failed: {run.failure_text()}")


def _process_env(home: Path) -> dict[str, str]:
    """The caller's environment without CUSTODY_* settings, with a HOME of its own."""
    home.mkdir(parents=True, exist_ok=True)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}, "HOME": str(home)}


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def case_subject(session: Session, res: Results) -> None:
    """Every decision of one subject (``list_decisions(subject=...)``, no limit), ``--repeat`` times."""
    ws = session.filled(res)
    subject = subject_of(session.ingested // 2, session.subjects)
    expected = sum(1 for i in range(session.ingested) if subject_of(i, session.subjects) == subject)
    log(f"subject: listing the {expected} decisions of {subject}")
    seconds: list[float] = []
    with Contention() as busy:
        for _ in range(max(2, session.args.repeat)):
            started = time.perf_counter()
            found = ws.list_decisions(subject=subject, limit=session.ingested)
            seconds.append(time.perf_counter() - started)
    if len(found) != expected:
        raise RuntimeError(f"listed {len(found)} decisions of {subject}, expected {expected}")
    res.figures["subject"] = {
        "decisions": expected,
        "first": seconds[0],
        "median": statistics.median(seconds[1:]),
        "contention": busy.value,
    }
    session.profiles["subject"] = lambda: ws.list_decisions(subject=subject, limit=session.ingested)


def case_disk(session: Session, res: Results) -> None:
    """Measured by batch-ingest (database and WAL growth over the N decisions); nothing more to run."""
    session.filled(res)


def case_verify(session: Session, res: Results) -> None:
    """``verify_decisions`` over the whole log (the batch-ingested and the recorded decisions)."""
    ws = session.filled(res)
    held = session.logged
    flush_dirty_pages()
    log(f"verify: verify_decisions over {held:,} decisions")
    with Contention() as busy:
        started = time.perf_counter()
        report = ws.verify_decisions()
        seconds = time.perf_counter() - started
    if report.problems:
        raise RuntimeError(f"verify_decisions found problems: {report.problems[:3]}")
    res.figures["verify"] = {
        "decisions": held,
        "seconds": seconds,
        "per_s": held / seconds,
        "checked": report.checked,
        "contention": busy.value,
    }


def case_pg_ingest(session: Session, res: Results) -> None:
    """``record_batch`` of the first PG_DECISIONS decisions into a workspace whose metadata is on a
    private PostgreSQL server (started as the tests start it: tests/_postgres.py, fsync off), then a
    plain executemany ``INSERT`` of the same rows into the same database as the reference."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _postgres import postgres_session, temporary_database

    count, chunk = min(session.args.decisions, PG_DECISIONS), session.args.batch
    frames = [decision_frame(start, min(chunk, count - start), session.subjects) for start in range(0, count, chunk)]
    with postgres_session() as server, temporary_database(server) as url:
        log(f"pg-ingest: {count:,} decisions into PostgreSQL")
        ws = model_workspace(session.workdir / "workspace-pg", db_url=url)
        with Contention() as busy, ws.decision_log(MODEL_REF) as decision_log:
            started = time.perf_counter()
            for frame in frames:
                decision_log.record_batch(frame, id_col="decision_id", output_col="output", subject_col="subject")
        seconds = time.perf_counter() - started
        log(f"pg-ingest: {count / seconds:,.0f} decisions/s; reference executemany")
        reference = pg_reference_insert(url, frames)
        ws.close()
    res.figures["pg-ingest"] = {
        "decisions": count,
        "seconds": seconds,
        "per_s": count / seconds,
        "contention": busy.value,
        "reference_seconds": reference,
        "reference_per_s": count / reference,
    }


def pg_reference_insert(url: str, frames: Sequence[pl.DataFrame]) -> float:
    """Seconds to insert the same rows with psycopg's executemany, one transaction, same database."""
    import psycopg
    from sqlalchemy.engine import make_url

    columns = ["decision_id", *INPUTS, "output", "subject"]
    where = make_url(url)
    with psycopg.connect(host=where.host, port=where.port, user=where.username, dbname=where.database) as conn:
        typed = ", ".join(f"{name} DOUBLE PRECISION" for name in INPUTS)
        conn.execute(
            f"CREATE TABLE bench_reference (decision_id TEXT PRIMARY KEY, {typed}, output BOOLEAN, subject TEXT)"
        )
        conn.commit()
        statement = f"INSERT INTO bench_reference ({', '.join(columns)}) VALUES ({', '.join('%s' for _ in columns)})"
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for frame in frames:
                cursor.executemany(statement, list(frame.select(columns).iter_rows()))
        conn.commit()
        return time.perf_counter() - started


CASE_FUNCTIONS: dict[str, Callable[[Session, Results], None]] = {
    "batch-ingest": case_batch_ingest,
    "record": case_record,
    "trace": case_trace,
    "subject": case_subject,
    "disk": case_disk,
    "verify": case_verify,
    "pg-ingest": case_pg_ingest,
}


# ------------------------------------------------------------------------------------------ report


def target_rows(res: Results) -> list[list[Any]]:
    """[case, what, target, measured, met, value] per figure; met is "—" where only reported."""
    f, out = res.figures, []
    if "batch-ingest" in f:
        what = f"record_batch, {res.decisions:,} decisions in frames of {res.batch_rows:,} (close included)"
        out += _ingest_rows("batch-ingest", what, f["batch-ingest"], "sqlite3 executemany")
    if "pg-ingest" in f:
        g = f["pg-ingest"]
        what = f"record_batch on PostgreSQL, {g['decisions']:,} decisions in frames of {res.batch_rows:,}"
        out += _ingest_rows("pg-ingest", what, g, "psycopg executemany")
    if "record" in f:
        r = f["record"]
        what = f"record × {res.record_calls:,}, amortised (close {_ms(r['close_seconds'])} included)"
        us = r["us_per_decision"]
        out.append(["record", what, f"≤ {RECORD_US:.0f} µs", f"{us:.1f} µs", _yes(us <= RECORD_US), us])
    if "trace" in f:
        t = f["trace"]
        for key in ("p50", "p99"):
            what = f"Workspace.trace_decision, {key} of {TRACE_SAMPLES - 1} (first call {_ms(t['first'])} apart)"
            out.append(["trace", what, f"≤ {TRACE_S * 1000:.0f} ms", _ms(t[key]), _yes(t[key] <= TRACE_S), t[key]])
    if res.trace_process:
        peak = max(run["peak_rss_bytes"] for run in res.trace_process)
        best = min(run["seconds"] for run in res.trace_process)
        what = f"`custody trace decision ID --json` peak RSS (max of {len(res.trace_process)}; best {_ms(best)})"
        out.append(["trace", what, f"≤ {TRACE_RSS // 1_000_000} MB", fmt_bytes(peak), _yes(peak <= TRACE_RSS), peak])
    if "subject" in f:
        s = f["subject"]
        what = f"list_decisions(subject=…), {s['decisions']} decisions (median; first {_ms(s['first'])})"
        goal = f"≤ {SUBJECT_S:.0f} s"
        out.append(["subject", what, goal, _ms(s["median"]), _yes(s["median"] <= SUBJECT_S), s["median"]])
    if "disk" in f:
        d = f["disk"]
        what = f"database + WAL growth ÷ N ({fmt_bytes(d['bytes'])} in all)"
        out.append(["disk", what, "— (reported)", f"{d['per_decision']:.0f} B", "—", d["per_decision"]])
    if "verify" in f:
        v = f["verify"]
        what = f"verify_decisions, {v['decisions']:,} decisions ({fmt_seconds(v['seconds'])})"
        out.append(["verify", what, "— (reported)", _rate(v["per_s"]), "—", v["per_s"]])
    return out


def _ingest_rows(case: str, what: str, figures: Mapping[str, Any], reference: str) -> list[list[Any]]:
    """The ingest rate against its target, and the plain insert of the same rows when it was run."""
    rate = figures["per_s"]
    rows = [[case, what, f"≥ {INGEST_PER_S:,}/s", _rate(rate), _yes(rate >= INGEST_PER_S), rate]]
    if "reference_per_s" in figures:
        vs = ratio(figures["reference_per_s"], rate)
        shown = f"{_rate(figures['reference_per_s'])} ({fmt_ratio(vs)} of mlcustody)"
        rows.append([case, f"reference: {reference}, same rows and database", "— (reported)", shown, "—", vs])
    return rows


def missed(res: Results) -> list[str]:
    return sorted({row[0] for row in target_rows(res) if row[4] == "NO"})


def profile_case(session: Session, res: Results, case: str) -> None:
    """One representative call of the case under cProfile: where its time goes."""
    log(f"profiling {case}")
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(session.profiles[case])
    res.figures.setdefault("profiled_seconds", {})[case] = time.perf_counter() - started
    res.profile[case] = heaviest(profiler)


def _where(filename: str) -> str:
    """A profiled file name without machine-specific prefixes."""
    for marker in ("/site-packages/", "/src/", "/lib/python"):
        _, found, tail = filename.rpartition(marker)
        if found:
            return tail
    return os.path.basename(filename)


def heaviest(profiler: cProfile.Profile) -> list[dict[str, Any]]:
    """The PROFILE_TOP functions by cumulative time, from pstats' own sort."""
    stats = pstats.Stats(profiler, stream=io.StringIO()).sort_stats(pstats.SortKey.CUMULATIVE)
    found = []
    for key in stats.fcn_list[:PROFILE_TOP]:  # type: ignore[attr-defined]
        _, calls, own, cumulative, _ = stats.stats[key]  # type: ignore[attr-defined]
        filename, line, name = key
        found.append(
            {"function": f"{_where(filename)}:{line}({name})", "calls": calls, "own": own, "cumulative": cumulative}
        )
    return found


def render_report(res: Results) -> str:
    sections = []
    rows = target_rows(res)
    if rows:
        sections.append(render_table(["case", "what", "target", "measured", "met"], [row[:5] for row in rows]))
    for case, functions in res.profile.items():
        took = res.figures.get("profiled_seconds", {}).get(case)
        table = [[f["function"][:90], f"{f['calls']:,}", _ms(f["own"]), _ms(f["cumulative"])] for f in functions]
        sections += [
            f"cProfile of {case} ({_ms(took)} under the profiler; top {PROFILE_TOP} by cumulative time)",
            render_table(["function", "calls", "own", "cumulative"], table),
        ]
    notes = list(res.notes)
    busy = {
        case: fig["contention"] for case, fig in res.figures.items() if isinstance(fig, dict) and "contention" in fig
    }
    loaded = [f"{case} {value:.2f}" for case, value in busy.items() if value > CONTENTION_WARNING]
    if loaded:
        notes.append(f"other processes kept CPUs busy on average during: {', '.join(loaded)} (of {os.cpu_count()})")
    notes += [f"{case} FAILED: {why}" for case, why in res.failed.items()]
    if notes:
        sections += ["Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(sections)


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_DECISIONS:,} decisions and {QUICK_RECORD_CALLS:,} record calls: a smoke run",
    )
    parser.add_argument(
        "--decisions", type=int, metavar="N", help=f"decisions batch-ingested (default {DEFAULT_DECISIONS:,})"
    )
    parser.add_argument("--record-calls", type=int, metavar="N", help=f"single record calls (default {RECORD_CALLS:,})")
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH_ROWS,
        metavar="ROWS",
        help=f"rows per record_batch call (default {BATCH_ROWS:,})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="subject listings (the first reported apart; default 5); whole trace processes: min(N, 3)",
    )
    add_only_option(parser, CASES)
    parser.add_argument("--profile", action="store_true", help="profile every case, not only those that miss a target")
    add_common_options(parser, workdir_help="where the workspace goes (default: a temporary directory)")
    args = parser.parse_args(argv)
    args.decisions = args.decisions or (QUICK_DECISIONS if args.quick else DEFAULT_DECISIONS)
    args.record_calls = args.record_calls or (QUICK_RECORD_CALLS if args.quick else RECORD_CALLS)
    if args.decisions < 1_000 or args.record_calls < 1_000 or args.batch < 1:
        parser.error("--decisions and --record-calls must be at least 1000, --batch at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.cases = chosen_cases(parser, args.only, CASES)
    return args


def run_cases(args: argparse.Namespace, workdir: Path, res: Results) -> None:
    """Each case in turn; a case that raises is reported and the others still run."""
    session = Session(args, workdir, find_executable("custody"))
    try:
        for case in [c for c in RUN_ORDER if c in args.cases]:
            try:
                CASE_FUNCTIONS[case](session, res)
                # Right away, while the log is the size the case measured (profiled calls add decisions).
                if case in session.profiles and (args.profile or case in missed(res)):
                    profile_case(session, res, case)
            except Exception as exc:  # report and go on: the other cases still run
                traceback.print_exc()
                res.failed[case] = f"{type(exc).__name__}: {exc}"
            else:
                res.ran.append(case)
        res.ran.sort(key=CASES.index)
    finally:
        if session.ws is not None:
            session.ws.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    res = Results(decisions=args.decisions, record_calls=args.record_calls, batch_rows=args.batch)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CUSTODY_")}
    os.environ["CUSTODY_KEY_PASSPHRASE"] = PASSPHRASE
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-decisions-") as scratch:
            workdir = (args.workdir or Path(scratch)).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            run_cases(args, workdir, res)
            if not args.keep:
                for name in ("workspace", "home"):
                    drop_tree(workdir / name)
    finally:
        os.environ.pop("CUSTODY_KEY_PASSPHRASE", None)
        os.environ.update(saved)
    total = time.perf_counter() - started
    print(render_report(res))
    scale = "quick" if args.quick else "custom" if args.decisions != DEFAULT_DECISIONS else "full"
    print(f"\n{', '.join(res.ran) or 'no case'} ran ({scale}); {os.cpu_count()} CPUs; took {fmt_seconds(total)}")
    if args.json:
        meta: Mapping[str, Any] = {
            "benchmark": "decisions",
            "quick": args.quick,
            "total_seconds": total,
            "machine": machine_info(),
            "mlcustody_checkout": source_revision(Path(__file__).resolve().parent),
        }
        fields = ("case", "what", "target", "measured", "met", "value")
        doc = {
            **meta,
            "decisions": res.decisions,
            "record_calls": res.record_calls,
            "batch_rows": res.batch_rows,
            "cases": res.ran,
            "failed": res.failed,
            "figures": res.figures,
            "trace_process": res.trace_process,
            "profile": res.profile,
            "targets": [dict(zip(fields, row, strict=True)) for row in target_rows(res)],
            "notes": res.notes,
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
