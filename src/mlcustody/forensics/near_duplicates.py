"""Near-duplicate records by MinHash and LSH banding with explicitly chosen bands, every candidate pair
checked by its exact Jaccard similarity.

A record is the set of its ``column=value`` tokens, one per column (a null is a value of its own;
values compare exactly, as the record fingerprint does). Two records of m columns that differ in d of
them have Jaccard J = (m−d)/(m+d): at m = 20, d = 2 gives 0.818. MinHash estimates J; banding a
signature of b·r hashes into b bands of r makes a pair a candidate with probability
1 − (1 − J^r)^b. ``datasketch``'s default tuning for threshold 0.8 (b = 9, r = 13) makes a J = 0.818
pair a candidate only half of the time, so the bands here are chosen for recall: the largest r whose
b = ⌊num_perm / r⌋ bands still make a pair *at* the threshold a candidate with probability ≥ 0.99,
and the choice is reported. Candidates are then verified exactly (equal codes column by column), so
a false candidate costs time, never a false accept.

The hashing is vectorised numpy rather than datasketch's per-row Python (≈ 170 s per million rows):
each column is dictionary-encoded, a token is a 64-bit mix of (column, code), a permutation is the
multiply-add ``a·x + b`` mod 2⁶⁴ keeping the high 32 bits, and a band key is a 64-bit mix of its r
minima. Rows are hashed in batches so memory stays at the band keys (8·b bytes a row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

NUM_PERM = 128
TARGET_RECALL = 0.99  # P(candidate) a pair exactly at the threshold must reach
MAX_BUCKET = 500  # rows of one band bucket paired at most; larger buckets are counted as truncated
_BATCH = 1 << 15
_U64 = np.uint64

Codes = NDArray[np.int64]  # rows × columns: the dictionary code of each value (−1: null)


@dataclass(frozen=True)
class Banding:
    """The LSH parameters used, and what they promise at the threshold."""

    threshold: float
    bands: int
    rows: int  # hashes per band
    num_perm: int  # bands × rows hashes actually computed
    seed: int
    p_candidate_at_threshold: float


@dataclass(frozen=True)
class NearPairs:
    """The accepted pairs (row indices, i < j) with their exact Jaccard, and the search's counts."""

    banding: Banding
    left: NDArray[np.int64]
    right: NDArray[np.int64]
    jaccard: NDArray[np.float64]
    candidates: int  # distinct candidate pairs verified
    truncated_buckets: int  # band buckets with more than MAX_BUCKET rows (only their first rows paired)


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """P[a pair of similarity ``jaccard`` shares at least one band]: 1 − (1 − J^r)^b."""
    return float(1 - (1 - jaccard**rows) ** bands)


def choose_banding(threshold: float, *, num_perm: int = NUM_PERM, seed: int = 0) -> Banding:
    """The largest r (fewest false candidates) whose ⌊num_perm/r⌋ bands reach TARGET_RECALL at ``threshold``."""
    chosen = 1
    for rows in range(1, num_perm + 1):
        if candidate_probability(threshold, num_perm // rows, rows) >= TARGET_RECALL:
            chosen = rows
    bands = num_perm // chosen
    return Banding(threshold, bands, chosen, bands * chosen, seed, candidate_probability(threshold, bands, chosen))


def encode(columns: list[pa.ChunkedArray | pa.Array]) -> Codes:
    """Each column dictionary-encoded (equal values, equal codes; nulls −1), as one rows × columns matrix."""
    if not columns:
        return np.zeros((0, 0), dtype=np.int64)
    out = np.empty((len(columns[0]), len(columns)), dtype=np.int64)
    for j, values in enumerate(columns):
        chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
        indices = pc.dictionary_encode(chunked.combine_chunks()).indices
        out[:, j] = np.asarray(pc.fill_null(indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return out


def find(codes: Codes, threshold: float, *, seed: int = 0, num_perm: int = NUM_PERM) -> NearPairs:
    """Every pair of rows of ``codes`` with exact Jaccard ≥ ``threshold`` that banding makes a candidate."""
    banding = choose_banding(threshold, num_perm=num_perm, seed=seed)
    keys = band_keys(codes, banding)
    pairs, truncated = _candidates(keys)
    left, right = pairs // max(codes.shape[0], 1), pairs % max(codes.shape[0], 1)
    similarity = jaccard(codes, left, right)
    keep = similarity >= threshold
    return NearPairs(banding, left[keep], right[keep], similarity[keep], int(pairs.size), truncated)


def jaccard(codes: Codes, left: NDArray[np.int64], right: NDArray[np.int64]) -> NDArray[np.float64]:
    """The exact Jaccard of each pair's token sets: equal columns e of m give e / (2m − e)."""
    m = codes.shape[1]
    equal = (codes[left] == codes[right]).sum(axis=1).astype(np.float64)
    return np.asarray(equal / np.maximum(2 * m - equal, 1), dtype=np.float64)


def band_keys(codes: Codes, banding: Banding) -> NDArray[np.uint64]:
    """rows × bands: a 64-bit key per band of each row's MinHash signature."""
    rng = np.random.default_rng(banding.seed)
    a = rng.integers(1, 2**63, size=banding.num_perm, dtype=np.uint64) | _U64(1)
    b = rng.integers(0, 2**63, size=banding.num_perm, dtype=np.uint64)
    n, m = codes.shape
    column_salt = _mix(np.arange(m, dtype=np.uint64) + _U64(0x51ED27))
    keys = np.empty((n, banding.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n, _BATCH):
            tokens = _mix(codes[start : start + _BATCH].astype(np.uint64) ^ column_salt)
            for band in range(banding.bands):
                key = np.full(tokens.shape[0], _U64(band), dtype=np.uint64)
                for k in range(band * banding.rows, (band + 1) * banding.rows):
                    minimum = ((a[k] * tokens + b[k]) >> _U64(32)).min(axis=1)
                    key = _mix(key ^ minimum)
                keys[start : start + tokens.shape[0], band] = key
    return keys


def _candidates(keys: NDArray[np.uint64]) -> tuple[NDArray[np.int64], int]:
    """Distinct pairs i < j sharing a band key, encoded as i·n + j; and the buckets truncated."""
    n = keys.shape[0]
    found: list[NDArray[np.int64]] = []
    truncated = 0
    for band in range(keys.shape[1]):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, n])
        truncated += int((sizes > MAX_BUCKET).sum())
        multi = sizes > 1
        if not multi.any():
            continue
        # the rows of buckets with ≥ 2 rows, with their bucket number and position in it
        bucket = np.repeat(np.arange(starts.size)[multi], np.minimum(sizes[multi], MAX_BUCKET))
        offsets = np.concatenate([np.arange(min(s, MAX_BUCKET)) for s in sizes[multi]])
        rows = order[starts[bucket] + offsets].astype(np.int64)
        for gap in range(1, int(min(sizes.max(), MAX_BUCKET))):
            same = bucket[:-gap] == bucket[gap:]
            if not same.any():
                break
            i, j = rows[:-gap][same], rows[gap:][same]
            found.append(np.minimum(i, j) * n + np.maximum(i, j))
    if not found:
        return np.zeros(0, dtype=np.int64), truncated
    return np.unique(np.concatenate(found)), truncated


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: a bijective 64-bit mix (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return np.asarray(x ^ (x >> _U64(31)), dtype=np.uint64)
