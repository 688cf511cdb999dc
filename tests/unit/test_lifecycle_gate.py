"""Promotion gate: only a challenger that is better (with confidence) is promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onnx_factory import logistic_model, make_metadata, save
from vigil.fraud_metrics import average_precision, card_precision_at_k
from vigil.training.gate import AP, CP_AT_K, GatePolicy, PairedScores, compare, run_gate

POLICY = GatePolicy(recent_days=7, top_k=5, n_bootstrap=200, seed=1)


def labelled_days(n_days: int = 7, per_day: int = 200, seed: int = 0) -> pd.DataFrame:
    """Transactions with a fraud rate of ~5%; ``signal`` separates frauds, ``noise`` does not."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    fraud = (rng.random(n) < 0.05).astype(np.int8)
    return pd.DataFrame(
        {
            "tx_datetime": pd.Timestamp("2018-06-01")
            + pd.to_timedelta(np.repeat(np.arange(n_days), per_day), unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "customer_id": rng.integers(0, 400, n),
            "tx_fraud": fraud,
            "signal": fraud * 2.0 + rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
        }
    )


def paired(frame: pd.DataFrame, champion: str, challenger: str) -> PairedScores:
    return PairedScores(
        days=frame["tx_datetime"].dt.normalize().to_numpy(),
        cards=frame["customer_id"].to_numpy(),
        labels=frame["tx_fraud"].to_numpy(),
        champion=frame[champion].to_numpy(),
        challenger=frame[challenger].to_numpy(),
    )


def test_better_challenger_is_promoted_with_metrics_as_defined() -> None:
    frame = labelled_days()
    decision = compare(paired(frame, "noise", "signal"), POLICY)
    assert decision.promote
    ap, cp = decision.comparisons
    assert ap.metric == AP and cp.metric == CP_AT_K
    assert ap.champion == pytest.approx(average_precision(frame["tx_fraud"], frame["noise"]))
    assert ap.challenger == pytest.approx(average_precision(frame["tx_fraud"], frame["signal"]))
    days = frame["tx_datetime"].dt.normalize()
    expected_cp = card_precision_at_k(
        days, frame["customer_id"], frame["tx_fraud"], frame["signal"], POLICY.top_k
    )
    assert cp.challenger == pytest.approx(expected_cp)
    assert 0 < ap.ci_low <= ap.difference <= ap.ci_high
    assert (decision.n_transactions, decision.n_days) == (1400, 7)


def test_worse_challenger_is_not_promoted() -> None:
    decision = compare(paired(labelled_days(), "signal", "noise"), POLICY)
    assert not decision.promote
    assert decision.comparisons[0].ci_high < 0
    assert "worse" in decision.reason


def test_identical_models_are_not_promoted() -> None:
    decision = compare(paired(labelled_days(), "signal", "signal"), POLICY)
    assert not decision.promote
    assert decision.comparisons[0].difference == 0.0
    assert "not significant" in decision.reason


def test_no_fraud_in_window_is_an_error() -> None:
    frame = labelled_days().assign(tx_fraud=0)
    with pytest.raises(ValueError, match="fraud"):
        compare(paired(frame, "noise", "signal"), POLICY)


def test_gate_scores_real_onnx_models_on_the_recent_window(tmp_path: Path) -> None:
    names = ["signal", "noise"]
    champion = save(logistic_model([0.0, 1.0], 0.0, make_metadata(names)), tmp_path / "a.onnx")
    challenger = save(logistic_model([1.0, 0.0], 0.0, make_metadata(names)), tmp_path / "b.onnx")
    frame = labelled_days(n_days=10)
    frame.loc[frame["tx_datetime"] < pd.Timestamp("2018-06-04"), "tx_fraud"] = 0  # outside

    assert run_gate(champion, challenger, frame, POLICY).promote
    reverse = run_gate(challenger, champion, frame, POLICY)
    assert not reverse.promote
    assert reverse.n_days == 7
    assert reverse.as_dict()["comparisons"][0]["metric"] == AP
