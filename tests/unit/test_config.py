"""Configuration: file + VIGIL_* environment + --set, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import ConfigError, load_settings

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
