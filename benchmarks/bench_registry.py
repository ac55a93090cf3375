"""Registry benchmark: register and sign a model version, verify a model over a 1M-record lineage, alias moves.

    python benchmarks/bench_registry.py [--quick] [--repeat N] [--only KEYS] [--profile] [--workdir DIR] [--json FILE]

The registry is what a release process calls on every model it ships, so its cost must stay small
next to what it cannot avoid: reading the model's bytes. ``register`` therefore times
``Workspace.register_model`` (attestation + signature) on a RandomForest saved with skops by a run that
read a dataset with a record manifest, and subtracts the time to hash the same file (sha256 + BLAKE3,
measured separately); MLflow's ``mlflow.register_model`` of the same estimator, logged in a run of a
SQLite-backed tracking store, is the reference. ``verify-1M`` times ``Workspace.verify_model`` of a model
whose training run read a 1,000,000-record Parquet dataset, in this process and as a whole
``custody model verify NAME@1 --json`` process. ``alias`` times 100 alias moves against MLflow's
``set_registered_model_alias``. mlcustody is a library here, so in-process figures are
``time.perf_counter`` around the call; whole processes are timed from outside by _harness.run_measured.
A missed target is reported, never an error exit (exit 1 only when a case could not run).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import inspect
import json
import logging
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
    targets_json,
)

if TYPE_CHECKING:
    from mlcustody import Workspace

T = TypeVar("T")

CASES = ("register", "verify-1M", "alias")
SEED = 20_241_121
MODEL_NAME = "credit"
ALIAS = "production"
PASSPHRASE = "benchmark passphrase, not a secret"  # the keys live and die in the benchmark's workspaces
FEATURES = 8
PROFILE_TOP = 20
CONTENTION_WARNING = 0.25  # other processes kept this many CPUs busy on average: flag the figure

# Targets from the issue.
REGISTER_BEYOND_HASH_S = 0.200  # register + sign, beyond hashing the model bytes
VERIFY_S = 2.0  # Workspace.verify_model of a model with a 1M-record dataset upstream


@dataclass(frozen=True)
class Sizes:
    train_rows: int  # records of the dataset the register case's model is trained on
    trees: int  # RandomForest estimators: what makes the model file a few MB
    verify_rows: int  # records of the dataset upstream of the verify-1M model
    alias_moves: int


FULL = Sizes(train_rows=100_000, trees=100, verify_rows=1_000_000, alias_moves=100)
QUICK = Sizes(train_rows=10_000, trees=20, verify_rows=100_000, alias_moves=100)

_STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, so a long run shows life and stdout stays the report."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return (
        f"{seconds * 1000:.2f} ms"
        if seconds < 0.01
        else f"{seconds * 1000:.1f} ms"
        if seconds < 1
        else f"{seconds:.2f} s"
    )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Timings:
    """Repeated calls of one operation: every duration in call order, and how busy the machine was.

    The first call is kept apart because it pays for lazy imports and cold caches, which a
    ``custody`` process pays on every command but a long-lived Python process pays once."""

    seconds: list[float] = field(default_factory=list)
    contention: float = 0.0  # CPUs kept busy by other processes over all the calls, on average

    @property
    def first(self) -> float | None:
        return self.seconds[0] if self.seconds else None

    @property
    def warm(self) -> list[float]:
        return self.seconds[1:] if len(self.seconds) > 1 else self.seconds

    @property
    def median(self) -> float | None:
        return _median(self.warm)

    @property
    def busy(self) -> bool:
        return self.contention > CONTENTION_WARNING


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def repeat_calls(count: int, call: Callable[[int], object]) -> Timings:
    """Time ``call(i)`` for i in 0..count-1 and the CPU that other processes used meanwhile.

    On a shared 2-core machine another process's burst can double a 50 ms figure; the contention
    is reported next to it rather than silently retried away."""
    found = Timings()
    busy, own, window = cpu_busy_seconds(), _own_cpu(), time.perf_counter()
    for index in range(count):
        started = time.perf_counter()
        call(index)
        found.seconds.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - window
    others = cpu_busy_seconds() - busy - (_own_cpu() - own)
    found.contention = max(0.0, others) / elapsed if elapsed > 0 else 0.0
    return found


# ------------------------------------------------------------------------------------------- data


def write_dataset(path: Path, rows: int) -> None:
    """A seeded credit-style table: integer ``id`` (the record key), float features and a 0/1 label."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(SEED + rows)
    features = rng.normal(0, 1, (rows, FEATURES))
    label = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(0, 0.5, rows) > 0).astype(np.int8)
    columns: dict[str, Any] = {"id": np.arange(rows, dtype=np.int64)}
    columns |= {f"x{i}": features[:, i] for i in range(FEATURES)}
    columns["label"] = label
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(columns).write_parquet(path)


