"""``python -m vigil.train``: train, evaluate and export one model (same as ``vigil train``)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from vigil.cli.common import allow_mlflow_file_store
from vigil.config import DEFAULT_CONFIG_PATH, ConfigError, load_settings
from vigil.logs import configure_logging

logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m vigil.train", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="YAML config")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting, e.g. train.lr=0.001 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=None, help="raw transactions file or dir")
    parser.add_argument("--promote", action="store_true", help="also write inference.model_path")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse arguments, configure logging, build settings, train."""
    args = parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        settings = load_settings(args.config, args.overrides, environ=os.environ)
    except ConfigError as error:
        logger.error("configuration error: %s", error)
        raise SystemExit(2) from None
    allow_mlflow_file_store(settings, os.environ)
    try:
        from vigil.training.run import train  # torch: imported once the settings are valid

        train(settings, args.data, args.promote)
    except (ValueError, RuntimeError, OSError) as error:
        logger.error("training failed: %s", error)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
