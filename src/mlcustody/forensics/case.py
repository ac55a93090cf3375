"""``investigate case``: the whole forensic story of a biased model in one report.

registry → training run → training snapshot → bias on the data given → the slice where the model
errs most → that slice's training records by raw source → label issues per source → the flagged
records → their raw lines. Each step is one of the other investigations (``bias``, ``slices``,
``evidence``, ``labels``); this module chains them on one loaded model and one training set, and
writes the findings as sentences that each cite the versions and digests they rest on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from mlcustody.forensics import bias, evidence, inputs, slices, suspects
from mlcustody.forensics.inputs import Cited, CitedModel, Store
from mlcustody.forensics.sources import SourceShare
from mlcustody.metadata.runs import store as runs

SIGNIFICANT = 1e-6  # the p-value below which a source is named as over-represented


@dataclass(frozen=True)
class TrainingRun:
    id: str
    name: str
    status: str
    seal: str
    commit: str | None


@dataclass(frozen=True)
class CaseInvestigation:
    model: CitedModel
    read: list[Cited]
    run: TrainingRun | None
    training_set: Cited
    bias: bias.Bias
    slices: slices.SliceSearch
    top_slice: evidence.SliceEvidence | None
    label_issues: evidence.LabelReport  # over the whole training set, per raw source
    findings: list[str]


def investigate(
    conn: Connection,
    store: Store,
    model_ref: str,
    data_ref: str,
    *,
    sensitive: str,
    label: str | None = None,
    options: suspects.Options | None = None,
    trust_pickle: bool = False,
) -> CaseInvestigation:
    chosen = options or suspects.Options()
    exclude = tuple(dict.fromkeys((*chosen.exclude, sensitive)))
    chosen = suspects.Options(chosen.max_conditions, chosen.alpha, chosen.min_support, chosen.top, exclude, chosen.seed)
    loaded = inputs.load_model(conn, store, model_ref, trust_pickle=trust_pickle)
    data = inputs.dataset(conn, store, data_ref)
    groups = inputs.column(data, sensitive, "sensitive")
    target, found = suspects.search(loaded, data, label, chosen)
    truth = inputs.column(data, target, "label")
    measured = bias.measure(groups, inputs.predict(loaded, data), truth, name=sensitive, label=target, seed=chosen.seed)
    train = evidence.with_flags(evidence.training(conn, store, loaded, target), list(exclude), seed=chosen.seed)
    top = evidence.slice_evidence(train, found.slices[0]) if found.slices else None
    issues = evidence.label_report(train)
    run = _run(conn, store, loaded.version.run_id)
    read = list(dict.fromkeys([Cited.of(loaded.artifact), Cited.of(data.version), train.cited]))
    story = _findings(loaded.cited(), run, train.cited, measured, found, top, issues)
    return CaseInvestigation(loaded.cited(), read, run, train.cited, measured, found, top, issues, story)


def _run(conn: Connection, store: Store, run_id: str | None) -> TrainingRun | None:
    if run_id is None:
        return None
    found = runs.get(conn, run_id)
    code = json.loads(store.objects.read_bytes(found.start.code)) if store.objects.exists(found.start.code) else {}
    commit = (code.get("git") or {}).get("commit")
    return TrainingRun(found.id, found.start.name, found.status, found.end.seal if found.end else "", commit)


def _findings(
    model: CitedModel,
    run: TrainingRun | None,
    training: Cited,
    measured: bias.Bias,
    found: slices.SliceSearch,
    top: evidence.SliceEvidence | None,
    issues: evidence.LabelReport,
) -> list[str]:
    """The report's sentences, in the order of the story, each citing what it rests on."""
    story = [
        f"{model.ref} is the model file {model.artifact} (BLAKE3 {model.digest}), signed attestation "
        f"{model.attestation[:16]}…, upstream lineage digest {model.lineage_digest[:16]}…."
    ]
    if run is not None:
        commit = f", code at commit {run.commit[:12]}" if run.commit else ""
        story.append(
            f"It was trained by run {run.id} ({run.name}, {run.status}, seal {run.seal[:16]}…{commit}) on "
            f"{training.ref} (record manifest {(training.records or '')[:16]}…)."
        )
    rates = ", ".join(f"{g.group} {g.selection_rate:.3f}" for g in measured.groups)
    parity = next(d for d in measured.disparities if d.name == "demographic_parity_difference")
    ci = f" (95 % {parity.interval.low:.3f}–{parity.interval.high:.3f})" if parity.interval else ""
    story.append(
        f"Selection rate by {measured.sensitive}: {rates}; demographic parity difference "
        f"{parity.between_groups:.3f}{ci}."
    )
    if not found.slices:
        story.append(f"No slice has significantly more errors than the rest ({found.evaluated} slices tested).")
        return story
    best = found.slices[0]
    story.append(
        f"The model errs most on [{best.text}]: error rate {best.error_rate:.3f} against {found.error_rate:.3f} "
        f"overall, {best.size} rows, Bonferroni-corrected Fisher p {best.p_adjusted:.2e} over {found.evaluated} slices."
    )
    if top is not None:
        story += _source_findings(top, issues)
    return story


def _source_findings(top: evidence.SliceEvidence, issues: evidence.LabelReport) -> list[str]:
    over = [s for s in top.source_mix if s.p_value < SIGNIFICANT and s.lift > 1]
    story = []
    for share in over:
        story.append(
            f"{share.source} ({share.path}) is over-represented among the slice's {top.inside} training records of "
            f"{top.training_set}: {share.share_inside:.1%} inside against {share.share_outside:.1%} outside, "
            f"lift {share.lift:.2f}, one-sided Fisher p {share.p_value:.2e}."
        )
    if not over:
        story.append(f"No raw source is over-represented among the slice's training records (p < {SIGNIFICANT:g}).")
    by_source = {s.source: s for s in issues.by_source}
    for share in over:
        flagged: SourceShare | None = by_source.get(share.source)
        if flagged is not None:
            story.append(
                f"Confident learning flags {flagged.inside} of its {flagged.inside + flagged.outside} records "
                f"({flagged.rate:.1%}; {issues.rate:.1%} of all {issues.rows} training records), Fisher p "
                f"{flagged.p_value:.2e}."
            )
    lines = [raw.locator for record in top.flagged for raw in record.raw if raw.locator]
    named = {share.path for share in over}
    suspect = sorted({line for line in lines if line.rsplit(":", 1)[0] in named})
    if suspect:
        shown = ", ".join(suspect[:5])
        story.append(
            f"{len(top.flagged)} flagged training records of the slice trace to {len(suspect)} raw lines of the "
            f"over-represented source(s), e.g. {shown}."
        )
    return story