def _xy(path: Path, limit: int | None = None) -> tuple[Any, Any]:
    import polars as pl

    frame = pl.read_parquet(path, n_rows=limit)
    return frame.select([f"x{i}" for i in range(FEATURES)]).to_numpy(), frame["label"].to_numpy()


@dataclass
class Trained:
    """A workspace holding a dataset with record manifest, a run that trained on it, its model."""

    ws: Workspace
    run_id: str
    model: Any  # the fitted estimator, handed to MLflow so both registries get the same model
    model_path: Path
    rows: int
    add_seconds: float
    train_seconds: float


def trained_workspace(root: Path, rows: int, make_model: Callable[[], Any], fit_rows: int | None) -> Trained:
    """A fresh workspace with a signing key, the dataset added with records, and one training run.

    The run reads the dataset through ``run.use`` so the dataset version is an input of the run, and
    hence a dependency the attestation names (with its record manifest) and verify re-hashes."""
    from mlcustody import Workspace
    from mlcustody.workspace.results import RecordSpec

    drop_tree(root)
    data = root / "data" / "train.parquet"
    write_dataset(data, rows)
    ws = Workspace.init(root)
    ws.generate_key("registry")
    flush_dirty_pages()
    started = time.perf_counter()
    ws.add([data], records=RecordSpec(key=("id",)))
    add_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with ws.start_run("train", params={"rows": rows}) as run:
        x, y = _xy(run.use("data/train.parquet"), fit_rows)
        model = make_model().fit(x, y)
        run.save_model(model, root / "model.skops")
    return Trained(ws, run.id, model, root / "model.skops", rows, add_seconds, time.perf_counter() - started)


def _forest(trees: int) -> Callable[[], Any]:
    def make() -> Any:
        from sklearn.ensemble import RandomForestClassifier

        # Depth-limited so the file is a few MB (realistic for a tabular model), not hundreds.
        return RandomForestClassifier(n_estimators=trees, max_depth=12, n_jobs=-1, random_state=SEED)

    return make


def _logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200)


def hash_model(path: Path) -> None:
    """What registering cannot avoid: reading the model bytes once for each of the two digests it signs."""
    import blake3

    with path.open("rb") as handle:
        hashlib.file_digest(handle, "sha256").hexdigest()
    with path.open("rb") as handle:
        blake3.blake3(handle.read(), max_threads=blake3.blake3.AUTO).hexdigest()


# ------------------------------------------------------------------------------------------ MLflow


