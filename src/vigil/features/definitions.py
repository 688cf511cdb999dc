"""Feature names and order: the one definition shared by offline, online, training and serving.

The first fifteen are the Fraud Detection Handbook's (chapter 3), lower-cased so that
results compare directly. ``extended`` and the groups in ``extra`` add point-in-time features
that are computed online too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from vigil.config import FeaturesConfig

SECONDS_PER_DAY = 86_400


def check_config(config: FeaturesConfig) -> None:
    """Reject settings for which point-in-time features are undefined."""
    if config.label_delay_days < 1:
        raise ValueError(
            "features.label_delay_days must be >= 1: with no delay a transaction's own label "
            "would enter its terminal risk (not known at scoring time)"
        )
    if len(set(config.windows_days)) != len(config.windows_days) or min(config.windows_days) < 1:
        raise ValueError(f"features.windows_days must be distinct and >= 1: {config.windows_days}")


TX_AMOUNT = "tx_amount"
TX_DURING_WEEKEND = "tx_during_weekend"
TX_DURING_NIGHT = "tx_during_night"


def customer_nb_tx(window_days: int) -> str:
    """Transactions of the customer in (t - n days, t], the current one included."""
    return f"customer_id_nb_tx_{window_days}day_window"


def customer_avg_amount(window_days: int) -> str:
    """Mean amount of the customer's transactions in (t - n days, t]."""
    return f"customer_id_avg_amount_{window_days}day_window"


def terminal_nb_tx(window_days: int) -> str:
    """Terminal transactions in (t - d - n days, t - d], d the label delay."""
    return f"terminal_id_nb_tx_{window_days}day_window"


def terminal_risk(window_days: int) -> str:
    """Share of frauds among the terminal's transactions in (t - d - n, t - d]; 0 when none."""
    return f"terminal_id_risk_{window_days}day_window"


# Extended features (``features.extended: true``).
AMOUNT_OVER_CUSTOMER_AVG = "customer_id_amount_over_avg_longest_window"
SECONDS_SINCE_CUSTOMER_PREV_TX = "customer_id_seconds_since_prev_tx"
CUSTOMER_RISK_LONGEST = "customer_id_risk_longest_window"


# Extra groups (``features.extra``). "Prior" transactions of a customer are those at earlier
# instants in (t - longest window, t): the current one and same-instant ones are left out.
AMOUNT_RATIO_CAP = 20.0  # amount ratios are clipped here (a prior median of cents is noise)
AMOUNT_OVER_PRIOR_MEDIAN = "customer_id_amount_over_prior_median"
AMOUNT_OVER_PRIOR_MEAN = "customer_id_amount_over_prior_mean"


def max_amount_over_prior_median(window_days: int) -> str:
    """Largest amount in (t - n days, t] (prior ones and this one) over the prior median."""
    return f"customer_id_max_amount_{window_days}day_over_prior_median"


# Delayed longest window (t - d - L, t - d]: a compromised terminal's run of frauds lasts
# about four weeks; its age says whether the run is still going. 0 days when no known fraud.
DAYS_SINCE_FIRST_KNOWN_FRAUD = "terminal_id_days_since_first_known_fraud"
DAYS_SINCE_LAST_KNOWN_FRAUD = "terminal_id_days_since_last_known_fraud"
TERMINAL_KNOWN_FRAUDS = "terminal_id_nb_fraud_longest_window"

# Verdict group (``features.verdicts``): analysts' verdicts reviewed before t, on transactions
# in (t - W, t], W = ``verdict_window_days``; no label delay (vigil.features.verdicts).
DAYS_SINCE_FIRST_VERDICT_COMPROMISE = "terminal_id_days_since_first_verdict_compromise"


def _verdict_features(window_days: int) -> list[tuple[str, bool]]:
    """The verdict group's (name, is a count) in model input order."""
    terminal, customer, w = "terminal_id_verdict", "customer_id_verdict", window_days
    return [
        (f"{terminal}_nb_reviewed_{w}day_window", True),
        (f"{terminal}_nb_fraud_{w}day_window", True),
        (f"{terminal}_risk_{w}day_window", False),
        (f"{terminal}_nb_compromised_{w}day_window", True),
        (DAYS_SINCE_FIRST_VERDICT_COMPROMISE, False),
        (f"{customer}_nb_reviewed_{w}day_window", True),
        (f"{customer}_nb_fraud_{w}day_window", True),
        (f"{customer}_risk_{w}day_window", False),
    ]


def verdict_feature_names(config: FeaturesConfig) -> list[str]:
    """Names of the verdict group's features (empty when ``features.verdicts`` is off)."""
    if not config.verdicts:
        return []
    return [name for name, _ in _verdict_features(config.verdict_window_days)]


def log_scaled_feature_names(config: FeaturesConfig) -> list[str]:
    """Inputs a scaling model (the MLP) takes as ``log1p``: the verdict group's counts.

    They are heavy-tailed (most rows have none or a few; a terminal marked compromised
    gathers up to ~24 confirmed frauds, a card up to ~100 reviewed transactions), so a
    standard-scaler alone leaves the tail at tens of deviations and the informative first
    verdict at about one. The 24 stream features are
    not listed: the served default's inputs stay as they are.
    """
    if not config.verdicts:
        return []
    return [name for name, count in _verdict_features(config.verdict_window_days) if count]


