"""``python -m vigil.train``: train, evaluate and export one model (same as ``vigil train``)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from vigil.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings
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


def train(settings: Settings, data: Path | None = None, promote: bool = False) -> Path:
    """Load features, run one training run; returns the run directory."""
    from vigil.training.data import load_feature_table
    from vigil.training.run import run_training

    table = load_feature_table(settings, data)
    result = run_training(settings, table, promote=promote)
    test = result.metrics["test"]
    logger.info(
        "run %s: test AUC ROC %.4f, AP %.4f, CP@%d %.4f, threshold %.4f",
        result.run_dir.name,
        test["auc_roc"],
        test["average_precision"],
        settings.train.top_k_cards,
        test["card_precision_at_k"],
        result.metrics["threshold"],
    )
    return result.run_dir


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse arguments, configure logging, build settings, train."""
    args = parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        settings = load_settings(args.config, args.overrides, environ=os.environ)
    except ConfigError as error:
        logger.error("configuration error: %s", error)
        raise SystemExit(2) from None
    try:
        train(settings, args.data, args.promote)
    except (ValueError, RuntimeError, OSError) as error:
        logger.error("training failed: %s", error)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