class MlflowSide:
    """A SQLite-backed MLflow tracking store and model registry in a directory of its own.

    The estimator is logged once in a run (untimed, like mlcustody's ``run.save_model``); the timed
    calls are the registry's: ``register_model`` and ``set_registered_model_alias``."""

    def __init__(self, root: Path, model: Any) -> None:
        import mlflow
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self.mlflow = mlflow
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = mlflow.create_experiment("bench-registry", artifact_location=(root / "artifacts").as_uri())
        started = time.perf_counter()
        with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment) as run:
            warnings.simplefilter("ignore")
            # MLflow 3 names the logged model with ``name``; 2.x only knows ``artifact_path``.
            mlflow.sklearn.log_model(model, **_log_model_options(mlflow.sklearn.log_model))
        self.log_seconds = time.perf_counter() - started
        self.run_id = run.info.run_id
        self.version = str(mlflow.__version__)

    def register(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.mlflow.register_model(f"runs:/{self.run_id}/model", MODEL_NAME)

    def alias(self, version: int) -> None:
        self.client.set_registered_model_alias(MODEL_NAME, ALIAS, str(version))


def _log_model_options(log_model: Callable[..., Any]) -> dict[str, Any]:
    """Where and how MLflow stores the estimator, across the versions ``mlflow>=2.14`` allows.

    MLflow 3 names the logged model with ``name`` (2.x only knows ``artifact_path``); the newest
    releases save with skops, like mlcustody, and refuse a forest's ``Tree`` unless it is trusted."""
    accepted = inspect.signature(log_model).parameters
    options: dict[str, Any] = {"name": "model"} if "name" in accepted else {"artifact_path": "model"}
    if "skops_trusted_types" in accepted:
        options |= {"serialization_format": "skops", "skops_trusted_types": ["sklearn.tree._tree.Tree"]}
    return options


def mlflow_installed() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------- cases


@dataclass
class Results:
    sizes: Sizes
    repeat: int
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Timings] = field(default_factory=dict)
    verify_process: list[dict[str, Any]] = field(default_factory=list)
    verify_problems: list[str] = field(default_factory=list)
    profile: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Session:
    """What the cases share: the register case's workspace and MLflow store, which ``alias`` reuses
    (its moves need registered versions on both sides)."""

    args: argparse.Namespace
    workdir: Path
    custody: Path | None
    trained: Trained | None = None
    mlflow: MlflowSide | None = None
    mlflow_failed: bool = False  # set up once only: a second attempt would meet the first one's leftovers
    opened: list[Workspace] = field(default_factory=list)

    def registry(self, res: Results) -> Trained:
        if self.trained is None:
            sizes = self.args.sizes
            log(f"register: {sizes.train_rows:,}-record dataset and a {sizes.trees}-tree RandomForest")
            self.trained = trained_workspace(self.workdir / "registry", sizes.train_rows, _forest(sizes.trees), None)
            self.opened.append(self.trained.ws)
            res.setup["register"] = {
                "dataset_records": sizes.train_rows,
                "add_seconds": self.trained.add_seconds,
                "train_seconds": self.trained.train_seconds,
                "model_bytes": self.trained.model_path.stat().st_size,
            }
        return self.trained

    def reference(self, res: Results) -> MlflowSide | None:
        if self.mlflow is None and not self.mlflow_failed and mlflow_installed():
            log("MLflow: logging the same estimator in a SQLite-backed store")
            self.mlflow_failed = True
            self.mlflow = MlflowSide(self.workdir / "mlflow", self.registry(res).model)
            self.mlflow_failed = False
            res.setup["mlflow"] = {"log_model_seconds": self.mlflow.log_seconds, "version": self.mlflow.version}
        return self.mlflow


def case_register(session: Session, res: Results) -> None:
    """Register the same run's model ``--repeat`` times per side; hash the model file as many times."""
    trained = session.registry(res)
    count = max(2, session.args.repeat)
    flush_dirty_pages()
    res.timings["hash"] = repeat_calls(count + 1, lambda _: hash_model(trained.model_path))
    res.timings["register"] = repeat_calls(count, lambda _: trained.ws.register_model(MODEL_NAME, run=trained.run_id))
    mlflow = session.reference(res)
    if mlflow is None:
        res.notes.append("MLflow is not installed: no reference for register and alias")
        return
    res.timings["mlflow-register"] = repeat_calls(count, lambda _: mlflow.register())


