"""`custody investigate drift --decisions MODEL`: the inputs the model served against its training set,
in a time window, each statistic equal to scipy's on the same two samples; shredded inputs are counted."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from conftest import Cli
from credit_world import build
from mlcustody import Workspace

FEATURES = ("income_k", "debt_ratio", "age")


def _serve(cli: Cli) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Log 300 decisions on training rows in March and 300 with incomes 20k higher in April."""
    ws = Workspace.open(cli.cwd)
    try:
        table = ws.record_table(ws.resolve("credit-train")).to_pandas()
        rows = table.sample(600, random_state=0).reset_index(drop=True)
        march, april = rows.iloc[:300], rows.iloc[300:].assign(income_k=lambda f: f["income_k"] + 20)
        with ws.decision_log("credit-risk@1") as log:
            for month, frame in (("03", march), ("04", april)):
                for i, row in enumerate(frame.itertuples()):
                    inputs = {name: getattr(row, name) for name in (*FEATURES, "group")}
                    time = f"2026-{month}-01T00:{i // 60:02d}:{i % 60:02d}Z"
                    log.record(
                        f"D-{month}-{i:03d}", inputs=inputs, output=int(row.approved), subject=f"s{i % 50}", time=time
                    )
        assert ws.forget_subject("s7") == 12  # six decisions a month: their inputs are shredded
    finally:
        ws.close()
    kept = np.arange(300) % 50 != 7
    training = {name: table[name].to_numpy() for name in FEATURES}
    served = {
        name: np.concatenate([march[name].to_numpy()[kept], april[name].to_numpy()[kept]])
        for name in ("group", "approved")
    }
    return (
        training | {f"served_{k}": v for k, v in served.items()},
        {name: march[name].to_numpy()[kept] for name in FEATURES},
        {name: april[name].to_numpy()[kept] for name in FEATURES},
    )


def test_served_inputs_against_the_training_set(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    build(cli, monkeypatch, branch=700, purchased=300)
    training, march, april = _serve(cli)
    early = cli.json("investigate", "drift", "--decisions", "credit-risk@1", "--until", "2026-03-15")
    late = cli.json(
        "investigate", "drift", "--decisions", "credit-risk@1", "--since", "2026-04-01", "--evidently-compatible"
    )
    assert early["training_set"] == "credit-train@1" and early["read"][1]["ref"] == "credit-train@1"
    assert early["decisions"] == {"used": 294, "not_kept": 0, "shredded": 6, "incomplete": 0}
    for doc, served in ((early, march), (late, april)):
        for column in doc["columns"]:
            name = column["column"]
            ks = ks_2samp(training[name], served[name], method="exact")
            assert column["ks"] == pytest.approx(ks.statistic, abs=1e-12)
            assert column["ks_p"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
            assert column["wasserstein"] == pytest.approx(wasserstein_distance(training[name], served[name]), rel=1e-9)
    income = {
        doc["window"]["since"] is None: c for doc in (early, late) for c in doc["columns"] if c["column"] == "income_k"
    }
    assert income[True]["psi"] < 0.1 and income[False]["psi"] > 0.25  # March is the training data, April is not
    as_evidently = {c["column"]: c for c in late["evidently"]["columns"]}
    assert as_evidently["income_k"]["test"] == "ks" and as_evidently["income_k"]["drifted"]  # 1,000 training rows
    assert as_evidently["income_k"]["score"] == pytest.approx(ks_2samp(training["income_k"], april["income_k"]).pvalue)
    assert early["evidently"] is None
    assert late["window"]["until"] is None and late["window"]["since"].startswith("2026-04-01")

    text, _ = cli("investigate", "drift", "--decisions", "credit-risk@1", "--since", "2026-04-01")
    assert "decisions: used 294" in text and "income_k" in text


def test_drift_needs_two_versions_or_decisions(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    build(cli, monkeypatch, branch=200, purchased=100)
    _, err = cli("investigate", "drift", "credit-train", code=2)
    assert "--decisions MODEL" in err
    _, err = cli("investigate", "drift", "credit-train", "credit-train", "--decisions", "credit-risk@1", code=2)
    assert "either" in err
    _, err = cli("investigate", "drift", "--decisions", "credit-risk@1", code=2)
    assert "no logged decision" in err


def test_bias_on_logged_decisions_decrypts_their_inputs(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    fm = pytest.importorskip("fairlearn.metrics")
    build(cli, monkeypatch, branch=700, purchased=300)
    served = _serve(cli)[0]
    doc = cli.json("investigate", "bias", "credit-risk@1", "--decisions", "--sensitive", "group", "--bootstrap", "0")
    assert doc["decisions"]["used"] == 588 and doc["decisions"]["shredded"] == 12
    frame = fm.MetricFrame(
        metrics=fm.selection_rate,
        y_true=served["served_approved"],
        y_pred=served["served_approved"],
        sensitive_features=served["served_group"],
    )
    rates = {g["group"]: g["selection_rate"] for g in doc["result"]["groups"]}
    assert rates == pytest.approx(frame.by_group.to_dict(), abs=1e-9)
