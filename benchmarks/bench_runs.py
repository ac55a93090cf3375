"""Run-tracking benchmark: mlcustody's run SDK and ``custody run`` against MLflow, in one run.

    python benchmarks/bench_runs.py [--quick] [--repeat N] [--only KEYS] [--workdir DIR] [--json FILE] [--keep]

The same workload goes through both libraries: MLflow with its SQLite backend (``sqlite:///…/mlflow.db``,
artifacts beside it) and an mlcustody workspace, each side in a fresh directory of its own per case.
Both are libraries, so the SDK cases (log_metric, log_param, start-end, search) are timed in this
process with ``time.perf_counter``; run-overhead times whole processes: a training script alone,
under ``custody run``, and with MLflow autologging. Every target is printed next to its measurement;
a missed target is reported, never an error exit. See benchmarks/README.md for the cases and figures.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import math
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from _harness import (
    RunResult,
    Summary,
    add_common_options,
    copy_tree,
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
)

SUBJECT = "mlcustody"
REFERENCE = "MLflow"
CONTENTION_WARNING = 0.25  # other processes kept this many CPUs busy on average: flag the figure
# /proc/stat counts CPU time in 10 ms ticks: over a shorter window "contention" is mostly rounding.
MIN_JUDGED_WINDOW = 0.1
SEED = 20_240_611
METRIC_KEY = "loss"
SEARCH_THRESHOLD = 0.9
SEARCH_WHERE = f"metrics.auc > {SEARCH_THRESHOLD}"  # the same text in mlcustody's and MLflow's query language
SEARCH_LIMIT = 1_000
SEARCH_QUERIES = 5  # the search is cheap: best of at least this many queries per side
RUN_OVERHEAD_REPEAT = 3  # whole training processes per variant unless --repeat says otherwise

# Targets for mlcustody, from the issue: seconds per unit, and the overhead of `custody run`.
LOG_METRIC_TARGET = 20e-6
START_END_TARGET = 0.150
SEARCH_TARGET = 0.100
RUN_OVERHEAD_TARGET = 0.15

_T = TypeVar("_T")


@dataclass(frozen=True)
class Sizes:
    """How much work each case does. MLflow logs in one transaction per call, so at full size it gets
    fewer log_metric calls than mlcustody (the per-call figure is what is compared); --quick shrinks
    what is slow on either side (MLflow calls, populating runs, the training data)."""

    log_metric: tuple[int, int]  # calls: (mlcustody, MLflow)
    log_param: tuple[int, int]
    start_end: tuple[int, int]  # empty runs
    search_runs: int  # runs populated on each side before searching
    csv_files: int  # files the training script of run-overhead reads

    def calls(self, key: str) -> tuple[int, int]:
        return {"log_metric": self.log_metric, "log_param": self.log_param, "start-end": self.start_end}[key]


FULL = Sizes(
    log_metric=(10_000, 2_000), log_param=(1_000, 1_000), start_end=(100, 100), search_runs=10_000, csv_files=1_000
)
QUICK = Sizes(log_metric=(10_000, 500), log_param=(1_000, 200), start_end=(20, 20), search_runs=1_000, csv_files=200)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    unit: str  # what the time is divided by: "call", "run", "query"
    target: float | None  # seconds per unit for mlcustody, or None: reported only


SDK_CASES = (
    Case("log_metric", "log_metric, per call (incl. end/flush)", "call", LOG_METRIC_TARGET),
    Case("log_param", "log_param, per call (incl. end/flush)", "call", None),
    Case("start-end", "start + end of an empty run", "run", START_END_TARGET),
    Case("search", "search by metric, per query", "query", SEARCH_TARGET),
)
CASE_KEYS = (*(case.key for case in SDK_CASES), "run-overhead")


def say(message: str) -> None:
    """Progress goes to stderr with a clock, so stdout carries only the report."""
    sys.stderr.write(time.strftime("[%H:%M:%S] ") + message + "\n")
    sys.stderr.flush()


def failure_note(exc: BaseException) -> str:
    """Log the whole traceback (for whoever debugs the side) and return the one line for the report."""
    say("  FAILED: " + "".join(traceback.format_exception(exc)).strip().replace("\n", "\n    "))
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Sample:
    seconds: float
    contention: float  # CPUs other processes kept busy on average meanwhile

    @property
    def busy(self) -> bool:
        return self.seconds >= MIN_JUDGED_WINDOW and self.contention > CONTENTION_WARNING


def _cpu_of_this_process() -> float:
    """CPU of every thread here (mlcustody's writer thread too) and of the children reaped (git)."""
    return sum(sum(resource.getrusage(who)[:2]) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def measure(work: Callable[[], _T]) -> tuple[Sample, _T]:
    """Wall time and result of ``work()``; other processes' CPU use is taken too, as the harness does."""
    machine_before, ours_before = cpu_busy_seconds(), _cpu_of_this_process()
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    foreign = (cpu_busy_seconds() - machine_before) - (_cpu_of_this_process() - ours_before)
    return Sample(wall, max(0.0, foreign) / wall if wall > 0 else 0.0), result


@dataclass
class Outcome:
    """One side of one in-process case: every repetition's total time for ``count`` units."""

    state: str = "ok"  # ok | failed | unavailable
    count: int = 0
    samples: list[Sample] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # populate time, other query shapes
    note: str = ""

    @property
    def best(self) -> Sample | None:
        return min(self.samples, key=lambda sample: sample.seconds) if self.samples else None

    @property
    def per_unit(self) -> float | None:
        best = self.best
        return best.seconds / self.count if self.state == "ok" and best and self.count > 0 else None

    @property
    def busy(self) -> bool:
        """Whether the reported (best) repetition ran while other processes competed for the CPUs."""
        best = self.best
        return best is not None and best.busy

    def fail(self, exc: BaseException) -> None:
        self.state, self.note = "failed", failure_note(exc)


# ---------------------------------------------------------------------------------- the two sides


class RunHandle(Protocol):
    """What the cases do with a run; mlcustody's ``Run`` has exactly this shape."""

    @property
    def id(self) -> str: ...

    def log_metric(self, key: str, value: float, step: int = 0) -> None: ...

    def log_param(self, key: str, value: Any) -> None: ...

    def end(self) -> object: ...


class Tracker(Protocol):
    """One library behind the same small surface, so every case is written once for both sides."""

    name: str

    def start_run(self, name: str) -> RunHandle: ...

    def stored(self, run_id: str) -> tuple[int, int]:
        """(points of METRIC_KEY, params) the backend holds for a run: proof the timed writes landed."""
        ...

    def populate(self, aucs: Sequence[float]) -> None: ...

    def queries(self) -> dict[str, Callable[[], list[float]]]:
        """The search by metric, by output shape; the first is the one compared. Returns the aucs found."""
        ...

    def close(self) -> None: ...


class CustodyTracker:
    """An mlcustody workspace created in ``root``, used through its Python SDK only."""

    name = SUBJECT

    def __init__(self, root: Path) -> None:
        from mlcustody import Workspace

        root.mkdir(parents=True)
        self.ws = Workspace.init(root)

    def start_run(self, name: str) -> RunHandle:
        return self.ws.start_run(name)

    def stored(self, run_id: str) -> tuple[int, int]:
        details = self.ws.run(run_id)
        return sum(point.key == METRIC_KEY for point in details.metric_history), len(details.run.params)

    def populate(self, aucs: Sequence[float]) -> None:
        """The ordinary SDK, as a user's sweep would: mlcustody has no bulk-import API to compare."""
        for index, auc in enumerate(aucs):
            with self.ws.start_run("sweep", params={"index": index}) as run:
                run.log_metric("auc", auc)

    def queries(self) -> dict[str, Callable[[], list[float]]]:
        return {"list": self._search}

    def _search(self) -> list[float]:
        found = self.ws.runs(where=SEARCH_WHERE, sort="-metrics.auc", limit=SEARCH_LIMIT)
        return [run.metrics["auc"].value for run in found]

    def close(self) -> None:
        self.ws.close()


@dataclass(frozen=True)
class _MlflowRun:
    """MLflow's fluent calls on the active run, under the names the cases use."""

    id: str
    mlflow: ModuleType

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.mlflow.log_metric(key, value, step=step)

    def log_param(self, key: str, value: Any) -> None:
        self.mlflow.log_param(key, value)

    def end(self) -> None:
        self.mlflow.end_run()


class MlflowTracker:
    """MLflow on a SQLite database in ``root`` (schema created here, untimed), artifacts in ``root`` too.

    The fluent API keeps the tracking URI in global state; only one MlflowTracker is open at a time.
    """

    name = REFERENCE

    def __init__(self, root: Path) -> None:
        import mlflow
        from mlflow import MlflowClient

        for logger in ("mlflow", "alembic"):  # schema creation and experiment notices: noise on stderr
            logging.getLogger(logger).setLevel(logging.WARNING)
        root.mkdir(parents=True)
        self.mlflow = mlflow
        uri = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(uri)
        self.experiment = self.client.create_experiment("bench", artifact_location=(root / "artifacts").as_uri())
        self._search = functools.partial(
            mlflow.search_runs,
            experiment_ids=[self.experiment],
            filter_string=SEARCH_WHERE,
            order_by=["metrics.auc DESC"],
            max_results=SEARCH_LIMIT,
        )

    def start_run(self, name: str) -> RunHandle:
        active = self.mlflow.start_run(experiment_id=self.experiment, run_name=name)
        return _MlflowRun(active.info.run_id, self.mlflow)

    def stored(self, run_id: str) -> tuple[int, int]:
        points = self.client.get_metric_history(run_id, METRIC_KEY)
        return len(points), len(self.client.get_run(run_id).data.params)

    def populate(self, aucs: Sequence[float]) -> None:
        """MlflowClient's run-level API, three calls per run: far faster than the fluent API."""
        from mlflow.entities import Metric, Param

        for index, auc in enumerate(aucs):
            run_id = self.client.create_run(self.experiment, run_name="sweep").info.run_id
            metric = Metric("auc", auc, int(time.time() * 1000), 0)
            self.client.log_batch(run_id, metrics=[metric], params=[Param("index", str(index))])
            self.client.set_terminated(run_id)

    def queries(self) -> dict[str, Callable[[], list[float]]]:
        # output_format="list" returns Run objects; the default builds a pandas DataFrame from them.
        return {"list": self._search_list, "pandas": self._search_frame}

    def _search_list(self) -> list[float]:
        return [run.data.metrics["auc"] for run in self._search(output_format="list")]

    def _search_frame(self) -> list[float]:
        return [float(value) for value in self._search(output_format="pandas")["metrics.auc"]]

    def close(self) -> None:
        if self.mlflow.active_run() is not None:
            self.mlflow.end_run()


def mlflow_installed() -> bool:
    return importlib.util.find_spec("mlflow") is not None


# -------------------------------------------------------------------------------- in-process cases


def time_log_metric(tracker: Tracker, count: int) -> tuple[Sample, list[str]]:
    """``count`` metric points at distinct steps in one run; the run's end (the flush) is timed too."""
    run = tracker.start_run("log-metric")

    def work() -> None:
        for step in range(count):
            run.log_metric(METRIC_KEY, 1.0 / (step + 1), step=step)
        run.end()

    sample, _ = measure(work)
    points, _ = tracker.stored(run.id)
    return sample, [] if points == count else [f"stored {points:,} metric points of {count:,}"]


def time_log_param(tracker: Tracker, count: int) -> tuple[Sample, list[str]]:
    """``count`` params with distinct keys in one run, end included."""
    run = tracker.start_run("log-param")

    def work() -> None:
        for index in range(count):
            run.log_param(f"param_{index}", index)
        run.end()

    sample, _ = measure(work)
    _, params = tracker.stored(run.id)
    return sample, [] if params == count else [f"stored {params:,} params of {count:,}"]


def time_start_end(tracker: Tracker, count: int) -> tuple[Sample, list[str]]:
    """``count`` empty runs, each started and ended: the fixed cost of tracking anything at all."""

    def work() -> None:
        for _ in range(count):
            tracker.start_run("empty").end()

    return measure(work)[0], []


TIMED_LOOPS: dict[str, Callable[[Tracker, int], tuple[Sample, list[str]]]] = {
    "log_metric": time_log_metric,
    "log_param": time_log_param,
    "start-end": time_start_end,
}


@dataclass(frozen=True)
class Options:
    workdir: Path
    repeat: int | None
    timeout: float
    keep: bool
    sizes: Sizes
    quick: bool


def open_trackers(case_dir: Path, outcomes: dict[str, Outcome]) -> dict[str, Tracker]:
    """A fresh tracker per side in its own directory; a side that cannot open is recorded, not raised."""
    makers: dict[str, Callable[[Path], Tracker]] = {SUBJECT: CustodyTracker}
    if mlflow_installed():
        makers[REFERENCE] = MlflowTracker
    else:
        outcomes[REFERENCE] = Outcome("unavailable", note="mlflow is not installed: pip install 'mlflow>=2.14'")
    trackers: dict[str, Tracker] = {}
    for name, make in makers.items():
        try:
            trackers[name] = make(case_dir / name.lower())
        except Exception as exc:
            outcomes.setdefault(name, Outcome()).fail(exc)
    return trackers


def run_loop_case(case: Case, opts: Options) -> dict[str, Outcome]:
    """log_metric, log_param, start-end: repetitions alternate between the sides, so that a burst of
    load from other processes hits both alike; each side's best repetition is its figure."""
    outcomes: dict[str, Outcome] = {}
    case_dir = opts.workdir / case.key
    trackers = open_trackers(case_dir, outcomes)
    counts = dict(zip((SUBJECT, REFERENCE), opts.sizes.calls(case.key), strict=True))
    try:
        for attempt in range(opts.repeat or 1):
            for name, tracker in list(trackers.items()):
                outcome = outcomes.setdefault(name, Outcome(count=counts[name]))
                try:
                    sample, problems = TIMED_LOOPS[case.key](tracker, counts[name])
                except Exception as exc:
                    outcome.fail(exc)
                    trackers.pop(name).close()
                    continue
                outcome.samples.append(sample)
                outcome.extra.setdefault("problems", []).extend(problems)
                per = fmt_duration(sample.seconds / counts[name])
                say(f"  {name:<9} #{attempt + 1}  {counts[name]:>6,} × {per:>9} = {fmt_seconds(sample.seconds)}")
    finally:
        close_all(trackers, case_dir, opts.keep)
    return outcomes


def close_all(trackers: Mapping[str, Tracker], case_dir: Path, keep: bool) -> None:
    for tracker in trackers.values():
        tracker.close()
    if not keep:
        drop_tree(case_dir)


def search_aucs(count: int) -> list[float]:
    """The auc of every run, seeded: both sides hold the same values, so their answers must agree."""
    rng = random.Random(SEED)
    return [rng.random() for _ in range(count)]


def expected_answer(aucs: Sequence[float]) -> list[float]:
    return sorted((auc for auc in aucs if auc > SEARCH_THRESHOLD), reverse=True)[:SEARCH_LIMIT]


def run_search_case(case: Case, opts: Options) -> dict[str, Outcome]:
    """Populate each side with the same runs (timed, reported apart), then time the query repeatedly."""
    outcomes: dict[str, Outcome] = {}
    case_dir = opts.workdir / case.key
    trackers = open_trackers(case_dir, outcomes)
    aucs = search_aucs(opts.sizes.search_runs)
    expected = expected_answer(aucs)
    try:
        for name, tracker in list(trackers.items()):
            outcome = outcomes.setdefault(name, Outcome(count=1))
            say(f"  {name:<9} populating {len(aucs):,} runs")
            try:
                populated, _ = measure(functools.partial(tracker.populate, aucs))
            except Exception as exc:
                outcome.fail(exc)
                trackers.pop(name).close()
                continue
            outcome.extra["populate"] = {"runs": len(aucs), "seconds": populated.seconds, "busy": populated.busy}
            per_run = fmt_duration(populated.seconds / len(aucs))
            say(f"  {name:<9} populated in {fmt_seconds(populated.seconds)} ({per_run} per run)")
        time_queries(trackers, outcomes, expected, max(opts.repeat or 1, SEARCH_QUERIES))
    finally:
        close_all(trackers, case_dir, opts.keep)
    return outcomes


def time_queries(
    trackers: dict[str, Tracker], outcomes: dict[str, Outcome], expected: list[float], rounds: int
) -> None:
    """Each side's query shapes, alternating; the first shape is the compared figure, others go to extra."""
    for _ in range(rounds):
        for name, tracker in list(trackers.items()):
            outcome = outcomes[name]
            for index, (shape, query) in enumerate(tracker.queries().items()):
                try:
                    sample, answer = measure(query)
                except Exception as exc:
                    outcome.fail(exc)
                    trackers.pop(name).close()
                    break
                if index == 0:
                    outcome.samples.append(sample)
                else:
                    outcome.extra.setdefault(f"search_{shape}_seconds", []).append(sample.seconds)
                if not _same_answer(answer, expected):
                    problem = f"{shape} search returned {len(answer):,} runs, expected {len(expected):,} in auc order"
                    problems = outcome.extra.setdefault("problems", [])
                    if problem not in problems:
                        problems.append(problem)
    for name in trackers:
        best = outcomes[name].per_unit
        say(f"  {name:<9} search, best of {rounds} queries: {fmt_duration(best)}")


def _same_answer(answer: Sequence[float], expected: Sequence[float]) -> bool:
    return len(answer) == len(expected) and all(math.isclose(a, b) for a, b in zip(answer, expected, strict=True))


# -------------------------------------------------------------------------- run-overhead (processes)

TRAIN_SCRIPT = '''\
"""Fit a classifier on the CSV shards in data/ and write its coefficients: a small training job."""

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler


def load(folder):
    rows = []
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows.extend(reader)
    table = np.array(rows, dtype=float)
    return table[:, :-1], table[:, -1].astype(int)


def main():
    features, labels = load("data")
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.2, random_state=0)
    model = make_pipeline(StandardScaler(), PolynomialFeatures(2), LogisticRegression(max_iter=2000))
    model.fit(train_x, train_y)
    accuracy = model.score(test_x, test_y)
    Path("model.json").write_text(json.dumps({"coef": model[-1].coef_.tolist(), "accuracy": accuracy}))
    print(f"rows={len(labels)} accuracy={accuracy:.4f}")


if __name__ == "__main__":
    main()
'''

# What an MLflow user adds to the same job: one autolog call (defaults: params, metrics and the model).
MLFLOW_SCRIPT = '''\
"""train.py with MLflow autologging, as an MLflow user would track it."""

import os
import runpy

import mlflow

mlflow.set_tracking_uri(os.environ["BENCH_MLFLOW_TRACKING_URI"])
mlflow.set_experiment("train")
mlflow.sklearn.autolog()
runpy.run_path("train.py", run_name="__main__")
'''

# Untimed, like `custody init`: create MLflow's schema and the experiment before the timed runs.
MLFLOW_SETUP = """\
import os
import mlflow
mlflow.set_tracking_uri(os.environ["BENCH_MLFLOW_TRACKING_URI"])
mlflow.set_experiment("train")
"""
CSV_ROWS = 36  # per file: with 8 features and a label, about 2.2 kB
CSV_FEATURES = 8


def write_training_project(root: Path, files: int) -> None:
    """train.py, its MLflow variant and ``files`` CSV shards of a seeded, learnable problem."""
    rng = random.Random(SEED)
    weights = [rng.uniform(-1, 1) for _ in range(CSV_FEATURES)]
    data = root / "data"
    data.mkdir(parents=True)
    header = ",".join(f"f{column}" for column in range(CSV_FEATURES)) + ",label"
    for index in range(files):
        lines = [header]
        for _ in range(CSV_ROWS):
            x = [rng.gauss(0, 1) for _ in range(CSV_FEATURES)]
            score = sum(w * v for w, v in zip(weights, x, strict=True)) + 0.5 * x[0] * x[1] + rng.gauss(0, 0.5)
            lines.append(",".join(f"{v:.4f}" for v in x) + f",{int(score > 0)}")
        (data / f"part-{index:04d}.csv").write_text("\n".join(lines) + "\n")
    (root / "train.py").write_text(TRAIN_SCRIPT)
    (root / "train_mlflow.py").write_text(MLFLOW_SCRIPT)


@dataclass
class Variant:
    """One way of running the training job: its whole-process runs, or why there are none."""

    title: str
    runs: list[RunResult] = field(default_factory=list)
    state: str = "ok"  # ok | failed | unavailable
    note: str = ""

    @property
    def summary(self) -> Summary | None:
        return Summary(tuple(self.runs)) if self.state == "ok" and self.runs else None

    @property
    def seconds(self) -> float | None:
        return self.summary.best_seconds if self.summary else None

    def give_up(self, state: str, note: str) -> None:
        self.state, self.note = state, note

    def add(self, result: RunResult) -> bool:
        """Record one run; a failed one turns the variant failed. Returns whether it succeeded."""
        self.runs.append(result)
        state = "ok" if result.ok else "FAILED"
        say(f"  {self.title:<40} {fmt_seconds(result.seconds):>8}  others used {result.contention:.1f} CPUs  {state}")
        if not result.ok:
            self.give_up("failed", result.failure_text())
        return result.ok


@dataclass(frozen=True)
class ProcessSetup:
    """Where and how the training processes of one variant run."""

    source: Path
    python: str
    timeout: float

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """This process's environment (already free of CUSTODY_*/MLFLOW_* settings) with its own HOME."""
        home.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "HOME": str(home), **extra}

    def fresh_copy(self, directory: Path) -> Path:
        drop_tree(directory)
        copy_tree(self.source, directory / "job")
        return directory / "job"

    def timed(self, variant: Variant, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> bool:
        flush_dirty_pages()  # writeback of the setup copy must not compete with the timed command
        return variant.add(run_measured(argv, cwd, env, self.timeout))

    def untimed(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> RunResult:
        return run_measured(argv, cwd, env, self.timeout)


VARIANT_TITLES = {
    "plain": "python train.py",
    "custody-cold": "custody run, cold ({files:,} new files)",
    "custody-warm": "custody run, warm (inputs already stored)",
    "mlflow-autolog": "python train_mlflow.py (MLflow autolog)",
}


def run_plain(setup: ProcessSetup, base: Path, repeat: int, variant: Variant) -> list[str]:
    job = setup.fresh_copy(base / "plain")
    env = setup.env(base / "plain" / "home")
    for _ in range(repeat):
        if not setup.timed(variant, [setup.python, "train.py"], job, env):
            break
    return []


def run_custody(setup: ProcessSetup, base: Path, repeat: int, files: int, cold: Variant, warm: Variant) -> list[str]:
    """Cold: a fresh workspace per repetition (init and copy untimed), so every input is new to the
    store. Warm: the same command again on the last workspace, whose store already holds the inputs."""
    custody = find_executable("custody")
    if custody is None:
        for variant in (cold, warm):
            variant.give_up("unavailable", "custody not found: pip install -e .")
        return []
    argv = [str(custody), "run", "--name", "train", "--", setup.python, "train.py"]
    workspace: tuple[Path, dict[str, str]] | None = None
    for attempt in range(repeat):
        job = setup.fresh_copy(base / f"custody-{attempt}")
        workspace = (job, setup.env(job.parent / "home"))
        init = setup.untimed([str(custody), "init"], *workspace)
        if not init.ok:
            cold.give_up("failed", f"custody init: {init.failure_text()}")
            break
        if not setup.timed(cold, argv, *workspace):
            break
    if cold.state != "ok" or workspace is None:
        warm.give_up("failed", "not run: the cold run failed")
        return []
    for _ in range(repeat):
        if not setup.timed(warm, argv, *workspace):
            break
    return checked(check_custody_runs, workspace[0], files)


def checked(check: Callable[..., list[str]], *args: Any) -> list[str]:
    """Run a post-hoc check; one that cannot run is a note, so it never costs the measurements."""
    try:
        return check(*args)
    except Exception as exc:  # e.g. the store is at a newer schema than this process imported
        return [f"{check.__name__} could not run: {type(exc).__name__}: {exc}"]


def check_custody_runs(job: Path, files: int) -> list[str]:
    """Every run of the last workspace must list each CSV as a captured input and model.json as output."""
    from mlcustody import Workspace

    with Workspace.open(job) as ws:
        found = ws.runs(limit=None)
    problems = []
    for run in found:
        inputs = [item for item in run.files("input") if item.path.startswith("data/") and item.digest]
        outputs = [item.path for item in run.files("output")]
        if run.status != "finished" or len(inputs) != files or "model.json" not in outputs:
            stored = f"{len(inputs):,} of {files:,} inputs stored"
            problems.append(f"custody run {run.id[:12]}: {run.status}, {stored}, outputs {outputs}")
    return problems


def run_mlflow(setup: ProcessSetup, base: Path, repeat: int, variant: Variant) -> list[str]:
    """``python train_mlflow.py``: the same job with MLflow autologging to a SQLite database made beforehand."""
    if not mlflow_installed():
        variant.give_up("unavailable", "mlflow is not installed")
        return []
    job = setup.fresh_copy(base / "mlflow")
    uri = f"sqlite:///{job / 'mlflow.db'}"
    env = setup.env(base / "mlflow" / "home", BENCH_MLFLOW_TRACKING_URI=uri)
    prepared = setup.untimed([setup.python, "-c", MLFLOW_SETUP], job, env)
    if not prepared.ok:
        variant.give_up("failed", f"MLflow setup: {prepared.failure_text()}")
        return []
    for _ in range(repeat):
        if not setup.timed(variant, [setup.python, "train_mlflow.py"], job, env):
            return []
    return checked(check_mlflow_runs, uri, repeat)


def check_mlflow_runs(uri: str, expected: int) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("train")
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    if len(found) == expected and all(run.data.params for run in found):
        return []
    return [f"MLflow autolog recorded {len(found)} runs with params, expected {expected}"]


@dataclass
class OverheadResult:
    variants: dict[str, Variant]
    files: int
    repeat: int
    problems: list[str]


def run_overhead_case(opts: Options) -> OverheadResult:
    repeat = opts.repeat or (1 if opts.quick else RUN_OVERHEAD_REPEAT)
    files = opts.sizes.csv_files
    base = opts.workdir / "run-overhead"
    drop_tree(base)
    say(f"  writing train.py and {files:,} CSV files")
    write_training_project(base / "source", files)
    setup = ProcessSetup(base / "source", sys.executable, opts.timeout)
    variants = {key: Variant(title.format(files=files)) for key, title in VARIANT_TITLES.items()}
    problems: list[str] = []
    try:
        problems += run_plain(setup, base, repeat, variants["plain"])
        problems += run_custody(setup, base, repeat, files, variants["custody-cold"], variants["custody-warm"])
        problems += run_mlflow(setup, base, repeat, variants["mlflow-autolog"])
    except Exception as exc:  # the variants measured so far are still reported
        note = failure_note(exc)
        for variant in variants.values():
            if variant.state == "ok" and len(variant.runs) < repeat:
                variant.give_up("failed", note)
    finally:
        if not opts.keep:
            drop_tree(base)
    return OverheadResult(variants, files, repeat, problems)


def overhead(variant: Variant, plain: Variant) -> float | None:
    """(variant − plain) ÷ plain, of the best times."""
    relative = ratio(variant.seconds, plain.seconds)
    return None if relative is None else relative - 1.0


# ------------------------------------------------------------------------------------------ report


def fmt_duration(seconds: float | None) -> str:
    """A per-unit time in the unit that reads best (µs, ms, s), with three significant digits."""
    if seconds is None:
        return "—"
    for limit, unit in ((1e-3, "µs"), (1.0, "ms")):
        if seconds < limit:
            value = seconds / limit * 1000
            decimals = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{decimals}f} {unit}"
    return fmt_seconds(seconds)


def fmt_small_ratio(value: float | None) -> str:
    """Like fmt_ratio, with two significant digits below 0.1× (mlcustody ÷ MLflow can be 0.005×)."""
    return fmt_ratio(value) if value is None or value >= 0.1 else f"{value:.2g}×"


def verdict(value: float | None, limit: float | None) -> str:
    if limit is None:
        return "—"
    return "—" if value is None else ("yes" if value <= limit else "NO")


def _cell(outcome: Outcome | None, value: float | None) -> str:
    if outcome is None:
        return "—"
    if outcome.state != "ok":
        return {"unavailable": "not available"}.get(outcome.state, "FAILED")
    return fmt_duration(value) + ("*" if outcome.busy else "")


def _counts(case: Case, opts: Options) -> str:
    if case.key == "search":
        matches = sum(auc > SEARCH_THRESHOLD for auc in search_aucs(opts.sizes.search_runs))
        returned = f", {SEARCH_LIMIT:,} returned" if matches > SEARCH_LIMIT else ""
        return f"{opts.sizes.search_runs:,} runs, {matches:,} match{returned}"
    ours, theirs = opts.sizes.calls(case.key)
    return f"{ours:,} / {theirs:,}"


def sdk_rows(results: Mapping[str, Mapping[str, Outcome]], opts: Options) -> list[list[str]]:
    rows = []
    for case in SDK_CASES:
        if case.key not in results:
            continue
        ours, theirs = results[case.key].get(SUBJECT), results[case.key].get(REFERENCE)
        mine, other = (ours.per_unit if ours else None), (theirs.per_unit if theirs else None)
        target = f"≤ {fmt_duration(case.target)}" if case.target else "—"
        cells = [_cell(ours, mine), _cell(theirs, other), fmt_small_ratio(ratio(mine, other))]
        rows.append([case.title, _counts(case, opts), *cells, target, verdict(mine, case.target)])
        if case.key == "search":
            rows.append(populate_row(results[case.key], opts))
    return rows


def populate_row(outcomes: Mapping[str, Outcome], opts: Options) -> list[str]:
    """Filling the search case, per run: mlcustody's SDK against MLflow's batch client (see README)."""
    per_run: dict[str, float | None] = {}
    cells = []
    for name in (SUBJECT, REFERENCE):
        populated = outcomes[name].extra.get("populate") if name in outcomes else None
        per_run[name] = populated["seconds"] / populated["runs"] if populated else None
        cells.append(fmt_duration(per_run[name]) + ("*" if populated and populated["busy"] else ""))
    mine, other = per_run[SUBJECT], per_run[REFERENCE]
    runs = f"{opts.sizes.search_runs:,} / {opts.sizes.search_runs:,}"
    title = "populate for search, per run (SDK vs MLflow batch client)"
    return [title, runs, *cells, fmt_small_ratio(ratio(mine, other)), "—", "—"]


def overhead_rows(result: OverheadResult) -> list[list[str]]:
    plain, autolog = result.variants["plain"], result.variants["mlflow-autolog"]
    rows = []
    for key, variant in result.variants.items():
        summary = variant.summary
        busy = summary is not None and summary.max_contention > CONTENTION_WARNING
        time_cell = fmt_seconds(variant.seconds) + ("*" if busy else "")
        if variant.state != "ok":
            time_cell = {"unavailable": "not available"}.get(variant.state, "FAILED")
        extra = overhead(variant, plain) if key != "plain" else None
        is_custody = key.startswith("custody")
        rows.append(
            [
                variant.title,
                time_cell,
                "—" if extra is None else f"{extra * 100:+.0f}%",
                fmt_ratio(ratio(variant.seconds, autolog.seconds)) if is_custody else "—",
                fmt_bytes(summary.peak_rss_bytes if summary else None),
                f"≤ +{RUN_OVERHEAD_TARGET * 100:.0f}%" if is_custody else "—",
                verdict(extra, RUN_OVERHEAD_TARGET) if is_custody else "—",
            ]
        )
    return rows


def notes(results: Mapping[str, Mapping[str, Outcome]], overhead_result: OverheadResult | None) -> list[str]:
    """Why a cell is empty, what a check found wrong, other query shapes, and contention warnings."""
    found = []
    busy = False
    for key, outcomes in results.items():
        for name, outcome in outcomes.items():
            found += [f"{key}, {name}: {outcome.note}"] if outcome.note else []
            found += [f"{key}, {name}: {problem}" for problem in outcome.extra.get("problems", [])]
            busy = busy or outcome.busy or bool(outcome.extra.get("populate", {}).get("busy"))
            pandas_times = outcome.extra.get("search_pandas_seconds")
            if pandas_times:
                best = fmt_duration(min(pandas_times))
                found.append(f"{key}, {name}: with the default output_format='pandas' the same query took {best}")
    if overhead_result is not None:
        variants = overhead_result.variants.values()
        found += [f"run-overhead, {variant.title}: {variant.note}" for variant in variants if variant.note]
        found += [f"run-overhead: {problem}" for problem in overhead_result.problems]
        busy = busy or any(v.summary.max_contention > CONTENTION_WARNING for v in variants if v.summary)
    if busy:
        found.append(
            f"* other processes kept more than {CONTENTION_WARNING} CPUs busy on average during that measurement "
            f"({os.cpu_count()} CPUs): likely inflated; rerun on a quiet machine"
        )
    return found


def render_report(
    results: Mapping[str, Mapping[str, Outcome]], overhead_result: OverheadResult | None, opts: Options
) -> str:
    sections = []
    if results:
        repeat = opts.repeat or 1
        sections += [
            f"In-process SDK calls, best of {repeat} (search: best of {max(repeat, SEARCH_QUERIES)} queries); "
            f"ratio = {SUBJECT} ÷ {REFERENCE}",
            render_table(
                ["case", f"count ({SUBJECT} / {REFERENCE})", SUBJECT, REFERENCE, "÷ MLflow", "target", "met"],
                sdk_rows(results, opts),
            ),
        ]
    if overhead_result is not None:
        sections += [
            f"Whole processes: train.py on {overhead_result.files:,} CSV files, best of {overhead_result.repeat}; "
            "overhead = (time − plain) ÷ plain",
            render_table(
                ["variant", "wall time", "overhead", "÷ MLflow autolog", "peak RSS", "target", "met"],
                overhead_rows(overhead_result),
            ),
        ]
    found = notes(results, overhead_result)
    if found:
        sections += ["Notes", "\n".join(f"- {note}" for note in found)]
    return "\n\n".join(sections)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "state": outcome.state,
        "note": outcome.note or None,
        "count": outcome.count,
        "per_unit_seconds": outcome.per_unit,
        "seconds": [sample.seconds for sample in outcome.samples],
        "contention": [sample.contention for sample in outcome.samples],
        **outcome.extra,
    }


def _variant_json(variant: Variant) -> dict[str, Any]:
    return {
        "title": variant.title,
        "state": variant.state,
        "note": variant.note or None,
        "best_seconds": variant.seconds,
        "runs": [
            {
                "seconds": run.seconds,
                "peak_rss_bytes": run.peak_rss_bytes,
                "cpu_seconds": run.cpu_seconds,
                "contention": run.contention,
            }
            for run in variant.runs
        ],
    }


def report_json(
    results: Mapping[str, Mapping[str, Outcome]], overhead_result: OverheadResult | None, meta: Mapping[str, Any]
) -> dict[str, Any]:
    cases: dict[str, Any] = {
        case.key: {
            "title": case.title,
            "unit": case.unit,
            "target_seconds": case.target,
            "sides": {name: _outcome_json(outcome) for name, outcome in results[case.key].items()},
        }
        for case in SDK_CASES
        if case.key in results
    }
    if overhead_result is not None:
        plain = overhead_result.variants["plain"]
        cases["run-overhead"] = {
            "files": overhead_result.files,
            "repeat": overhead_result.repeat,
            "target_overhead": RUN_OVERHEAD_TARGET,
            "problems": overhead_result.problems,
            "variants": {
                key: {**_variant_json(variant), "overhead": overhead(variant, plain)}
                for key, variant in overhead_result.variants.items()
            },
        }
    return {**meta, "cases": cases}


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer MLflow calls, 1,000 runs to search: a smoke run")
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"repetitions per side, best reported (default 1; run-overhead {RUN_OVERHEAD_REPEAT}, 1 with --quick)",
    )
    add_common_options(parser, workdir_help="where the sides' directories go (default: a temporary dir)")
    parser.add_argument("--only", metavar="KEYS", help=f"comma-separated subset of: {','.join(CASE_KEYS)}")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    wanted = [key.strip() for key in (args.only or ",".join(CASE_KEYS)).split(",") if key.strip()]
    if unknown := set(wanted) - set(CASE_KEYS):
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    args.only = [key for key in CASE_KEYS if key in wanted]
    return args


