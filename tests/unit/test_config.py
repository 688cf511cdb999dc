"""Configuration: file + VIGIL_* environment + --set, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import ConfigError, load_settings, locate_config

REPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "vigil.yaml"


def test_repository_config_loads_with_every_section() -> None:
    settings = load_settings(REPO_CONFIG, environ={})
    assert settings.features.windows_days == [1, 7, 30]
    assert settings.features.label_delay_days == 7
    assert settings.data.n_customers == 5000
    assert settings.model.kind == "mlp"


def test_set_overrides_are_typed_and_win_over_environment() -> None:
    settings = load_settings(
        REPO_CONFIG,
        overrides=["train.lr=0.01", "model.hidden_sizes=[8, 4]"],
        environ={"VIGIL_TRAIN__LR": "0.5", "VIGIL_DATA__SEED": "7"},
    )
    assert settings.train.lr == pytest.approx(0.01)
    assert settings.model.hidden_sizes == [8, 4]
    assert settings.data.seed == 7


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.learning_rate=0.1", "train.learning_rate"),
        ("nonsense.key=1", "nonsense"),
        ("train.lr=-1", "train.lr"),
        ("model.kind=transformer", "model.kind"),
        ("data.drift.scenario=meteor", "data.drift.scenario"),
    ],
)
def test_unknown_key_or_bad_value_names_the_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(REPO_CONFIG, overrides=[override], environ={})


def test_malformed_override_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_settings(REPO_CONFIG, overrides=["train.lr"], environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_default_file_is_found_from_the_project_root_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_CONFIG.parents[1] / "docs")  # a subdirectory of the project
    assert load_settings(environ={}).train.history_days == 35  # the file's, not the default 0
    monkeypatch.chdir(tmp_path)  # outside it: the checkout Vigil is installed from
    assert locate_config({}) == REPO_CONFIG
    assert load_settings(environ={}).train.history_days == 35


def test_vigil_config_names_the_file_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    own = tmp_path / "own.yaml"
    own.write_text("train:\n  history_days: 3\n")
    assert load_settings(environ={"VIGIL_CONFIG": str(own)}).train.history_days == 3
    with pytest.raises(ConfigError, match=r"gone\.yaml \(from VIGIL_CONFIG\) does not exist"):
        load_settings(environ={"VIGIL_CONFIG": str(tmp_path / "gone.yaml")})


def test_nothing_found_is_an_error_naming_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vigil.config._SOURCE_ROOT", tmp_path / "site-packages")
    with pytest.raises(ConfigError, match=f"neither {tmp_path}") as raised:
        locate_config({}, cwd=tmp_path)
    assert "VIGIL_CONFIG" in str(raised.value)


def test_environment_values_are_typed_and_nested() -> None:
    settings = load_settings(
        REPO_CONFIG,
        environ={
            "VIGIL_BROKER__URL": "null",
            "VIGIL_FEATURES__WINDOWS_DAYS": "[1, 3]",
            "VIGIL_DATA__DRIFT__SCENARIO": "amount_inflation",
            "VIGIL_UNRELATED": "ignored: no section separator",
        },
    )
    assert settings.broker.url is None
    assert settings.features.windows_days == [1, 3]
    assert settings.data.drift.scenario == "amount_inflation"
    assert settings.data.drift.start_day == 120  # the file's value beside the overridden one
    with pytest.raises(ConfigError, match=r"unknown configuration key 'train\.speed'"):
        load_settings(REPO_CONFIG, environ={"VIGIL_TRAIN__SPEED": "1"})


def test_set_at_file_applies_a_partial_configuration_in_order(tmp_path: Path) -> None:
    dataset = tmp_path / "v2.yaml"
    dataset.write_text("data:\n  drift:\n    scenario: new_fraud_pattern\n    start_day: 60\n")
    settings = load_settings(
        REPO_CONFIG, overrides=[f"@{dataset}", "data.drift.start_day=30"], environ={}
    )
    assert settings.data.drift.scenario == "new_fraud_pattern"
    assert settings.data.drift.start_day == 30  # a later --set wins
    assert settings.data.n_customers == 5000  # the rest of the file untouched
    with pytest.raises(ConfigError, match=r"missing\.yaml .*does not exist"):
        load_settings(REPO_CONFIG, overrides=[f"@{tmp_path / 'missing.yaml'}"], environ={})
