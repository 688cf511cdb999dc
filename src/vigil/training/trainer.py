"""The MLP training loop: weighted BCE, mini-batches, early stopping on validation AP."""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vigil.config import ModelConfig, TrainConfig
from vigil.fraud_metrics import average_precision
from vigil.models.mlp import FraudMLP
from vigil.training.stream import ParquetRows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch achieved."""

    epoch: int
    train_loss: float
    validation_loss: float
    validation_average_precision: float


@dataclass(frozen=True)
class Dataset:
    """Raw features (float32 [N, F]) and labels (0/1 [N])."""

    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.features) != len(self.labels):
            raise ValueError("features and labels differ in length")
        if self.labels.min() == self.labels.max():
            raise ValueError(f"need frauds and genuine rows, got only label {self.labels[0]}")

    def __len__(self) -> int:
        return len(self.labels)


# What a fit reads: rows in memory, or streamed from the feature Parquet (issue 15 item 3).
TrainingRows: TypeAlias = Dataset | ParquetRows


def feature_means(train: TrainingRows) -> np.ndarray:
    """Mean of each raw feature over the training rows (float64)."""
    if isinstance(train, ParquetRows):
        return train.moments()[0]
    return np.asarray(train.features.mean(axis=0, dtype=np.float64))


def reason_baseline(train: TrainingRows) -> np.ndarray | None:
    """A typical genuine payment: the per-feature median of the genuine (label 0) training
    rows (float64), the reason codes' baseline (:func:`vigil.inference.decision.decide`).

    The means are no such payment where features are mostly-zero heavy-tailed counts (known
    frauds, verdicts): a model can score its own mean row as fraud, and occluding toward it
    then explains nothing. The median of genuine rows is a value real payments take.

    None for streamed rows (:class:`ParquetRows`): an exact median needs every genuine row in
    memory, which is what streaming avoids; a sampled median would be an approximation with
    its own sample-size choice and an extra pass over the file. Such models keep the training
    means as baseline (as models written before this field do).
    """
    if isinstance(train, ParquetRows):
        return None
    genuine = train.features[train.labels == 0]
    return np.median(genuine, axis=0).astype(np.float64)


def seed_everything(seed: int) -> None:
    """Fix every random source the training touches (same config + data -> same model)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def epoch_order(labels: np.ndarray, undersample: bool, rng: np.random.Generator) -> np.ndarray:
    """Row order for one epoch: all rows shuffled, or all frauds plus as many genuine rows."""
    if not undersample:
        return rng.permutation(len(labels))
    frauds = np.flatnonzero(labels == 1)
    genuine = rng.choice(np.flatnonzero(labels == 0), size=len(frauds), replace=False)
    return rng.permutation(np.r_[frauds, genuine])


