"""Secrets (API key, connection URLs) are masked in every dump and refused when left default."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from vigil.cli import app, serve_commands
from vigil.config import (
    Settings,
    build_settings,
    load_settings,
    secret_environment,
    settings_to_dict,
    write_settings,
)
from vigil.redaction import MASK, mask_url
from vigil.retraining.job import child_environment

SECRET_ENV = {
    "VIGIL_SERVING__API_KEY": "s3cr3t-api-key",
    "VIGIL_STORAGE__DATABASE_URL": "postgresql+psycopg://vigil:db-pass-123@db:5432/vigil",
    "VIGIL_STORAGE__STATE_URL": "redis://:redis-pass@redis:6379/0",
    "VIGIL_BROKER__URL": "amqp://vigil:mq-pass-456@rabbitmq:5672/",
    "VIGIL_TRACKING__MLFLOW_URI": "postgresql://ml:ml-pass@db/mlflow",
}
PASSWORDS = ["s3cr3t-api-key", "db-pass-123", "redis-pass", "mq-pass-456", "ml-pass"]


@pytest.fixture
def secret_settings() -> Settings:
    return load_settings(None, environ=SECRET_ENV)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@h:5432/db", f"postgresql+psycopg://u:{MASK}@h:5432/db"),
        ("redis://:pw@h:6379/0", f"redis://:{MASK}@h:6379/0"),
        ("sqlite:///data/vigil.db", "sqlite:///data/vigil.db"),
        ("memory://", "memory://"),
        ("http://mlflow:5000", "http://mlflow:5000"),
    ],
)
def test_urls_lose_only_their_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_dumps_mask_every_secret_and_hand_overs_keep_them(secret_settings: Settings) -> None:
    shown = json.dumps(settings_to_dict(secret_settings))
    assert not [p for p in PASSWORDS if p in shown]
    assert settings_to_dict(secret_settings)["serving"]["api_key"] == MASK
    kept = build_settings(settings_to_dict(secret_settings, secrets=True))
    assert kept == secret_settings
    assert secret_settings.serving.api_key.get_secret_value() == "s3cr3t-api-key"
    assert "s3cr3t" not in repr(secret_settings) and "s3cr3t" not in str(secret_settings)


def test_vigil_config_prints_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["config", "--config", "configs/vigil.yaml"])
    assert result.exit_code == 0, result.output
    assert not [p for p in PASSWORDS if p in result.output]
    assert MASK in result.output


def test_run_config_is_private_masked_and_reloads_with_the_child_environment(
    secret_settings: Settings, tmp_path: Path
) -> None:
    path = write_settings(tmp_path / "config.yaml", secret_settings)
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in PASSWORDS if p in path.read_text()]
    inherited = {"PATH": "/usr/bin", "VIGIL_TRAIN__RUNS_DIR": "/elsewhere"}
    environment = child_environment(secret_settings, inherited)
    assert "VIGIL_TRAIN__RUNS_DIR" not in environment and environment["PATH"] == "/usr/bin"
    assert load_settings(path, environ=environment) == secret_settings
    assert set(secret_environment(secret_settings)) == set(SECRET_ENV)


def test_numeric_looking_key_survives_the_hand_over(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"VIGIL_SERVING__API_KEY": "'0123'"})
    environment = child_environment(settings, {})
    path = write_settings(tmp_path / "config.yaml", settings)
    assert load_settings(path, environ=environment).serving.api_key.get_secret_value() == "0123"


@pytest.mark.parametrize(
    ("key", "flag", "starts"),
    [("change-me", [], False), ("   ", [], False), ("change-me", ["--insecure-dev-key"], True),
     ("a-real-secret", [], True)],
)  # fmt: skip
def test_serve_refuses_the_default_or_a_blank_key(
    monkeypatch: pytest.MonkeyPatch, key: str, flag: list[str], starts: bool
) -> None:
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app_, **options: started.append(app_))
    monkeypatch.setattr(serve_commands, "_install_request_id_filter", lambda: None)
    monkeypatch.setattr(serve_commands, "_preflight", lambda settings: None)
    monkeypatch.setenv("VIGIL_SERVING__API_KEY", key)
    monkeypatch.setattr("vigil.serving.create_app", lambda settings, **_: SimpleNamespace())
    monkeypatch.setattr("vigil.serving.direct.direct_protocol", lambda app_: "httptools")
    result = CliRunner().invoke(app, ["serve", "--config", "configs/vigil.yaml", *flag])
    assert bool(started) is starts, result.output
    if not starts:
        assert result.exit_code != 0 and "api_key" in result.output