def log_scaled_feature_indices(config: FeaturesConfig) -> list[int]:
    """Positions of :func:`log_scaled_feature_names` in :func:`feature_names`."""
    names = feature_names(config)
    return [names.index(name) for name in log_scaled_feature_names(config)]


CUSTOMER_AMOUNT_BASELINE = "customer_amount_baseline"
TERMINAL_FRAUD_RUN = "terminal_fraud_run"
EXTRA_GROUPS = (CUSTOMER_AMOUNT_BASELINE, TERMINAL_FRAUD_RUN)


def feature_lookback_days(config: FeaturesConfig) -> int:
    """Days of history a transaction's features look back on: longest window plus label delay."""
    return max(config.windows_days) + config.label_delay_days


def amount_window_days(config: FeaturesConfig) -> int:
    """The recent-maximum window: ``amount_max_window_days``, at most the longest window."""
    return min(config.amount_max_window_days, max(config.windows_days))


def extra_feature_names(config: FeaturesConfig) -> list[str]:
    """Names of the enabled ``features.extra`` groups, always in :data:`EXTRA_GROUPS` order."""
    names: list[str] = []
    if CUSTOMER_AMOUNT_BASELINE in config.extra:
        names += [
            AMOUNT_OVER_PRIOR_MEDIAN,
            AMOUNT_OVER_PRIOR_MEAN,
            max_amount_over_prior_median(amount_window_days(config)),
        ]
    if TERMINAL_FRAUD_RUN in config.extra:
        names += [DAYS_SINCE_FIRST_KNOWN_FRAUD, DAYS_SINCE_LAST_KNOWN_FRAUD, TERMINAL_KNOWN_FRAUDS]
    return names


def handbook_feature_names(config: FeaturesConfig) -> list[str]:
    """The handbook's features, in the handbook's order, for the configured windows."""
    names = [TX_AMOUNT, TX_DURING_WEEKEND, TX_DURING_NIGHT]
    for n in config.windows_days:
        names += [customer_nb_tx(n), customer_avg_amount(n)]
    for n in config.windows_days:
        names += [terminal_nb_tx(n), terminal_risk(n)]
    return names


def stream_feature_names(config: FeaturesConfig) -> list[str]:
    """Features of the transaction stream and its delayed labels (the feature SQL's output)."""
    names = handbook_feature_names(config)
    if config.extended:
        names += [AMOUNT_OVER_CUSTOMER_AVG, SECONDS_SINCE_CUSTOMER_PREV_TX, CUSTOMER_RISK_LONGEST]
    return names + extra_feature_names(config)


def feature_names(config: FeaturesConfig) -> list[str]:
    """Every model input column, in the order models are trained and served with."""
    return stream_feature_names(config) + verdict_feature_names(config)


# Feature families: features that carry one signal (windows of one quantity, one entity's
# verdicts, the amount against one card's habit). Reason codes occlude a family as a whole
# (vigil.inference.reasons), so a signal that several features repeat is still named.
_WINDOW = 987_654_321  # stands for the window length when a name template becomes a pattern


def _pattern(names: Sequence[str]) -> re.Pattern[str]:
    """Names built with ``_WINDOW`` as the window, matching any window length."""
    alternatives = (re.escape(name).replace(str(_WINDOW), r"\d+") for name in names)
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def _windowed(*templates: Callable[[int], str]) -> re.Pattern[str]:
    return _pattern([template(_WINDOW) for template in templates])


_VERDICTS = [name for name, _ in _verdict_features(_WINDOW)]
FEATURE_FAMILIES: dict[str, re.Pattern[str]] = {
    "customer_tx_count": _windowed(customer_nb_tx),
    "customer_avg_amount": _windowed(customer_avg_amount),
    "customer_amount_over_habit": _pattern(
        [
            AMOUNT_OVER_CUSTOMER_AVG,
            AMOUNT_OVER_PRIOR_MEDIAN,
            AMOUNT_OVER_PRIOR_MEAN,
            max_amount_over_prior_median(_WINDOW),
        ]
    ),
    "terminal_tx_count": _windowed(terminal_nb_tx),
    "terminal_risk": _windowed(terminal_risk),
    "terminal_fraud_run": _pattern(
        [DAYS_SINCE_FIRST_KNOWN_FRAUD, DAYS_SINCE_LAST_KNOWN_FRAUD, TERMINAL_KNOWN_FRAUDS]
    ),
    "terminal_verdicts": _pattern([n for n in _VERDICTS if not n.startswith("customer_id")]),
    "customer_verdicts": _pattern([n for n in _VERDICTS if n.startswith("customer_id")]),
}


def feature_families(names: Sequence[str]) -> dict[str, list[str]]:
    """Family name to its members among ``names`` (in ``names`` order), for families of two or
    more members; a feature is in at most one family (:data:`FEATURE_FAMILIES`)."""
    families: dict[str, list[str]] = {}
    for family, pattern in FEATURE_FAMILIES.items():
        members = [name for name in names if pattern.fullmatch(name)]
        if len(members) >= 2:
            families[family] = members
    return families
