"""Interop benchmark: `custody import mlflow` of a big MLflow store and `custody import dvc` of a long history.

    python benchmarks/bench_interop.py [--quick] [--only mlflow,dvc] [--runs N --metrics N --steps N]
                                       [--commits N --files N] [--workdir DIR] [--json FILE] [--keep]

mlflow: an MLflow SQLite store of RUNS runs × METRICS metrics × STEPS steps is built with MLflow's own
client (``log_batch``, untimed); the import into a fresh workspace is timed in this process.
Target: ≤ 30 s at 1,000 × 100 × 100 (ten million metric points).

dvc: a git + DVC repository whose dataset of FILES files changes one file in each of COMMITS commits is
built with git and dvc (untimed); the import is timed, and so is one ``Workspace.add`` of that dataset
into a fresh workspace. Target: import ≤ 2 × (one add × distinct versions) — the time of adding every
version once. Full size is 100 commits × 100,000 files; building that with dvc takes hours, so the
default is smaller and the sizes are printed with the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import (
    add_common_options,
    add_only_option,
    chosen_cases,
    fmt_seconds,
    machine_info,
    new_parser,
    render_table,
    targets_json,
)

CASES = ("mlflow", "dvc")


def _workspace(where: Path) -> Any:
    from mlcustody.workspace.facade import Workspace

    where.mkdir(parents=True)
    return Workspace.init(where)


def build_mlflow(root: Path, runs: int, metrics: int, steps: int) -> str:
    """An MLflow SQLite store, written through MLflow's client in batches of 1,000 points. Kept in the
    work directory (``--workdir DIR --keep``): a later run with the same sizes reuses it (ten million
    points take MLflow ~40 min to write on 2 shared cores)."""
    import mlflow
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'mlflow.db'}"
    sizes = {"runs": runs, "metrics": metrics, "steps": steps}
    marker = root / "built.json"
    if marker.exists() and json.loads(marker.read_text()) == sizes:
        return uri
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    client = mlflow.MlflowClient(tracking_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiment = client.create_experiment("bench", artifact_location=(root / "artifacts").as_uri())
        for r in range(runs):
            run_id = client.create_run(experiment, run_name=f"run-{r}").info.run_id
            points = [
                Metric(f"m{m}", float(s * m + r), 1_700_000_000_000 + s, s)
                for m in range(metrics)
                for s in range(steps)
            ]
            params = [Param("lr", str(0.001 * (r + 1))), Param("seed", str(r))]
            for start in range(0, len(points), 1000):
                client.log_batch(run_id, metrics=points[start : start + 1000], params=params if start == 0 else [])
            client.set_terminated(run_id)
    marker.write_text(json.dumps(sizes))
    return uri


def case_mlflow(base: Path, args: Any) -> tuple[list[list[str]], dict[str, Any]]:
    from mlcustody.workspace.import_mlflow import import_mlflow

    began = time.perf_counter()
    uri = build_mlflow(base / "mlflow-store", args.runs, args.metrics, args.steps)
    built = time.perf_counter() - began
    shutil.rmtree(base / "ws-mlflow", ignore_errors=True)
    ws = _workspace(base / "ws-mlflow")
    try:
        began, cpu = time.perf_counter(), time.process_time()
        report = import_mlflow(ws, uri)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        ws.close()
    points = report.imported["metric_points"]
    size = f"{args.runs} runs × {args.metrics} metrics × {args.steps} steps"
    target = 30.0 * (args.runs * args.metrics * args.steps) / 10_000_000  # 30 s at ten million points, pro rata
    row = ["mlflow", f"import {size}", f"≤ {fmt_seconds(target)}", fmt_seconds(seconds)]
    row += ["yes" if seconds <= target else "NO", f"{seconds:.3f}"]
    found = {"build_s": built, "import_s": seconds, "import_cpu_s": cpu, "metric_points": points}
    rows = [row]
    peer = _mlflow_export_import(base, uri)
    if peer is not None:
        found |= peer
        rows.append(
            ["mlflow", f"mlflow-export-import export, {size}", "—", fmt_seconds(peer["peer_export_s"]), "—", ""]
        )
    return rows, found | {"runs": len(report.runs)}


def _mlflow_export_import(base: Path, uri: str) -> dict[str, Any] | None:
    """The peer on the same store: ``export-experiment`` to files (timed), then ``import-experiment``
    into a fresh SQLite store (it copies store to store; it has no other target). None when it is not
    installed; an import that fails is reported with the last line it printed."""
    bin_dir = Path(sys.executable).parent
    export, load = bin_dir / "export-experiment", bin_dir / "import-experiment"
    if not (export.exists() and load.exists()):
        return None
    out, target = base / "mei-export", base / "mei-target"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    env = os.environ | {"MLFLOW_TRACKING_URI": uri}
    began = time.perf_counter()
    argv = [str(export), "--experiment", "bench", "--output-dir", str(out)]
    subprocess.run(argv, env=env, check=True, capture_output=True)
    found: dict[str, Any] = {"peer_export_s": time.perf_counter() - began}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{target / 'mlflow.db'}"
    argv = [str(load), "--experiment-name", "bench", "--input-dir", str(out)]
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = [line for line in done.stderr.strip().splitlines() if line and not line.startswith(("(", " "))]
        found["peer_import_error"] = (lines or ["no output"])[-1][:300]
    else:
        found["peer_import_s"] = time.perf_counter() - began
    return found


def _sh(repo: Path, env: dict[str, str], *argv: str) -> None:
    subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)


def build_dvc(repo: Path, commits: int, files: int) -> int:
    """A repository whose dataset changes one file per commit; returns the number of distinct versions."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    home = repo.parent / "home"
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GIT_"))}
    env |= {"HOME": str(home), "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(home / "dvc-site")}
    env |= {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    repo.mkdir(parents=True)
    _sh(repo, env, "git", "init", "-q")
    _sh(repo, env, dvc, "init", "-q")
    data = repo / "data"
    for i in range(files):
        part = data / f"{i // 1000:03d}"
        part.mkdir(parents=True, exist_ok=True)
        (part / f"{i:06d}.txt").write_text(f"record {i}\n")
    for c in range(commits):
        if c:
            (data / f"{(c % files) // 1000:03d}" / f"{c % files:06d}.txt").write_text(f"record {c} changed in {c}\n")
        _sh(repo, env, dvc, "add", "-q", "data")
        _sh(repo, env, "git", "add", "-A")
        _sh(repo, env, "git", "commit", "-q", "-m", f"commit {c}")
    return commits


def case_dvc(base: Path, args: Any) -> tuple[list[list[str]], dict[str, Any]]:
    from mlcustody.workspace.import_dvc import import_dvc

    repo = base / "dvc-repo"
    began = time.perf_counter()
    versions = build_dvc(repo, args.commits, args.files)
    built = time.perf_counter() - began
    ws = _workspace(base / "ws-dvc")
    try:
        began = time.perf_counter()
        report = import_dvc(ws, repo)
        seconds = time.perf_counter() - began
    finally:
        ws.close()
    copy = base / "ws-add" / "data"
    ws = _workspace(base / "ws-add")
    try:
        shutil.copytree(repo / "data", copy)
        began = time.perf_counter()
        ws.add([copy])
        one_add = time.perf_counter() - began
    finally:
        ws.close()
    target = 2 * one_add * versions
    size = f"{args.commits} commits of {args.files:,} files"
    row = ["dvc", f"import {size}", f"≤ {fmt_seconds(target)}", fmt_seconds(seconds)]
    row += ["yes" if seconds <= target else "NO", f"{seconds:.3f}"]
    found = {"build_s": built, "import_s": seconds, "one_add_s": one_add, "versions": len(report.versions)}
    return [row], found


def main() -> int:
    parser = new_parser(__doc__)
    add_only_option(parser, CASES)
    add_common_options(parser, workdir_help="where stores, repositories and workspaces go (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="100 runs × 10 × 10; 5 commits × 1,000 files")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.metrics, args.steps, args.commits, args.files = 100, 10, 10, 5, 1000
    cases: dict[str, Callable[[Path, Any], tuple[list[list[str]], dict[str, Any]]]] = {
        "mlflow": case_mlflow,
        "dvc": case_dvc,
    }
    rows: list[list[str]] = []
    raw: dict[str, Any] = {"machine": machine_info()}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-interop-"))
    try:
        for case in chosen_cases(parser, args.only, CASES):
            found, numbers = cases[case](workdir / case, args)
            rows += found
            raw[case] = numbers
            print(f"{case}: {json.dumps(numbers)}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render_table(["case", "what", "target", "measured", "met"], [r[:5] for r in rows]))
    if args.json:
        args.json.write_text(json.dumps(raw | {"targets": targets_json(rows)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