def case_alias(session: Session, res: Results) -> None:
    """``alias_moves`` moves of one alias back and forth between versions 1 and 2, on each side."""
    trained, moves = session.registry(res), session.args.sizes.alias_moves
    for _ in range(2 - len(trained.ws.models())):
        trained.ws.register_model(MODEL_NAME, run=trained.run_id)

    def move(index: int) -> None:
        trained.ws.alias_model(MODEL_NAME, ALIAS, 1 + index % 2, reason=f"benchmark move {index}")

    flush_dirty_pages()  # each move commits: writeback of earlier cases' data would slow its fsync
    res.timings["alias"] = repeat_calls(moves, move)
    history = trained.ws.model(f"{MODEL_NAME}:{ALIAS}").aliases[ALIAS]
    if len(history) < moves:
        raise RuntimeError(f"alias history holds {len(history)} moves, expected at least {moves}")
    mlflow = session.reference(res)
    if mlflow is None:
        return
    registered = len(mlflow.client.search_model_versions(f"name='{MODEL_NAME}'"))
    for _ in range(2 - registered):
        mlflow.register()
    flush_dirty_pages()
    res.timings["mlflow-alias"] = repeat_calls(moves, lambda index: mlflow.alias(1 + index % 2))


def _process_env(home: Path) -> dict[str, str]:
    """The caller's environment without CUSTODY_*/MLFLOW_* settings, with a HOME of its own."""
    home.mkdir(parents=True, exist_ok=True)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTODY_", "MLFLOW_"))}
    return {**inherited, "HOME": str(home)}


def case_verify(session: Session, res: Results) -> None:
    """Verify a model whose training run read ``verify_rows`` records: in process, then as processes."""
    args = session.args
    rows = args.sizes.verify_rows
    log(f"verify-1M: writing and adding a {rows:,}-record dataset (record manifest), training, registering")
    trained = trained_workspace(session.workdir / "verify", rows, _logistic, 50_000)
    session.opened.append(trained.ws)
    ws = trained.ws
    started = time.perf_counter()
    version = ws.register_model(MODEL_NAME, run=trained.run_id)
    res.setup["verify-1M"] = {
        "dataset_records": rows,
        "dataset_bytes": (ws.root / "data" / "train.parquet").stat().st_size,
        "add_seconds": trained.add_seconds,
        "train_seconds": trained.train_seconds,
        "register_seconds": time.perf_counter() - started,
        "model_bytes": trained.model_path.stat().st_size,
    }
    flush_dirty_pages()
    found: list[list[str]] = []

    def verify(_: int) -> None:
        problems = ws.verify_model(version.ref)[1]
        found.append([f"{p.kind}: {p.detail}" for p in problems])

    res.timings["verify"] = repeat_calls(max(2, args.repeat), verify)
    res.verify_problems = sorted({problem for problems in found for problem in problems})
    if res.verify_problems:
        raise RuntimeError("verify_model found problems in an untouched workspace: " + "; ".join(res.verify_problems))
    if session.custody is None:
        res.notes.append("custody is not installed: the whole-process verify was not measured")
        return
    argv = [str(session.custody), "model", "verify", version.ref, "--json"]
    env = _process_env(session.workdir / "home")
    for _ in range(max(1, min(3, args.repeat))):
        run = run_measured(argv, ws.root, env, args.timeout)
        doc = _json_or_none(run.stdout_tail)
        ok = run.ok and doc is not None and doc.get("ok") is True
        res.verify_process.append({**vars(run), "verified": ok})
        if not ok:
            raise RuntimeError(f"`custody model verify` failed: {run.failure_text()}")


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def profile_calls(session: Session, res: Results) -> None:
    """One registration, alias move and verification under cProfile: where the time goes (a missed target,
    or a ratio against MLflow that needs explaining)."""
    runs: list[tuple[str, Callable[[], object]]] = []
    if session.trained is not None:
        trained = session.trained
        runs.append(("register_model", lambda: trained.ws.register_model(MODEL_NAME, run=trained.run_id)))
        if "alias" in res.timings:
            runs.append(("alias_model", lambda: trained.ws.alias_model(MODEL_NAME, ALIAS, 1, reason="profiled move")))
    verify_ws = next((ws for ws in session.opened if ws.root.name == "verify"), None)
    if verify_ws is not None:
        runs.append(("verify_model", lambda: verify_ws.verify_model(f"{MODEL_NAME}@1")))
    for title, call in runs:
        log(f"profiling one {title}")
        profiler = cProfile.Profile()
        profiler.runcall(call)
        res.profile[title] = top_functions(profiler)


