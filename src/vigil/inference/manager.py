"""The serving model holder: a champion, an optional challenger, and atomic hot swaps.

Readers call :meth:`ModelManager.snapshot` once per request and use only that snapshot, so
an answer always names the model that produced it. A swap loads and warms the new model
beside the old one, then publishes it with a single reference assignment: requests in
flight finish on the old scorer, later ones get the new one, none fails.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vigil.config import InferenceConfig
from vigil.inference.decision import validate_scores
from vigil.inference.errors import ModelLoadError, ModelScoringError
from vigil.inference.scorer import OnnxScorer

logger = logging.getLogger(__name__)

ScorerLoader = Callable[[Path, int], OnnxScorer]
"""Loads a model file with a number of intra-op threads: ``OnnxScorer.load`` or a backend's."""


def scorer_loader(config: InferenceConfig) -> ScorerLoader:
    """How ``inference.backend`` loads a model: in-process ONNX Runtime, or through Triton."""
    if config.backend == "triton":
        from vigil.inference.triton import TritonScorer

        return functools.partial(TritonScorer.load_from, config=config.triton)
    return OnnxScorer.load


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """The models serving at one instant; immutable, so safe to hold for a whole request."""

    champion: OnnxScorer
    challenger: OnnxScorer | None = None


class ModelManager:
    """Holds the current snapshot and replaces it atomically."""

    def __init__(
        self,
        champion: OnnxScorer,
        challenger: OnnxScorer | None = None,
        intra_op_num_threads: int = 1,
        available_features: Collection[str] | None = None,
        loader: ScorerLoader = OnnxScorer.load,
    ) -> None:
        self._threads = intra_op_num_threads
        self._loader = loader
        self._available = frozenset(available_features) if available_features else None
        for scorer in (champion, challenger):
            if scorer is not None:
                self._check_features(scorer)
        self._snapshot = ModelSnapshot(champion, challenger)
        self._write_lock = threading.Lock()  # serialises writers; readers never wait

    @classmethod
    def from_paths(
        cls,
        champion_path: Path,
        challenger_path: Path | None = None,
        intra_op_num_threads: int = 1,
        available_features: Collection[str] | None = None,
        loader: ScorerLoader = OnnxScorer.load,
    ) -> ModelManager:
        """Load the champion (and challenger) from files with ``loader`` (the backend)."""
        champion = _load_warm(champion_path, intra_op_num_threads, loader)
        challenger = (
            _load_warm(challenger_path, intra_op_num_threads, loader) if challenger_path else None
        )
        return cls(champion, challenger, intra_op_num_threads, available_features, loader)

    def snapshot(self) -> ModelSnapshot:
        """The models to use for one request (take it once, use it throughout)."""
        return self._snapshot

    def deploy(self, path: Path) -> ModelSnapshot:
        """Load ``path`` as the new champion and swap it in; returns the previous snapshot."""
        scorer = self._load(path)
        with self._write_lock:
            previous = self._snapshot
            self._snapshot = replace(previous, champion=scorer)
        logger.info(
            "champion %s replaced by %s", previous.champion.model_version, scorer.model_version
        )
        return previous

    def set_challenger(self, path: Path | None) -> ModelSnapshot:
        """Load ``path`` as the shadow challenger (``None`` removes it); returns the previous."""
        scorer = self._load(path) if path is not None else None
        with self._write_lock:
            previous = self._snapshot
            self._snapshot = replace(previous, challenger=scorer)
        logger.info("challenger set to %s", scorer.model_version if scorer else None)
        return previous

    def _load(self, path: Path) -> OnnxScorer:
        scorer = _load_warm(path, self._threads, self._loader)
        self._check_features(scorer)
        return scorer

    def _check_features(self, scorer: OnnxScorer) -> None:
        if self._available is None:
            return
        missing = [f for f in scorer.feature_names if f not in self._available]
        if missing:
            raise ModelLoadError(
                f"model {scorer.model_version} needs feature(s) this service does not "
                f"compute: {missing}"
            )


def _load_warm(path: Path, intra_op_num_threads: int, loader: ScorerLoader) -> OnnxScorer:
    """Load a model and score its training means once, so it is proven and warm before use."""
    scorer = loader(path, intra_op_num_threads)
    means = np.asarray([scorer.metadata.feature_means], dtype=np.float32)
    try:
        validate_scores(scorer.score(means))
    except ModelScoringError as error:
        raise ModelLoadError(f"model file {path} fails a warm-up run: {error}") from error
    return scorer
