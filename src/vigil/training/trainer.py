"""The MLP training loop: weighted BCE, mini-batches, early stopping on validation AP."""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vigil.config import ModelConfig, TrainConfig
from vigil.fraud_metrics import average_precision
from vigil.models.mlp import FraudMLP

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


def _loss_function(labels: np.ndarray, weighting: str) -> nn.BCEWithLogitsLoss:
    if weighting != "balanced":
        return nn.BCEWithLogitsLoss()
    n_fraud = float(labels.sum())
    # pos_weight = genuine / fraud makes both classes weigh the same in the loss.
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(labels) - n_fraud) / n_fraud))


def _train_epoch(
    model: FraudMLP,
    data: Dataset,
    order: np.ndarray,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
) -> float:
    model.train()
    features = torch.from_numpy(data.features)
    labels = torch.from_numpy(data.labels.astype(np.float32))
    total, seen = 0.0, 0
    starts = range(0, len(order), config.batch_size)
    for start in tqdm(starts, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None):
        index = torch.from_numpy(order[start : start + config.batch_size])
        if len(index) < 2 and model_has_batchnorm(model):
            continue  # BatchNorm cannot normalise a batch of one
        optimizer.zero_grad()
        loss = loss_fn(model(features[index]), labels[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
        seen += len(index)
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
    train: Dataset,
    validation: Dataset,
    model_config: ModelConfig,
    config: TrainConfig,
    tensorboard_dir: Path | None = None,
    initial: FraudMLP | None = None,
) -> tuple[FraudMLP, list[EpochRecord]]:
    """Fit the MLP; returns the best model by validation AP and the per-epoch history.

    ``initial`` warm-starts: training continues from a copy of that model, its scaler kept
    (the weights were learnt on that scaling), instead of a fresh network.
    """
    from torch.utils.tensorboard import SummaryWriter

    seed_everything(config.seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    rng = np.random.default_rng(config.seed)
    if initial is None:
        model = FraudMLP.from_config(model_config, n_features=train.features.shape[1])
        model.fit_scaler(train.features)
    else:
        model = copy.deepcopy(initial).train()
    loss_fn = _loss_function(train.labels, config.class_weighting)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    writer = SummaryWriter(str(tensorboard_dir)) if tensorboard_dir else None
    history: list[EpochRecord] = []
    best_ap, best_state, stale = -1.0, copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, config.epochs + 1):
        order = epoch_order(train.labels, config.class_weighting == "undersample", rng)
        train_loss = _train_epoch(model, train, order, loss_fn, optimizer, config, epoch)
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