def isolate_settings() -> None:
    """Drop the caller's CUSTODY_* and MLFLOW_* settings (a Postgres URL, a tracking server) from this
    process and the commands it starts, and turn MLflow's telemetry off: no network, no extra thread."""
    for key in [key for key in os.environ if key.startswith(("CUSTODY_", "MLFLOW_"))]:
        del os.environ[key]
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


def versions() -> dict[str, str | None]:
    mlflow = importlib.util.find_spec("mlflow")
    found = None
    if mlflow is not None:
        from importlib.metadata import version

        found = version("mlflow")
    return {"mlflow": found, "mlcustody_checkout": source_revision(Path(__file__).resolve().parent)}


def run_cases(opts: Options, keys: Sequence[str]) -> tuple[dict[str, dict[str, Outcome]], OverheadResult | None]:
    results: dict[str, dict[str, Outcome]] = {}
    for case in SDK_CASES:
        if case.key in keys:
            say(f"{case.key}")
            results[case.key] = (run_search_case if case.key == "search" else run_loop_case)(case, opts)
    overhead_result = None
    if "run-overhead" in keys:
        say("run-overhead")
        overhead_result = run_overhead_case(opts)
    return results, overhead_result


def failed(results: Mapping[str, Mapping[str, Outcome]], overhead_result: OverheadResult | None) -> bool:
    sdk = any(outcome.state == "failed" for outcomes in results.values() for outcome in outcomes.values())
    processes = overhead_result is not None and any(v.state == "failed" for v in overhead_result.variants.values())
    return sdk or processes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    isolate_settings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        opts = Options(workdir, args.repeat, args.timeout, args.keep, QUICK if args.quick else FULL, args.quick)
        results, overhead_result = run_cases(opts, args.only)
    total = time.perf_counter() - started
    print(render_report(results, overhead_result, opts))
    scale = "quick (targets mean little at this size)" if args.quick else "full size"
    print(f"\n{scale}; {os.cpu_count()} CPUs; whole benchmark took {fmt_seconds(total)}")
    if args.json:
        meta = {
            "benchmark": "runs",
            "quick": args.quick,
            "repeat": args.repeat,
            "total_seconds": total,
            "machine": machine_info(),
            "versions": versions(),
        }
        args.json.write_text(json.dumps(report_json(results, overhead_result, meta), indent=2) + "\n")
    return 1 if failed(results, overhead_result) else 0


if __name__ == "__main__":
    sys.exit(main())
