"""The retrain job: train with the training entry point, serve only what the gate promotes."""

from __future__ import annotations

import dagster as dg
import pytest

from vigil.config import Settings, build_settings, settings_to_dict
from vigil.data.simulate import generate
from vigil.inference.roles import CHALLENGER, CHAMPION
from vigil.pipelines.definitions import RETRAIN_JOB, build_definitions
from vigil.storage import create_db_engine, list_deployments, upgrade_database
from vigil.tracking.model_registry import ModelRegistry

pytestmark = pytest.mark.slow

AS_OF = "2018-05-15"  # test period May 9-15, training April 25 - May 1


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, object]:
    event = result.asset_materializations_for_node(node)[0]
    return {key: value.value for key, value in event.metadata.items()}


def test_first_model_is_installed_and_recorded_and_an_identical_one_is_not_promoted(
    small_settings: Settings,
) -> None:
    tree = settings_to_dict(small_settings)
    settings = build_settings(tree, [("train.history_days", 0), ("train.epochs", 2)])
    generate(settings.data, settings.data.raw_dir, progress=False)
    upgrade_database(settings.storage.database_url)
    job = build_definitions(settings).resolve_job_def(RETRAIN_JOB)
    run_config = {"ops": {"challenger_model": {"config": {"as_of": AS_OF}}}}

    first = job.execute_in_process(run_config=run_config)
    assert first.success
    assert metadata(first, "serving_model")["promoted"] is True
    served = settings.inference.model_path.read_bytes()

    # Same data, same seed: the same model again, so the gate finds no significant gain.
    second = job.execute_in_process(run_config=run_config)
    assert second.success
    verdict = metadata(second, "serving_model")
    assert verdict["promoted"] is False
    assert "not significant" in str(verdict["reason"])
    assert settings.inference.model_path.read_bytes() == served
    # One deployment recorded, for the first model only: serving processes follow that table.
    with create_db_engine(settings.storage.database_url).connect() as connection:
        deployments = list_deployments(connection)
    assert [(d.alias, d.model_path) for d in deployments] == [
        ("champion", str(settings.inference.model_path))
    ]
    # Both runs are registered; the registry's champion is the one serving, v2 only challenges.
    registry = ModelRegistry(settings.tracking)
    assert [v.version for v in registry.versions()] == [2, 1]
    champion, challenger = registry.by_alias(CHAMPION), registry.by_alias(CHALLENGER)
    assert champion is not None and champion.version == 1
    assert challenger is not None and challenger.version == 2
    assert metadata(first, "challenger_model")["registry_version"] == 1
