"""Forensics benchmark: each ``custody investigate`` computation against the peer that owns its number,
on the same data in the same run, with the ratio printed.

    python benchmarks/bench_forensics.py [--quick] [--rows N] [--only KEYS] [--json FILE]

In-process, ``time.perf_counter``, seeded synthetic data (N rows, default 1,000,000):

- ``bias``: ``forensics.bias.measure`` (no bootstrap) against one ``fairlearn.metrics.MetricFrame``
  of selection rate, TPR, FPR and accuracy by group; the numbers are checked equal (1e-9).
- ``slices``: ``forensics.slices.search`` (≤ 2 conditions, exhaustive) against
  ``sliceline.Slicefinder(k=1, max_l=2)`` on the same binned columns; the top slice is checked equal.
- ``near``: ``forensics.near_duplicates`` on N rows × 20 columns with 1,000 pairs planted at 2 of 20
  columns differing (J = 0.818) and 1,000 at 4 (J = 0.667); recall of the first, false accepts of the
  second. The peer, datasketch (``MinHash.bulk`` + ``MinHashLSH`` with the same bands + the same exact
  check), costs ≈ 170 s per million rows in Python, so it runs on the first ``--peer-rows`` rows and
  the ratio is of time per row.
- ``drift``: ``forensics.drift.compare`` on N × 20 numeric columns against scipy's ``ks_2samp`` and
  ``wasserstein_distance`` per column (what our KS and W₁ reproduce); statistics checked equal. Evidently
  is used instead when it is importable.
- ``labels``: ``forensics.labels.flag`` (5-fold out-of-fold logistic regression, cleanlab's
  ``find_label_issues``) against scikit-learn's ``cross_val_predict`` + cleanlab on the same features.

Exit 1 only when a case could not run or disagreed with its peer; a missed target is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _harness import add_only_option, chosen_cases, machine_info, new_parser, render_table, source_revision

CASES = ("bias", "slices", "near", "drift", "labels")
SEED = 20_261_203
FULL_ROWS, QUICK_ROWS = 1_000_000, 20_000
PEER_ROWS = 20_000
TARGETS = {"bias": "≥ 50× faster", "slices": "≤ 5 s", "near": "≤ 60 s, recall ≥ 0.99, 0 false", "drift": "≤ 10 s"}


@dataclass(frozen=True)
class Result:
    case: str
    rows: int
    ours_s: float
    peer: str
    peer_rows: int
    peer_s: float
    ratio: float  # peer time (per row, scaled to ``rows``) / ours
    agree: bool
    note: str


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def bias_case(rows: int) -> Result:
    import fairlearn.metrics as fm

    from mlcustody.forensics import bias

    rng = np.random.default_rng(SEED)
    groups = rng.choice(np.array(["a", "b", "c", "d"]), size=rows)
    y_true = rng.integers(0, 2, rows)
    y_pred = np.where(rng.random(rows) < 0.8, y_true, 1 - y_true)
    ours_s, ours = timed(lambda: bias.measure(groups, y_pred, y_true, replicates=0))
    metrics = {
        "selection_rate": fm.selection_rate,
        "tpr": fm.true_positive_rate,
        "fpr": fm.false_positive_rate,
        "accuracy": lambda t, p: float(np.mean(t == p)),
    }
    peer_s, frame = timed(
        lambda: fm.MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    )
    table = frame.by_group
    agree = all(
        abs(getattr(g, name) - float(table.loc[g.group, name])) <= 1e-9 for g in ours.groups for name in metrics
    )
    return Result("bias", rows, ours_s, "fairlearn MetricFrame", rows, peer_s, peer_s / ours_s, agree, "4 groups")


def slices_case(rows: int) -> Result:
    from sliceline.slicefinder import Slicefinder

    from mlcustody.forensics import slices

    rng = np.random.default_rng(SEED + 1)
    columns = {f"c{j}": rng.integers(0, 5, rows) for j in range(6)}
    bad = (columns["c2"] == 3) & (columns["c4"] == 1)
    errors = (rng.random(rows) < np.where(bad, 0.5, 0.1)).astype(int)
    ours_s, found = timed(lambda: slices.search(columns, errors, alpha=0.95, min_support=32, significance=1.0, top=1))
    finder = Slicefinder(alpha=0.95, k=1, max_l=2, min_sup=32, verbose=False)
    peer_s, _ = timed(lambda: finder.fit(np.column_stack(list(columns.values())), errors))
    theirs = {f"c{j}": int(v) for j, v in enumerate(finder.top_slices_[0]) if v is not None}
    ours = {c.column: int(str(c.value)) for c in found.slices[0].conditions}
    agree = ours == theirs
    note = f"6 columns × 5 values, top slice {found.slices[0].text}"
    return Result("slices", rows, ours_s, "sliceline Slicefinder", rows, peer_s, peer_s / ours_s, agree, note)


def near_case(rows: int, peer_rows: int) -> Result:
    import pyarrow as pa

    from mlcustody.forensics import near_duplicates

    rng = np.random.default_rng(SEED + 2)
    m, planted = 20, min(1000, rows // 8)
    x = rng.integers(0, 1 << 30, size=(rows, m))
    two, four = set(), set()
    for k in range(2 * planted):
        i, j = k, rows - 1 - k
        differ = 2 if k < planted else 4
        x[j] = x[i]
        x[j, rng.choice(m, differ, replace=False)] = rng.integers(1 << 30, 1 << 31, differ)
        (two if differ == 2 else four).add((i, j))
    codes = near_duplicates.encode([pa.array(x[:, c]) for c in range(m)])
    ours_s, found = timed(lambda: near_duplicates.find(codes, 0.8))
    pairs = set(zip(found.left.tolist(), found.right.tolist(), strict=True))
    recall, false = len(pairs & two) / len(two), len(pairs - two)
    banding = found.banding
    peer_s = _datasketch(x[:peer_rows], banding.bands, banding.rows)
    ratio = peer_s / peer_rows * rows / ours_s
    note = f"recall {recall:.4f} of {len(two)} d=2 pairs, {false} false accepts ({banding.bands}×{banding.rows} bands)"
    agree = recall >= 0.99 and false == 0
    return Result("near", rows, ours_s, "datasketch MinHashLSH", peer_rows, peer_s, ratio, agree, note)


def _datasketch(x: np.ndarray, bands: int, rows_per_band: int) -> float:
    from datasketch import MinHash, MinHashLSH

    def run() -> None:
        tokens = [[f"{c}={v}".encode() for c, v in enumerate(row)] for row in x.tolist()]
        hashes = MinHash.bulk(tokens, num_perm=bands * rows_per_band)
        index = MinHashLSH(num_perm=bands * rows_per_band, params=(bands, rows_per_band))
        for i, h in enumerate(hashes):
            index.insert(i, h)
        width = x.shape[1]
        for i, h in enumerate(hashes):
            for j in index.query(h):
                if j > i:
                    equal = int((x[i] == x[j]).sum())
                    _ = equal / (2 * width - equal) >= 0.8

    seconds, _ = timed(run)
    return seconds


def drift_case(rows: int) -> Result:
    from scipy.stats import ks_2samp, wasserstein_distance

    from mlcustody.forensics import drift

    rng = np.random.default_rng(SEED + 3)
    reference = {f"x{j}": rng.normal(size=rows) for j in range(20)}
    current = {f"x{j}": rng.normal(0.002 * j, 1.0, size=rows) for j in range(20)}
    ours_s, found = timed(lambda: drift.compare(reference, current))

    def peer() -> list[tuple[float, float]]:
        return [
            (float(ks_2samp(reference[c], current[c]).statistic), float(wasserstein_distance(reference[c], current[c])))
            for c in reference
        ]

    evidently = _evidently_available()
    peer_s, theirs = timed(peer)
    agree = all(
        abs(float(col.ks or 0) - ks) <= 1e-12 and abs(float(col.wasserstein or 0) - w) <= 1e-9
        for col, (ks, w) in zip(found, theirs, strict=True)
    )
    note = "20 numeric columns; scipy ks_2samp + wasserstein_distance (KS D and W₁ checked equal)"
    if evidently:
        note += "; Evidently importable but not timed here"
    return Result("drift", rows, ours_s, "scipy.stats", rows, peer_s, peer_s / ours_s, agree, note)


def _evidently_available() -> bool:
    try:
        import evidently  # noqa: F401
    except ImportError:
        return False
    return True


def labels_case(rows: int) -> Result:
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlcustody.forensics import labels

    rng = np.random.default_rng(SEED + 4)
    x = rng.normal(size=(rows, 5))
    y = (x @ np.array([1.5, -1.0, 0.5, 0.0, 2.0]) + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    flipped = rng.random(rows) < 0.05
    y = np.where(flipped, 1 - y, y)
    columns = {f"f{j}": x[:, j] for j in range(5)}
    ours_s, found = timed(lambda: labels.flag(columns, y, folds=5, seed=0))

    def peer() -> np.ndarray:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        probs = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
        return np.asarray(find_label_issues(y, probs, n_jobs=1), dtype=bool)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        peer_s, theirs = timed(peer)
    overlap = int((found.mask & theirs).sum()) / max(int((found.mask | theirs).sum()), 1)
    recall = int((found.mask & flipped).sum()) / int(flipped.sum())
    note = f"5 % flipped: our recall {recall:.3f}; Jaccard of the two flagged sets {overlap:.3f}"
    peer = "sklearn cross_val_predict + cleanlab"
    return Result("labels", rows, ours_s, peer, rows, peer_s, peer_s / ours_s, overlap >= 0.9, note)


def main(argv: list[str] | None = None) -> int:
    parser: argparse.ArgumentParser = new_parser(__doc__ or "")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--rows", type=int, default=None, help=f"rows per case (default {FULL_ROWS:,})")
    parser.add_argument("--peer-rows", type=int, default=PEER_ROWS, help="rows datasketch hashes (it is slow)")
    add_only_option(parser, CASES)
    args = parser.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    peer_rows = min(args.peer_rows, rows)
    runners: dict[str, Callable[[], Result]] = {
        "bias": lambda: bias_case(rows),
        "slices": lambda: slices_case(rows),
        "near": lambda: near_case(rows, peer_rows),
        "drift": lambda: drift_case(rows),
        "labels": lambda: labels_case(rows),
    }
    results, failed = [], False
    for case in chosen_cases(parser, args.only, CASES):
        try:
            result = runners[case]()
        except Exception:  # a case that cannot run is reported, the others still run
            traceback.print_exc()
            failed = True
            continue
        failed |= not result.agree
        results.append(result)
        print(
            f"{case}: ours {result.ours_s:.2f} s, {result.peer} {result.peer_s:.2f} s, ×{result.ratio:.1f}", flush=True
        )
    table = [
        [
            r.case,
            f"{r.rows:,}",
            f"{r.ours_s:.2f} s",
            r.peer + ("" if r.peer_rows == r.rows else f" ({r.peer_rows:,} rows)"),
            f"{r.peer_s:.2f} s",
            f"{r.ratio:.1f}×",
            "yes" if r.agree else "NO",
            TARGETS.get(r.case, "—"),
            r.note,
        ]
        for r in results
    ]
    print(render_table(["case", "rows", "ours", "peer", "peer time", "ratio", "agree", "target", "note"], table))
    if args.json:
        document = {
            "machine": machine_info(),
            "revision": source_revision(Path(__file__).parent),
            "results": [asdict(r) for r in results],
        }
        Path(args.json).write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
