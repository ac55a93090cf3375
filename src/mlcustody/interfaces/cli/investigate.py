"""``custody investigate``: forensic investigations of a model version and its data, each stored as a
report artifact linked to what it read. Every command parses, calls ``interfaces.investigations``
and renders; the numbers live in ``mlcustody.forensics``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlcustody.interfaces.cli import render_investigate

if TYPE_CHECKING:
    from mlcustody.workspace.facade import Workspace

investigate_app = typer.Typer(
    help="Forensics: bias, drift, suspect slices, contamination, label issues, and the whole case, "
    "each traced to records and raw source lines and stored as a report."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (see docs/cli.md).")]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", metavar="FILE", help="Also write a self-contained HTML report here.")
]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Model version: NAME@VERSION, NAME:ALIAS or NAME.")]
TrustOpt = Annotated[
    bool, typer.Option("--trust-pickle", help="Load a pickled model (runs its code: only if you trust its author).")
]
LabelOpt = Annotated[str | None, typer.Option("--label", help="Column of true labels (default: the one left).")]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="A column the label-issue model must not see, e.g. the group (repeat)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]


def _workspace() -> AbstractContextManager[Workspace]:
    from mlcustody.interfaces.cli.app import workspace  # app registers this module: imported when run

    return workspace()


@investigate_app.command("bias")
def bias(
    model: ModelArg,
    sensitive: Annotated[str, typer.Option("--sensitive", help="The column whose groups are compared.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset version the model predicts on (NAME@VERSION).")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Column of true labels (for TPR, FPR, accuracy).")
    ] = None,
    decisions: Annotated[
        bool, typer.Option("--decisions", help="Measure the model's logged decisions instead of --data.")
    ] = False,
    replicates: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates (0: no intervals).")
    ] = 200,
    seed: SeedOpt = 0,
    trust_pickle: TrustOpt = False,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-group selection rate, TPR, FPR, accuracy; demographic parity and equalized odds (fairlearn's
    definitions) with seeded bootstrap 95 % intervals."""
    from mlcustody.interfaces import investigations

    with _workspace() as ws:
        found = investigations.bias(
            ws,
            model,
            sensitive=sensitive,
            data_ref=data,
            label=label,
            from_decisions=decisions,
            trust_pickle=trust_pickle,
            replicates=replicates,
            seed=seed,
        )
    render_investigate.show(found, as_json, html)