def _short_path(filename: str) -> str:
    """A file name without the machine's prefixes, so a profile can be pasted into the README."""
    for marker in ("site-packages/", "/src/"):
        if marker in filename:
            return filename.rsplit(marker, maxsplit=1)[-1]
    return Path(filename).name


def top_functions(profiler: cProfile.Profile) -> list[dict[str, Any]]:
    """The PROFILE_TOP functions with the most cumulative time, as plain rows for the report and JSON."""
    stats = pstats.Stats(profiler)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in table.items():
        where = _short_path(filename)
        rows.append({"function": f"{where}:{line}({name})", "calls": calls, "tottime": own, "cumtime": cumulative})
    rows.sort(key=lambda row: row["cumtime"], reverse=True)
    return rows[:PROFILE_TOP]


# ------------------------------------------------------------------------------------------ report


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _cell(found: Timings | None, pick: Callable[[Timings], float | None]) -> str:
    if found is None:
        return "—"
    return _ms(pick(found)) + ("*" if found.busy else "")


def _beyond_hash(res: Results) -> float | None:
    register, hashing = res.timings.get("register"), res.timings.get("hash")
    if register is None or hashing is None or register.median is None or hashing.median is None:
        return None
    return register.median - hashing.median


def register_rows(res: Results) -> list[list[str]]:
    t = res.timings
    ours, theirs = t.get("register"), t.get("mlflow-register")
    vs = fmt_ratio(ratio(ours.median, theirs.median)) if ours and theirs else "—"
    rows = [
        [
            "mlcustody register_model (attest + sign)",
            _cell(ours, lambda s: s.first),
            _cell(ours, lambda s: s.median),
            vs,
        ],
        [
            "  hash the model file (sha256 + BLAKE3)",
            _cell(t.get("hash"), lambda s: s.first),
            _cell(t.get("hash"), lambda s: s.median),
            "",
        ],
        ["  register beyond hashing", "", _ms(_beyond_hash(res)), ""],
        [
            "MLflow register_model (runs:/…/model)",
            _cell(theirs, lambda s: s.first),
            _cell(theirs, lambda s: s.median),
            "1.00×" if theirs else "",
        ],
    ]
    return rows if ours or theirs else []


def alias_rows(res: Results) -> list[list[str]]:
    ours, theirs = res.timings.get("alias"), res.timings.get("mlflow-alias")
    rows = []
    for label, found in (("mlcustody alias_model", ours), ("MLflow set_registered_model_alias", theirs)):
        if found is None:
            continue
        vs = ratio(found.median, theirs.median) if theirs else None
        rows.append(
            [
                label,
                _cell(found, lambda s: s.median),
                _ms(max(found.seconds)),
                fmt_seconds(sum(found.seconds)),
                fmt_ratio(vs),
            ]
        )
    return rows


def verify_rows(res: Results) -> list[list[str]]:
    found = res.timings.get("verify")
    if found is None:
        return []
    rows = [
        ["Workspace.verify_model, first call", _cell(found, lambda s: s.first), "lazy imports, cold caches"],
        [f"Workspace.verify_model, median of {len(found.warm)}", _cell(found, lambda s: s.median), ""],
    ]
    if res.verify_process:
        best = min(run["seconds"] for run in res.verify_process)
        peak = max(run["peak_rss_bytes"] for run in res.verify_process)
        rows.append(
            [
                f"`custody model verify NAME@1 --json`, best of {len(res.verify_process)}",
                _ms(best),
                f"whole process, peak RSS {fmt_bytes(peak)}",
            ]
        )
    setup = res.setup.get("verify-1M", {})
    if "register_seconds" in setup:
        rows.append(["register_model of this model (once, not judged)", _ms(setup["register_seconds"]), ""])
    return rows


