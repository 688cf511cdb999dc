"""The UI's script arguments: ``vigil ui`` builds them, the Streamlit script parses them.

Streamlit runs ``app.py`` in its own process, so the settings travel as the arguments after
``streamlit run app.py --``: the configuration file, ``--set`` overrides and the API URL.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vigil.config import DEFAULT_CONFIG_PATH, Settings, load_settings


@dataclass(frozen=True)
class UiOptions:
    """What every page needs: the settings and, when scoring through the API, its base URL."""

    settings: Settings
    api_url: str | None = None


def script_args(
    config: Path, overrides: Sequence[str] = (), api_url: str | None = None
) -> list[str]:
    """The arguments ``vigil ui`` passes to the Streamlit script (inverse of ``parse_args``)."""
    args = ["--config", str(config)]
    for item in overrides:
        args += ["--set", item]
    if api_url:
        args += ["--api-url", api_url]
    return args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigil-ui", add_help=False)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--api-url", default=None)
    return parser


def parse_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> UiOptions:
    """Settings (YAML, ``VIGIL_*`` env, ``--set``) and API URL from the script arguments."""
    namespace, _ = _parser().parse_known_args(list(argv))
    settings = load_settings(
        namespace.config, namespace.overrides, environ=os.environ if environ is None else environ
    )
    api_url = namespace.api_url.rstrip("/") if namespace.api_url else None
    return UiOptions(settings=settings, api_url=api_url)