def epoch_batches(
    train: TrainingRows, batch_size: int, undersample: bool, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (features, float labels) mini-batches, in memory or streamed."""
    if isinstance(train, ParquetRows):
        if undersample:
            raise ValueError("streamed training cannot undersample: use class_weighting balanced")
        for features, labels in train.batches(batch_size, rng):
            yield torch.from_numpy(features), torch.from_numpy(labels.astype(np.float32))
        return
    all_features = torch.from_numpy(train.features)
    all_labels = torch.from_numpy(train.labels.astype(np.float32))
    order = epoch_order(train.labels, undersample, rng)
    for start in range(0, len(order), batch_size):
        index = torch.from_numpy(order[start : start + batch_size])
        yield all_features[index], all_labels[index]


def _loss_function(labels: np.ndarray, weighting: str) -> nn.BCEWithLogitsLoss:
    if weighting != "balanced":
        return nn.BCEWithLogitsLoss()
    n_fraud = float(labels.sum())
    # pos_weight = genuine / fraud makes both classes weigh the same in the loss.
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(labels) - n_fraud) / n_fraud))


def _train_epoch(
    model: FraudMLP,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
) -> float:
    model.train()
    total, seen = 0.0, 0
    for features, labels in tqdm(
        batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None
    ):
        if len(labels) < 2 and model_has_batchnorm(model):
            continue  # BatchNorm cannot normalise a batch of one
        optimizer.zero_grad()
        loss = loss_fn(model(features), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
        seen += len(labels)
    return total / max(seen, 1)


def model_has_batchnorm(model: nn.Module) -> bool:
    """Whether any layer is a BatchNorm (which needs batches of two or more)."""
    return any(isinstance(m, nn.BatchNorm1d) for m in model.modules())


@torch.no_grad()
def _evaluate(model: FraudMLP, data: Dataset, loss_fn: nn.Module) -> tuple[float, float]:
    model.eval()
    logits = model(torch.from_numpy(data.features))
    loss = float(loss_fn(logits, torch.from_numpy(data.labels.astype(np.float32))))
    return loss, average_precision(data.labels, torch.sigmoid(logits).numpy())


def train_mlp(
    train: TrainingRows,
    validation: Dataset,
    model_config: ModelConfig,
    config: TrainConfig,
    tensorboard_dir: Path | None = None,
    initial: FraudMLP | None = None,
    log_features: list[int] | None = None,
) -> tuple[FraudMLP, list[EpochRecord]]:
    """Fit the MLP; returns the best model by validation AP and the per-epoch history.

    ``log_features``: input positions the model takes as ``log1p`` (heavy-tailed counts,
    :func:`vigil.features.definitions.log_scaled_feature_indices`); the scaler is fitted
    after that transform, and both travel inside the model.

    ``initial`` warm-starts: training continues from a copy of that model, its scaler kept
    (the weights were learnt on that scaling), instead of a fresh network. ``train`` may be
    streamed (:class:`ParquetRows`): the scaler then comes from one pass of float64 sums.
    """
    from torch.utils.tensorboard import SummaryWriter

    seed_everything(config.seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    rng = np.random.default_rng(config.seed)
    if initial is not None:
        model = copy.deepcopy(initial).train()
    elif isinstance(train, ParquetRows):
        if model_config.numeric_encoding != "none":
            # Quantile edges need the rows at once; the streamed fit has only running sums.
            raise ValueError("streamed training fits the MLP with model.numeric_encoding none")
        model = FraudMLP.from_config(model_config, len(train.features), log_features)
        model.set_scaler(*train.moments(model.log_scale))
    else:
        model = FraudMLP.from_config(model_config, train.features.shape[1], log_features)
        model.fit_scaler(train.features)
    labels = train.labels() if isinstance(train, ParquetRows) else train.labels
    loss_fn = _loss_function(labels, config.class_weighting)
    del labels
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    writer = SummaryWriter(str(tensorboard_dir)) if tensorboard_dir else None
    history: list[EpochRecord] = []
    best_ap, best_state, stale = -1.0, copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, config.epochs + 1):
        undersample = config.class_weighting == "undersample"
        batches = epoch_batches(train, config.batch_size, undersample, rng)
        train_loss = _train_epoch(model, batches, loss_fn, optimizer, epoch)
        val_loss, val_ap = _evaluate(model, validation, loss_fn)
        history.append(EpochRecord(epoch, train_loss, val_loss, val_ap))
        logger.debug("epoch %d: loss %.4f, val loss %.4f, val AP %.4f", *vars(history[-1]).values())
        if writer:
            writer.add_scalar("loss/train", train_loss, epoch)
            writer.add_scalar("loss/validation", val_loss, epoch)
            writer.add_scalar("average_precision/validation", val_ap, epoch)
        if val_ap > best_ap:
            best_ap, best_state, stale = val_ap, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.early_stopping_patience:
                logger.info("early stopping after epoch %d (patience %d)", epoch, stale)
                break
    if writer:
        writer.close()
    model.load_state_dict(best_state)
    best = max(history, key=lambda r: r.validation_average_precision)
    logger.info("best epoch %d: validation AP %.4f", best.epoch, best_ap)
    return model.eval(), history
