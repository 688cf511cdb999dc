"""``vigil ui`` launches Streamlit on the packaged app with the settings as script arguments;
the UI's API client parses the API's documented answers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from onnx_factory import make_metadata
from vigil.cli import app, ui_commands
from vigil.serving.schemas import Transaction
from vigil.ui.client import ApiClient, ApiError
from vigil.ui.options import parse_args

TX = Transaction(
    transaction_id=5,
    tx_datetime="2018-04-02T03:30:00",
    customer_id=7,
    terminal_id=3,
    tx_amount=300.0,
)


def test_vigil_ui_runs_streamlit_on_the_packaged_app_and_forwards_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("inference:\n  model_path: /models/m.onnx\n")
    launched: list[list[str]] = []

    def fake_execv(path: str, command: list[str]) -> None:
        assert path == command[0] == sys.executable
        launched.append(command)

    monkeypatch.setattr(os, "execv", fake_execv)
    result = CliRunner().invoke(
        app,
        ["ui", "-c", str(config), "--set", "serving.port=8100", "--port", "8600",
         "--api-url", "http://api:8000"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (command,) = launched
    split = command.index("--")
    streamlit, script = command[:split], command[split + 1 :]
    assert streamlit[1:4] == ["-m", "streamlit", "run"]
    assert Path(streamlit[4]) == Path(ui_commands.__file__).parents[1] / "ui" / "app.py"
    assert streamlit[streamlit.index("--server.port") + 1] == "8600"
    assert streamlit[streamlit.index("--server.headless") + 1] == "true"
    options = parse_args(script, environ={})
    assert options.settings.inference.model_path == Path("/models/m.onnx")
    assert options.settings.serving.port == 8100
    assert options.api_url == "http://api:8000"


def test_vigil_ui_rejects_a_bad_configuration_before_launching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("launched"))
    result = CliRunner().invoke(app, ["ui", "--set", "serving.port=0"])
    assert result.exit_code == 2
    assert "serving.port" in result.output


def mock_client(status: int, body: Any) -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert json.loads(request.content)["tx_amount"] == 300.0
        return httpx.Response(status, json=body)

    http = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    return ApiClient(http, "the API at http://api")


def test_client_turns_the_predict_answer_into_a_decision() -> None:
    body = {
        "transaction_id": 5,
        "score": 0.95,
        "label": 1,
        "threshold": 0.5,
        "reason_codes": [{"feature": "tx_amount", "contribution": 0.8}],
        "model_version": "m-1",
    }
    decision = mock_client(200, body).predict(TX)
    assert (decision.transaction_id, decision.score, decision.label) == (5, 0.95, 1)
    assert decision.reason_codes[0].feature == "tx_amount"
    assert decision.model_version == "m-1"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (422, {"detail": "tx_amount"}, "POST /predict answered 422"),
        (200, {"score": "high"}, "/predict answered an unexpected body"),
    ],
)
def test_client_reports_api_errors_clearly(status: int, body: Any, message: str) -> None:
    with pytest.raises(ApiError, match=message):
        mock_client(status, body).predict(TX)


def test_client_reads_the_serving_models_metadata() -> None:
    champion = make_metadata(["tx_amount"], model_version="m-2").model_dump(mode="json")
    served = mock_client(200, {"champion": champion, "challenger": None}).metadata()
    assert served.champion.model_version == "m-2" and served.challenger is None
