"""Child processes get the operating system's variables and their secrets, no configuration."""

from __future__ import annotations

from pydantic import SecretStr

from vigil.child_env import child_environment
from vigil.config import Settings

PARENT = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "LC_ALL": "C.UTF-8",
    "PYTHONPATH": "/src",
    "LD_LIBRARY_PATH": "/opt/cuda/lib64",
    "VIGIL_TRAIN__RUNS_DIR": "/elsewhere",
    "VIGIL_STORAGE__DATABASE_URL": "postgresql+psycopg://u:pw@prod/vigil",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    "FAKE_MODE": "fail",
}


def test_only_the_allow_list_is_inherited() -> None:
    environment = child_environment(None, PARENT, TERM="dumb")
    assert environment == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/src",
        "LD_LIBRARY_PATH": "/opt/cuda/lib64",
        "TERM": "dumb",
    }


def test_the_settings_secrets_are_handed_over_by_name(small_settings: Settings) -> None:
    serving = small_settings.serving.model_copy(update={"api_key": SecretStr("k-e-y")})
    settings = small_settings.model_copy(update={"serving": serving})
    environment = child_environment(settings, PARENT)
    assert environment["VIGIL_SERVING__API_KEY"] == "k-e-y"
    assert "VIGIL_TRAIN__RUNS_DIR" not in environment
    # a secret comes from the settings, never from the parent's variable of the same name
    assert environment["VIGIL_STORAGE__DATABASE_URL"] == settings.storage.database_url
    assert "AWS_SECRET_ACCESS_KEY" not in environment