def target_rows(res: Results) -> list[list[Any]]:
    """[case, what, target, measured, met, value] per measured figure that the issue sets a target for."""
    out: list[list[Any]] = []
    beyond = _beyond_hash(res)
    if beyond is not None:
        what = "register + sign beyond hashing the model (median)"
        goal = f"≤ {REGISTER_BEYOND_HASH_S * 1000:.0f} ms"
        out.append(["register", what, goal, _ms(beyond), _yes(beyond <= REGISTER_BEYOND_HASH_S), beyond])
        first = res.timings["register"].first
        hashing = res.timings["hash"].median or 0.0
        if first is not None:
            value = first - hashing
            shown = _ms(value)
            out.append(
                ["register", "… first call in the process", goal, shown, _yes(value <= REGISTER_BEYOND_HASH_S), value]
            )
    found = res.timings.get("verify")
    if found is not None and found.median is not None:
        rows = f"{res.sizes.verify_rows:,}-record lineage"
        goal = f"≤ {VERIFY_S:.0f} s"
        out.append(
            [
                "verify-1M",
                f"Workspace.verify_model, {rows} (median)",
                goal,
                _ms(found.median),
                _yes(found.median <= VERIFY_S),
                found.median,
            ]
        )
        if found.first is not None:
            value = found.first
            out.append(["verify-1M", "… first call in the process", goal, _ms(value), _yes(value <= VERIFY_S), value])
    if res.verify_process:
        best = min(run["seconds"] for run in res.verify_process)
        out.append(["verify-1M", "whole `custody model verify` process (best)", "— (reported)", _ms(best), "—", best])
    return out


