"""The ``vigil`` command itself: version, help that shows flags as flags, one option style."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import vigil
from api_support import write_model
from vigil.cli import app
from vigil.config import build_settings

COMMANDS = [
    ["config"],
    ["generate"],
    ["validate"],
    ["features"],
    ["warm-state"],
    ["train"],
    ["predict"],
    ["serve"],
    ["worker"],
    ["replay"],
    ["dashboards"],
    ["registry", "show"],
    ["stage", "evaluate"],
    ["pipelines", "run"],
    ["db", "upgrade"],
]


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vigil {vigil.__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_flags_as_flags_and_kebab_case_options(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    if command != ["dashboards"]:
        assert "-v, --verbose   " in result.output  # a flag: no metavar after it
    # snake_case options exist only as the seed's aliases --input_path / --output_path
    options = {word for word in result.output.split() if word.startswith("--")}
    snake = {o.rstrip(",") for o in options if "_" in o}
    assert snake <= {"--input_path", "--output_path"}, snake


def test_output_options_share_one_name() -> None:
    for command in (["generate"], ["dashboards"], ["stage", "evaluate"], ["predict"], ["features"]):
        result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
        assert "-o, --output" in result.output, (command, result.output)


def test_serve_start_up_failure_is_one_line_with_cause_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "none.onnx"
    result = CliRunner().invoke(app, ["serve", "--set", f"inference.model_path={missing}"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert f"model file {missing} does not exist" in lines[0]
    assert "Fix: run `make demo` or `vigil train --promote`" in lines[0]


def test_serve_names_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    model = write_model(build_settings({}), tmp_path / "model.onnx", "m")
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--set",
            f"inference.model_path={model}",
            "--set",
            "storage.database_url=postgresql+psycopg://nobody:secret@127.0.0.1:1/x",
        ],
    )
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "database postgresql+psycopg://nobody:***@127.0.0.1:1/x unreachable" in line
    assert "secret" not in result.output
    assert "Fix: start it, or set storage.database_url" in line


def test_serve_names_an_unreachable_state_store_without_its_password(tmp_path: Path) -> None:
    model = write_model(build_settings({}), tmp_path / "model.onnx", "m")
    state = "storage.state_url=redis://:hunter2@127.0.0.1:1/0"
    result = CliRunner().invoke(
        app, ["serve", "--set", f"inference.model_path={model}", "--set", state]
    )
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "state store redis://:**********@127.0.0.1:1/0 unreachable" in line
    assert "hunter2" not in result.output