@investigate_app.command("drift")
def drift(
    reference: Annotated[str | None, typer.Argument(metavar="REFERENCE", help="The reference dataset version.")] = None,
    current: Annotated[
        str | None, typer.Argument(metavar="CURRENT", help="The dataset version compared with it.")
    ] = None,
    columns: Annotated[
        list[str] | None, typer.Option("--columns", help="Only these columns (repeat the option).")
    ] = None,
    decisions: Annotated[
        str | None,
        typer.Option(
            "--decisions", metavar="MODEL", help="Compare this model's logged decision inputs with its training set."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="With --decisions: from this time (RFC 3339, or a date: its midnight UTC)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", help="With --decisions: before this time (RFC 3339, or a date)."),
    ] = None,
    evidently: Annotated[
        bool,
        typer.Option(
            "--evidently-compatible", help="Also the verdict of the test Evidently picks by default for each column."
        ),
    ] = False,
    trust_pickle: TrustOpt = False,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """PSI, Kolmogorov–Smirnov, chi-square, Jensen–Shannon and Wasserstein per column (scipy's definitions),
    between two dataset versions or, with --decisions, between a model's served inputs and its training set."""
    from mlcustody.errors import UsageError
    from mlcustody.interfaces import investigations

    if (decisions is None) == (reference is None or current is None) or (decisions and reference):
        raise UsageError(
            "give either REFERENCE CURRENT or --decisions MODEL",
            hint="e.g. `custody investigate drift data@1 data@2` or `custody investigate drift --decisions credit@1`",
        )
    with _workspace() as ws:
        if decisions is not None:
            found = investigations.decision_drift(
                ws,
                decisions,
                since=since,
                until=until,
                columns=columns or None,
                trust_pickle=trust_pickle,
                evidently=evidently,
            )
        else:
            assert reference is not None and current is not None
            found = investigations.drift(ws, reference, current, columns or None, evidently=evidently)
    render_investigate.show(found, as_json, html)


@investigate_app.command("slices")
def slices(
    model: ModelArg,
    data: Annotated[str, typer.Option("--data", help="Dataset version with labels to find the model's errors on.")],
    label: LabelOpt = None,
    max_conditions: Annotated[int, typer.Option("--max-conditions", help="Conditions per slice: 1 or 2.")] = 2,
    alpha: Annotated[float, typer.Option("--alpha", help="SliceLine's weight of error against size.")] = 0.6,
    min_support: Annotated[int, typer.Option("--min-support", help="Fewest rows a slice may have.")] = 32,
    top: Annotated[int, typer.Option("--top", min=1, help="Slices to list.")] = 5,
    exclude: ExcludeOpt = None,
    seed: SeedOpt = 0,
    trust_pickle: TrustOpt = False,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Slices of at most two conditions where the model errs most (SliceLine's score, Bonferroni-corrected
    Fisher tests); for the top ones, their training records' source mix, label issues and raw lines."""
    from mlcustody.forensics.suspects import Options
    from mlcustody.interfaces import investigations

    options = Options(max_conditions, alpha, min_support, top, tuple(exclude or ()), seed)
    with _workspace() as ws:
        found = investigations.slices(ws, model, data, label=label, options=options, trust_pickle=trust_pickle)
    render_investigate.show(found, as_json, html)


@investigate_app.command("case")
def case(
    model: ModelArg,
    data: Annotated[str, typer.Option("--data", help="Dataset version the bias is seen on, with labels.")],
    sensitive: Annotated[str, typer.Option("--sensitive", help="The column whose groups are compared.")],
    label: LabelOpt = None,
    max_conditions: Annotated[int, typer.Option("--max-conditions", help="Conditions per slice: 1 or 2.")] = 2,
    exclude: ExcludeOpt = None,
    seed: SeedOpt = 0,
    trust_pickle: TrustOpt = False,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The whole case: registry → run → snapshot → bias → top slice → source mix → label issues → flagged
    records → raw lines, one report whose findings cite the versions and digests they used."""
    from mlcustody.forensics.suspects import Options
    from mlcustody.interfaces import investigations

    options = Options(max_conditions=max_conditions, exclude=tuple(exclude or ()), seed=seed)
    with _workspace() as ws:
        found = investigations.case(
            ws, model, data, sensitive=sensitive, label=label, options=options, trust_pickle=trust_pickle
        )
    render_investigate.show(found, as_json, html)


@investigate_app.command("labels")
def labels(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="Dataset version with records (NAME@VERSION).")],
    label: Annotated[str, typer.Option("--label", help="The label column to check.")],
    exclude: ExcludeOpt = None,
    seed: SeedOpt = 0,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label issues by confident learning (cleanlab on out-of-fold probabilities of a logistic regression
    on the numeric columns), per raw source with counts, rates and Fisher tests, each with its raw line."""
    from mlcustody.interfaces import investigations

    with _workspace() as ws:
        found = investigations.labels(ws, dataset, label=label, exclude=tuple(exclude or ()), seed=seed)
    render_investigate.show(found, as_json, html)


@investigate_app.command("contamination")
def contamination(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="Dataset version with records (NAME@VERSION).")],
    against: Annotated[
        str | None, typer.Option("--against", help="Another version (e.g. the test set) to check for leakage into.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Label column: also find duplicates that differ only in it.")
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Jaccard of col=value tokens from which records are near-duplicates.")
    ] = 0.8,
    by_source: Annotated[
        bool, typer.Option("--by-source", help="Also each raw source's share of the dataset and of every slice.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the MinHash permutations.")] = 0,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Exact, conflicting and near-duplicate records (MinHash, bands chosen for recall, exact Jaccard check),
    leakage into --against (same content, near content, same raw source line), and the raw sources
    over-represented among them, each record with its raw lines."""
    from mlcustody.interfaces import investigations

    with _workspace() as ws:
        found = investigations.contamination(
            ws, dataset, against=against, label=label, threshold=threshold, by_source=by_source, seed=seed
        )
    render_investigate.show(found, as_json, html)
