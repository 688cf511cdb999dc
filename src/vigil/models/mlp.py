"""The fraud MLP: raw features in, fraud logit out, feature scaling carried inside.

Reads top to bottom: ``log1p`` on the inputs listed in ``log_features`` (heavy-tailed counts,
:func:`vigil.features.definitions.log_scaled_feature_names`; none for the 24 stream
features), a standard-scaler (buffers, so it travels in ``state_dict``, safetensors and the
ONNX graph), optionally the piecewise-linear encoding of each scaled input on quantile bin
edges of the training rows (``numeric_encoding="ple"``, Gorishniy et al. 2022; the edges are
a buffer too), then ``hidden_sizes`` blocks of
Linear -> normalisation -> activation -> dropout, then one Linear to a single logit.
``save_pretrained`` / ``from_pretrained`` come from ``PyTorchModelHubMixin``: the
constructor arguments go to ``config.json``, weights and scaler to ``model.safetensors``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from vigil.config import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def _normalization(kind: str, width: int) -> nn.Module:
    if kind == "batchnorm":
        return nn.BatchNorm1d(width)
    if kind == "layernorm":
        return nn.LayerNorm(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r} (none | batchnorm | layernorm)")


NUMERIC_ENCODINGS = ("none", "ple")


def quantile_edges(inputs: np.ndarray, bins: int) -> np.ndarray:
    """Per-column bin edges [F, bins + 1] at the quantiles 0, 1/bins, ..., 1 of ``inputs``.

    Repeated quantiles (a count that is mostly 0, a binary flag) are dropped and the row is
    padded at its end with its last edge: the padded bins have width 0 and encode to 0.
    """
    levels = np.linspace(0.0, 1.0, bins + 1)
    edges = np.empty((inputs.shape[1], bins + 1))
    for column in range(inputs.shape[1]):
        unique = np.unique(np.quantile(inputs[:, column].astype(np.float64), levels))
        edges[column] = np.r_[unique, np.full(bins + 1 - len(unique), unique[-1])]
    return edges


class FraudMLP(nn.Module, PyTorchModelHubMixin, library_name="vigil", tags=["fraud-detection"]):
    """Feed-forward fraud scorer on raw features (scaling inside)."""

    feature_mean: torch.Tensor
    feature_scale: torch.Tensor
    log_mask: torch.Tensor
    encoding_edges: torch.Tensor

    def __init__(
        self,
        n_features: int,
        hidden_sizes: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
        normalization: str = "none",
        log_features: list[int] | None = None,
        numeric_encoding: str = "none",
        encoding_bins: int = 8,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} ({' | '.join(ACTIVATIONS)})")
        if numeric_encoding not in NUMERIC_ENCODINGS:
            raise ValueError(
                f"unknown numeric_encoding {numeric_encoding!r} ({' | '.join(NUMERIC_ENCODINGS)})"
            )
        if encoding_bins < 2:
            raise ValueError(f"encoding_bins must be 2 or more, got {encoding_bins}")
        self.numeric_encoding = numeric_encoding
        self.encoding_bins = encoding_bins
        # Counts whose tail a standard-scaler would leave at tens of deviations (a verdict
        # count of 24 at 30 sd, its informative 0 -> 1 step at 1 sd) enter as log1p(x).
        # Not in state_dict: it follows from the constructor arguments (config.json).
        self.log_features = sorted(set(log_features or []))
        if any(not 0 <= i < n_features for i in self.log_features):
            raise ValueError(f"log_features {self.log_features} outside 0..{n_features - 1}")
        mask = torch.zeros(n_features, dtype=torch.bool)
        mask[self.log_features] = True
        self.register_buffer("log_mask", mask, persistent=False)
        # Standard-scaler fitted on training rows: x_scaled = (x - mean) / scale.
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_scale", torch.ones(n_features))
        width = n_features
        if numeric_encoding == "ple":
            # Bin edges of each scaled input, fitted on training rows (fit_scaler); saved.
            self.register_buffer("encoding_edges", self._identity_edges(n_features, encoding_bins))
            width = n_features * encoding_bins
        layers: list[nn.Module] = []
        for hidden in hidden_sizes:
            layers += [
                nn.Linear(width, hidden),
                _normalization(normalization, hidden),
                ACTIVATIONS[activation](),
                nn.Dropout(dropout),
            ]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    @classmethod
    def from_config(
        cls, config: ModelConfig, n_features: int, log_features: list[int] | None = None
    ) -> FraudMLP:
        """Build the architecture the ``model`` section describes."""
        return cls(
            n_features=n_features,
            hidden_sizes=list(config.hidden_sizes),
            activation=config.activation,
            dropout=config.dropout,
            normalization=config.normalization,
            log_features=log_features,
            numeric_encoding=config.numeric_encoding,
            encoding_bins=config.encoding_bins,
        )

    @staticmethod
    def _identity_edges(n_features: int, bins: int) -> torch.Tensor:
        # Until fitted: equal bins over [-2, 2] scaled units for every input.
        return torch.linspace(-2.0, 2.0, bins + 1).repeat(n_features, 1)

    def log_scale(self, features: np.ndarray) -> np.ndarray:
        """Raw features [N, F] with ``log1p`` applied to the ``log_features`` columns."""
        if not self.log_features:
            return features
        return np.asarray(self._log_scale(torch.as_tensor(features)).numpy())

    def _log_scale(self, features: torch.Tensor) -> torch.Tensor:
        # Counts are >= 0; the clamp keeps a column that is not logged free of NaN.
        logged = torch.log1p(torch.clamp(features, min=0.0))
        return torch.where(self.log_mask, logged, features)

    def fit_scaler(self, features: np.ndarray) -> None:
        """Set the scaler, and the encoding's bin edges, from training rows (constant columns
        keep scale 1)."""
        inputs = self.log_scale(features)
        self.set_scaler(inputs.mean(axis=0), inputs.std(axis=0))
        if self.numeric_encoding == "ple":
            scaled = (inputs - self.feature_mean.numpy()) / self.feature_scale.numpy()
            self.set_edges(quantile_edges(scaled, self.encoding_bins))

    def set_edges(self, edges: np.ndarray) -> None:
        """Set the encoding's bin edges [n_features, encoding_bins + 1] (scaled units,
        non-decreasing along each row)."""
        if self.numeric_encoding != "ple":
            raise ValueError("set_edges needs numeric_encoding='ple'")
        tensor = torch.as_tensor(edges, dtype=torch.float32)
        if tensor.shape != self.encoding_edges.shape:
            raise ValueError(
                f"edges of shape {tuple(tensor.shape)}, need {tuple(self.encoding_edges.shape)}"
            )
        if bool((tensor.diff(dim=1) < 0).any()):
            raise ValueError("bin edges must be non-decreasing along each input")
        self.encoding_edges.copy_(tensor)

    def encode(self, scaled: torch.Tensor) -> torch.Tensor:
        """The numeric encoding of scaled inputs [batch, F]: themselves for ``none``, for
        ``ple`` the piecewise-linear code of :meth:`bins`, [batch, F * encoding_bins]."""
        if self.numeric_encoding == "none":
            return scaled
        return self.bins(scaled).flatten(1)

    def bins(self, scaled: torch.Tensor) -> torch.Tensor:
        """Piecewise-linear code [batch, F, encoding_bins] of scaled inputs [batch, F].

        Component t of an input x in bin edges e: 0 below e[t], 1 above e[t+1], linear
        between; the first bin extends below and the last bin above (the code stays
        continuous, monotone, and informative outside the training range). Bins of width 0
        (repeated quantiles) give 0.
        """
        lower = self.encoding_edges[:, :-1]
        width = self.encoding_edges[:, 1:] - lower
        active = width > 0
        after = torch.cat([active[:, 1:], torch.zeros_like(active[:, :1])], dim=1)
        last = active & ~after
        first = torch.arange(self.encoding_bins) == 0
        position = (scaled.unsqueeze(-1) - lower) / torch.where(active, width, 1.0)
        floor = torch.where(first, -math.inf, 0.0).expand_as(width)
        ceiling = torch.where(last, math.inf, 1.0)
        encoded = torch.minimum(torch.maximum(position, floor), ceiling)
        return torch.where(active, encoded, 0.0)

    def set_scaler(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Set the scaler from per-feature mean and standard deviation (0 counts as 1)."""
        scale = np.where(std == 0, 1.0, std)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features [batch, n_features] -> fraud logits [batch]."""
        if self.log_features:  # fixed per model: the exported graph has the branch taken
            features = self._log_scale(features)
        x = self.encode((features - self.feature_mean) / self.feature_scale)
        return self.head(self.body(x)).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, features: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
        """Fraud probabilities (float32) for raw features, in eval mode."""
        was_training = self.training
        self.eval()
        parts = [
            torch.sigmoid(self(torch.as_tensor(features[i : i + batch_size], dtype=torch.float32)))
            for i in range(0, len(features), batch_size)
        ]
        self.train(was_training)
        return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)


class ProbabilityHead(nn.Module):
    """Wraps a :class:`FraudMLP` so that its output is the probability (for export)."""

    def __init__(self, model: FraudMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features [batch, n_features] -> fraud probabilities [batch]."""
        return torch.sigmoid(self.model(features))
