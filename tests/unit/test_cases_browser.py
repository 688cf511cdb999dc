"""The analyst's loop in a real browser: Chromium (Playwright) drives ``vigil ui``'s Cases page
against a running API. It opens the queue, gives a verdict in one click, and sees the card's
next transaction scored with the new risk: the verdict features (on in the API's settings)
raise its score and name themselves in its reason codes, and the case shows the terminal's
confirmed fraud run."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_support import API_KEY, api_settings, serve_in_thread
from onnx_factory import logistic_model, make_metadata, save
from vigil.child_env import child_environment
from vigil.cli.ui_commands import streamlit_command
from vigil.config import Settings
from vigil.features import InMemoryStateStore, feature_names
from vigil.inference.manager import ModelManager
from vigil.reports.browser import CHROMIUM, chromium, free_port, server
from vigil.serving import create_app
from vigil.ui.options import script_args

KEY = {"X-API-Key": API_KEY}
CARD, TERMINAL = 42, 7
# (transaction id, card, terminal, time, amount): card 42 tops the day's queue
SEEDED = [
    (1, CARD, TERMINAL, "2018-09-30T10:00:00", 250.0),
    (2, 43, 8, "2018-09-30T09:00:00", 90.0),
    (3, 44, 9, "2018-09-30T08:00:00", 40.0),
]
NEXT = (4, CARD, TERMINAL, "2018-09-30T11:00:00", 60.0)  # after the review (10:00)


def _model(settings: Settings, path: Path) -> Path:
    """Score grows with the amount and with the verdict-based risk features, when served."""
    names = feature_names(settings.features)
    weights = [0.02 if name == "tx_amount" else 0.5 if "verdict" in name else 0.0 for name in names]
    metadata = make_metadata(names, threshold=0.5, model_version="cases-browser")
    return save(logistic_model(weights, -3.0, metadata), path)


def served_settings(small_settings: Settings) -> Settings:
    """The API's settings: the verdict features on, every read ranks afresh."""
    settings = api_settings(small_settings)
    return settings.model_copy(
        update={
            "cases": settings.cases.model_copy(
                update={"ranking_refresh_seconds": 0.0, "queue_refresh_seconds": 0.0}
            ),
            "features": settings.features.model_copy(update={"verdicts": True}),
        }
    )


@pytest.fixture
def api(small_settings: Settings, tmp_path: Path) -> Iterator[str]:
    settings = served_settings(small_settings)
    model = _model(settings, tmp_path / "model.onnx")
    manager = ModelManager.from_paths(model, available_features=feature_names(settings.features))
    app = create_app(settings, model_manager=manager, state_store=InMemoryStateStore())
    with serve_in_thread(app) as url:
        for seeded in SEEDED:
            _pay(url, seeded)
        yield url


@pytest.fixture
def ui(api: str, tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "ui.yaml"
    config.write_text("{}\n")
    port = free_port()
    arguments = script_args(config, [f"serving.api_key={API_KEY}"], api)
    command = streamlit_command(arguments, port, "127.0.0.1", headless=True)
    url = f"http://127.0.0.1:{port}"
    environment = child_environment(None, os.environ)  # its configuration: the flags only
    with server(command, f"{url}/_stcore/health", tmp_path / "ui.log", environment):
        yield url


def _pay(api: str, payment: tuple[int, int, int, str, float]) -> dict[str, object]:
    """``POST /predict`` of one payment; its decision."""
    tid, card, terminal, moment, amount = payment
    body = {
        "transaction_id": tid,
        "tx_datetime": moment,
        "customer_id": card,
        "terminal_id": terminal,
        "tx_amount": amount,
    }
    response = httpx.post(f"{api}/predict", json=body)
    assert response.status_code == 200, response.text
    decision: dict[str, object] = response.json()
    return decision


def test_an_analyst_opens_the_queue_gives_a_verdict_and_sees_the_next_transaction(
    api: str, ui: str, small_settings: Settings
) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing")
    assert sys.executable  # the UI runs under this interpreter (streamlit_command)
    with chromium() as page:
        page.goto(f"{ui}/?page=cases")
        page.get_by_text(f"Card {CARD} (#1", exact=False).wait_for(timeout=60_000)
        page.get_by_label("Analyst").fill("ana")
        page.get_by_label("Analyst").press("Enter")
        page.get_by_role("button", name="Fraud, terminal compromised [t]").click()
        page.get_by_text(f"Card {CARD}: 1 transaction(s) labelled fraud").wait_for(timeout=30_000)
        # the verdict moved the analyst on to the next open case
        page.get_by_text("Card 43 (#2", exact=False).wait_for(timeout=30_000)
        case = httpx.get(f"{api}/cases/{CARD}", headers=KEY).json()
        assert (case["status"], case["verdict"]) == ("reviewed", "fraud")

        decision = _pay(api, NEXT)  # the card pays again, at the same terminal
        page.goto(f"{ui}/?page=cases")  # the card is open again: its new payment is unreviewed
        header = page.get_by_text(f"Card {CARD} (#1", exact=False)
        header.wait_for(timeout=60_000)
        row = page.locator("table tr", has_text=str(NEXT[0])).filter(has_text=str(TERMINAL))
        row.first.wait_for(timeout=30_000)
        cells = row.first.locator("td").all_inner_texts()
        score = float(decision["score"])  # type: ignore[arg-type]
        # time, transaction, terminal, amount, x habit, score, flagged, reasons, terminal
        # frauds, terminal compromised, verdict
        assert cells[1:4] == [str(NEXT[0]), str(TERMINAL), f"{NEXT[4]:.2f}"], cells
        assert cells[5] == f"{score:.4f}", cells
        # the terminal's fraud run now counts the confirmed fraud, marked compromised
        assert (cells[8], cells[9], cells[10].strip()) == ("1", "yes", ""), cells
        # the new risk: the verdict features raised the score (amount alone: 0.142), and say so
        assert score > 1 / (1 + math.exp(-(0.02 * NEXT[4] - 3.0))) + 0.3, decision
        names = feature_names(served_settings(small_settings).features)
        assert any("verdict" in name for name in names)
        codes: list[dict[str, object]] = decision["reason_codes"]  # type: ignore[assignment]
        reasons = [str(code["feature"]) for code in codes]
        assert any("verdict" in reason for reason in reasons), codes
        assert cells[7] == ", ".join(reasons), cells  # the case shows those reasons