def render_report(res: Results) -> str:
    sections: list[str] = []
    setup = res.setup.get("register")
    if setup:
        mlflow = res.setup.get("mlflow", {})
        sections += [
            f"register: a {res.sizes.trees}-tree RandomForest ({fmt_bytes(setup['model_bytes'])} with skops), "
            f"trained in a run that read a {setup['dataset_records']:,}-record Parquet dataset "
            "added with a record manifest "
            f"(add {fmt_seconds(setup['add_seconds'])}, run {fmt_seconds(setup['train_seconds'])}"
            + (f"; MLflow log_model {fmt_seconds(mlflow['log_model_seconds'])}" if mlflow else "")
            + "; setup, not compared)",
        ]
    rows = register_rows(res)
    if rows:
        sections.append(render_table(["operation", "first call", "median of the rest", "vs MLflow"], rows))
    rows = alias_rows(res)
    if rows:
        sections += [
            f"alias: {res.sizes.alias_moves} moves of `{ALIAS}` between versions 1 and 2",
            render_table(["operation", "per move (median)", "slowest", "all moves", "vs MLflow"], rows),
        ]
    setup = res.setup.get("verify-1M")
    if setup:
        sections.append(
            f"verify-1M: model trained by a run that read a {setup['dataset_records']:,}-record Parquet dataset "
            f"({fmt_bytes(setup['dataset_bytes'])}; added with a record manifest in "
            f"{fmt_seconds(setup['add_seconds'])}, setup)"
        )
    rows = verify_rows(res)
    if rows:
        sections.append(render_table(["operation", "time", "note"], rows))
    targets = target_rows(res)
    if targets:
        sections += ["Targets", render_table(["case", "what", "target", "measured", "met"], [r[:5] for r in targets])]
    for title, functions in res.profile.items():
        table = [[f["function"][:100], f"{f['calls']:,}", _ms(f["tottime"]), _ms(f["cumtime"])] for f in functions]
        sections += [
            f"cProfile of one {title} (top {PROFILE_TOP} by cumulative time)",
            render_table(["function", "calls", "own", "cumulative"], table),
        ]
    notes = list(res.notes)
    notes += [f"{case} FAILED: {why}" for case, why in res.failed.items()]
    if any(t.busy for t in res.timings.values()):
        notes.append(
            f"* other processes kept > {CONTENTION_WARNING} CPUs busy on average during those calls "
            f"({os.cpu_count()} CPUs): likely inflated"
        )
    if notes:
        sections += ["Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(sections)


def report_json(res: Results, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "sizes": vars(res.sizes),
        "cases": res.ran,
        "failed": res.failed,
        "setup": res.setup,
        "timings": {key: vars(found) for key, found in res.timings.items()},
        "verify_process": res.verify_process,
        "profile": res.profile,
        "targets": targets_json(target_rows(res)),
        "notes": res.notes,
    }


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.verify_rows:,} records upstream of the verified model, a {QUICK.trees}-tree forest: a smoke run",
    )
    parser.add_argument(
        "--verify-rows",
        type=int,
        metavar="N",
        help=f"records upstream of the verified model (default {FULL.verify_rows:,})",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="registrations per side and in-process verifications (the first is reported apart; default 5); "
        "whole `custody model verify` processes: min(N, 3)",
    )
    add_only_option(parser, CASES)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one register, alias move and verify under cProfile, print the top functions",
    )
    add_common_options(
        parser, workdir_help="where data, workspaces and the MLflow store go (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.sizes = Sizes(base.train_rows, base.trees, args.verify_rows or base.verify_rows, base.alias_moves)
    if args.sizes.verify_rows < 1_000:
        parser.error("--verify-rows must be at least 1000")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.cases = chosen_cases(parser, args.only, CASES)
    return args


CASE_FUNCTIONS: dict[str, Callable[[Session, Results], None]] = {
    "register": case_register,
    "verify-1M": case_verify,
    "alias": case_alias,
}


def run_cases(args: argparse.Namespace, workdir: Path, res: Results) -> None:
    """Each case in turn; a case that raises is reported and the others still run."""
    session = Session(args, workdir, find_executable("custody"))
    try:
        for case in [c for c in CASES if c in args.cases]:
            try:
                CASE_FUNCTIONS[case](session, res)
            except Exception as exc:  # report and go on: the other cases still run
                traceback.print_exc()
                res.failed[case] = f"{type(exc).__name__}: {exc}"
            else:
                res.ran.append(case)
        if args.profile:
            profile_calls(session, res)
    finally:
        for ws in session.opened:
            ws.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    res = Results(sizes=args.sizes, repeat=args.repeat)
    # No inherited run to attach to, no CI signing key; the benchmark's own keys need a passphrase.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("CUSTODY_", "MLFLOW_"))}
    os.environ["CUSTODY_KEY_PASSPHRASE"] = PASSPHRASE
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-registry-") as scratch:
            workdir = (args.workdir or Path(scratch)).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            run_cases(args, workdir, res)
            if not args.keep:
                for name in ("registry", "verify", "mlflow", "home"):
                    drop_tree(workdir / name)
    finally:
        os.environ.pop("CUSTODY_KEY_PASSPHRASE", None)
        os.environ.update(saved)
    total = time.perf_counter() - started
    print(render_report(res))
    scale = "quick" if args.quick else "full" if args.sizes == FULL else "custom"
    ran = ", ".join(res.ran) or "no case"
    print(f"\n{ran} ran ({scale}); {os.cpu_count()} CPUs; whole benchmark took {fmt_seconds(total)}")
    if args.json:
        meta = {
            "benchmark": "registry",
            "quick": args.quick,
            "repeat": args.repeat,
            "total_seconds": total,
            "machine": machine_info(),
            "versions": {
                "mlflow": res.setup.get("mlflow", {}).get("version"),
                "mlcustody_checkout": source_revision(Path(__file__).resolve().parent),
            },
        }
        args.json.write_text(json.dumps(report_json(res, meta), indent=2, default=str) + "\n")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
