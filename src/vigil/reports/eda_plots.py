"""The EDA report's figures (matplotlib, written as PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.data import schema
from vigil.data.schema import SCENARIO_NAMES

GENUINE_COLOUR = "#4c72b0"
FRAUD_COLOUR = "#c44e52"


def _figure(columns: int = 1, rows: int = 1, width: float = 7.0, height: float = 3.6) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, columns, figsize=(width, height), dpi=100, squeeze=False)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def amounts(frame: pd.DataFrame, path: Path) -> Path:
    """Amount histograms (log scale) by class, and amount box plots by fraud scenario."""
    fig, axes = _figure(2, width=10)
    bins = np.logspace(np.log10(0.5), np.log10(max(frame[schema.TX_AMOUNT].max(), 1) + 1), 60)
    for value, name, colour in ((0, "genuine", GENUINE_COLOUR), (1, "fraud", FRAUD_COLOUR)):
        rows = frame.loc[frame[schema.TX_FRAUD] == value, schema.TX_AMOUNT] + 0.5
        axes[0, 0].hist(rows, bins=bins, density=True, alpha=0.6, label=name, color=colour)
    axes[0, 0].set(xscale="log", xlabel="amount (log scale)", ylabel="density")
    axes[0, 0].set_title("Amount by class")
    axes[0, 0].legend()
    if schema.TX_FRAUD_SCENARIO in frame.columns:
        groups = frame.groupby(schema.TX_FRAUD_SCENARIO)[schema.TX_AMOUNT]
        names = [SCENARIO_NAMES.get(int(str(s)), str(s)) for s in groups.groups]
        axes[0, 1].boxplot([g.to_numpy() for _, g in groups], showfliers=False)
        axes[0, 1].set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
        axes[0, 1].set(ylabel="amount")
        axes[0, 1].set_title("Amount by fraud scenario (no fliers)")
    return _save(fig, path)


def by_time(daily: pd.DataFrame, hourly: pd.DataFrame, path: Path) -> Path:
    """Fraud rate per day (with volume) and per hour of day."""
    fig, axes = _figure(2, width=10)
    ax = axes[0, 0]
    ax.plot(pd.to_datetime(daily.index), daily["fraud_rate"] * 100, color=FRAUD_COLOUR)
    ax.set(ylabel="fraud rate (%)")
    ax.set_title("Fraud rate by day")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    volume = ax.twinx()
    volume.plot(pd.to_datetime(daily.index), daily["transactions"], color="grey", alpha=0.4)
    volume.set(ylabel="transactions (grey)")
    ax.set_zorder(volume.get_zorder() + 1)  # the fraud rate drawn over the volume
    ax.patch.set_visible(False)
    axes[0, 1].bar(hourly.index, hourly["fraud_rate"] * 100, color=FRAUD_COLOUR)
    axes[0, 1].set(xlabel="hour of day", ylabel="fraud rate (%)")
    axes[0, 1].set_title("Fraud rate by hour")
    return _save(fig, path)


def concentration(customers: pd.DataFrame, terminals: pd.DataFrame, path: Path) -> Path:
    """Cumulative share of frauds against the number of customers / terminals carrying them."""
    fig, axes = _figure(1)
    for table, name in ((customers, "customers"), (terminals, "terminals")):
        ranks = np.arange(1, len(table) + 1)
        axes[0, 0].plot(ranks, table["cumulative_share"] * 100, label=name)
    axes[0, 0].set(xlabel="entities with a fraud, most frauds first", ylabel="% of frauds")
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_title("How concentrated fraud is per customer and terminal")
    axes[0, 0].legend()
    return _save(fig, path)


def feature_distributions(
    features: pd.DataFrame, labels: np.ndarray, names: Sequence[str], path: Path
) -> Path:
    """One histogram per feature, genuine against fraud (density, 1st-99th percentile)."""
    columns = 4
    rows = int(np.ceil(len(names) / columns))
    fig, axes = _figure(columns, rows, width=12, height=2.1 * rows)
    for ax, name in zip(axes.flat, names, strict=False):
        values = features[name].to_numpy(dtype=float)
        low, high = np.nanpercentile(values, [1, 99])
        bins = np.linspace(low, high if high > low else low + 1, 40)
        for value, colour in ((0, GENUINE_COLOUR), (1, FRAUD_COLOUR)):
            chosen = values[labels == value]
            ax.hist(chosen, bins=bins, density=True, alpha=0.55, color=colour)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, path)


def correlations(matrix: pd.DataFrame, path: Path) -> Path:
    """Pearson correlations between the features and the label."""
    fig, axes = _figure(1, width=9, height=7.5)
    ax = axes[0, 0]
    image = ax.imshow(matrix.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=90, fontsize=6)
    ax.set_yticks(range(len(matrix)), matrix.index, fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Feature correlations (Pearson)")
    return _save(fig, path)


def delay(visibility: pd.DataFrame, chosen_delay: int, path: Path) -> Path:
    """Share of compromise frauds made after the compromise is known, by label delay."""
    fig, axes = _figure(1)
    ax = axes[0, 0]
    for column in visibility.columns:
        ax.plot(visibility.index, visibility[column] * 100, marker=".", label=column)
    ax.axvline(
        chosen_delay, color="grey", linestyle="--", label=f"Vigil's delay ({chosen_delay} d)"
    )
    ax.set(xlabel="label delay (days)", ylabel="% of frauds catchable by entity risk")
    ax.set_title("Label delay: frauds made after the compromise is known")
    ax.legend(fontsize=8)
    return _save(fig, path)


def drift(scores: pd.Series, threshold: float, path: Path) -> Path:
    """Drift score per column between two periods, with the alert threshold."""
    fig, axes = _figure(1, height=4.2)
    ax = axes[0, 0]
    ordered = scores.sort_values()
    colours = [FRAUD_COLOUR if s >= threshold else GENUINE_COLOUR for s in ordered]
    ax.barh(ordered.index, ordered.to_numpy(), color=colours)
    ax.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    ax.tick_params(axis="y", labelsize=6)
    ax.set(xlabel="PSI")
    ax.set_title("Drift between the reference and the last period")
    ax.legend()
    return _save(fig, path)
