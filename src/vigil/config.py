"""Vigil's one typed configuration: YAML file, then ``VIGIL_*`` environment, then ``--set``.

Only entry points (CLI commands, the API lifespan, the worker) call :func:`load_settings`;
everything else receives the resulting :class:`Settings` object explicitly. The three sources
are pydantic-settings sources merged in that order of precedence; the file is found from the
project root (or ``VIGIL_CONFIG``), never from whatever the working directory happens to be.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vigil.redaction import MASK, mask_url, revealed

# The default ``--config``: located by :func:`locate_config`, not read relative to the cwd.
DEFAULT_CONFIG_PATH = Path("configs/vigil.yaml")
CONFIG_ENV = "VIGIL_CONFIG"
ENV_PREFIX = "VIGIL_"
# An editable install (``pip install -e .``, ``make setup``) finds the file beside its sources.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_API_KEY = "change-me"  # `vigil serve` refuses it unless --insecure-dev-key is given


class ConfigError(ValueError):
    """Raised when the configuration is unreadable, has an unknown key or a bad value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftConfig(_Section):
    """A switchable change in the simulated world from ``start_day`` on."""

    scenario: Literal["none", "new_fraud_pattern", "amount_inflation", "customer_shift"] = "none"
    start_day: int = Field(120, ge=0)
    strength: float = Field(1.5, gt=0)


class DataConfig(_Section):
    """Transaction simulator, raw-data location and the transaction contract's clock skew."""

    n_customers: int = Field(5000, gt=0)
    n_terminals: int = Field(10000, gt=0)
    n_days: int = Field(183, gt=0)
    start_date: date = date(2018, 4, 1)
    radius: float = Field(5.0, gt=0)
    seed: int = 0
    raw_dir: Path = Path("data/raw")
    drift: DriftConfig = DriftConfig()
    # How far past the server clock an event time may lie (seconds) before the transaction
    # contract refuses it (vigil.data.transaction.EventTimePolicy); past events are accepted.
    future_tolerance_seconds: float = Field(300.0, ge=0, le=7 * 86_400)


FeatureGroup = Literal["customer_amount_baseline", "terminal_fraud_run"]
FEATURE_GROUPS: tuple[FeatureGroup, ...] = ("customer_amount_baseline", "terminal_fraud_run")


class FeaturesConfig(_Section):
    """Feature windows and the label delay shared by offline and online computation."""

    windows_days: list[int] = Field(default_factory=lambda: [1, 7, 30], min_length=1)
    label_delay_days: int = Field(7, ge=0)
    night_end_hour: int = Field(6, ge=0, le=23)
    output_path: Path = Path("data/features/features.parquet")
    duckdb_memory_limit: str = "1500MB"
    duckdb_threads: int = Field(2, gt=0)
    extended: bool = True
    # Feature groups beyond ``extended`` (see vigil.features.definitions.EXTRA_GROUPS).
    extra: list[FeatureGroup] = Field(default_factory=lambda: list(FEATURE_GROUPS))
    amount_max_window_days: int = Field(7, ge=1)
    # Verdict features (vigil.features.verdicts): analysts' verdicts count from the moment they
    # are given, without the label delay, over transactions of the last verdict_window_days.
    verdicts: bool = False
    verdict_window_days: int = Field(28, ge=1)


class LightGBMConfig(_Section):
    """LightGBM baseline hyperparameters."""

    n_estimators: int = Field(300, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, gt=1)
    # Histogram bins per feature; 15 or fewer store 4 bits a value instead of 8 (half the
    # binned data: what lets a streamed fit of ~46M rows come near a 2 GB limit).
    max_bin: int = Field(255, gt=1)
    # Most fitting rows of a streamed fit (`vigil train --stream-features`): above it every
    # fraud is kept and genuine rows are sampled at r = (max_fit_rows - frauds) / genuines,
    # weighted 1/r (deterministic by train.seed). The rule, from a memory limit M: a streamed
    # run peaks during the fit at ~250 MB + ~125 bytes a fitting row (measured: 10.0M rows,
    # 1.47 GB anonymous; label, weights, bins, gradients, scores, row partition), so
    # max_fit_rows = 0.7 (M - 250 MB) / 125 B: 10M for 2 GB, 30% of it left to page cache
    # and slack. The evaluation after the fit (streamed, heap trimmed) peaks below 1 GB.
    max_fit_rows: int = Field(10_000_000, gt=0)


class ModelConfig(_Section):
    """Which model to train and, for the MLP, its architecture."""

    kind: Literal["mlp", "lightgbm", "logistic", "ensemble"] = "mlp"
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 32])
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    dropout: float = Field(0.1, ge=0, lt=1)
    normalization: Literal["none", "batchnorm", "layernorm"] = "none"
    # How each scaled input enters the MLP: as is, or piecewise-linear encoded on encoding_bins
    # quantile bins of the training rows (ple, Gorishniy et al. 2022; FraudMLP.encode, the
    # edges travel inside the model). Not the default: measured no better (docs/benchmarks.md).
    numeric_encoding: Literal["none", "ple"] = "none"
    encoding_bins: int = Field(8, ge=2)
    lightgbm: LightGBMConfig = LightGBMConfig()
    logistic_c: float = Field(1.0, gt=0)
    ensemble_mlp_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    ensemble_lightgbm: bool = True


class TrainConfig(_Section):
    """The handbook's protocol (train, delay, test periods) and optimisation settings."""

    experiment_name: str = "vigil"
    train_start: date = date(2018, 7, 25)
    train_days: int = Field(7, gt=0)
    history_days: int = Field(0, ge=0)
    delay_days: int = Field(7, ge=0)
    test_days: int = Field(7, gt=0)
    validation_days: int = Field(1, ge=0)
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(512, gt=0)
    # torch intra-op threads for the MLP (0: torch's default). One is as fast for this small
    # model and avoids OpenMP spin-waits that slow a fit ~100x on a busy 2-core machine.
    torch_threads: int = Field(1, ge=0)
    lr: float = Field(0.001, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    class_weighting: Literal["none", "balanced", "undersample"] = "balanced"
    early_stopping_patience: int = Field(5, gt=0)
    seed: int = 42
    cost_missed_fraud: float = Field(100.0, ge=0)
    cost_false_alarm: float = Field(5.0, ge=0)
    top_k_cards: int = Field(100, gt=0)
    runs_dir: Path = Path("runs")


class RetrainConfig(_Section):
    """How the retrain job makes its challenger (ADR 0023).

    ``full`` trains from scratch (``train``/``model`` as set); ``warm_start`` adapts the
    serving champion on the last ``warm_start_days`` fitting days (LightGBM adds up to
    ``warm_start_trees`` trees, the MLP trains ``warm_start_epochs`` more epochs); ``auto``
    does both and keeps the one with the higher validation AP (same validation days; the
    warm start on a tie). The challenger then goes through the promotion gate once, as any
    other. ``verdict_labels``: also fit on the delay period's transactions the analysts
    reviewed before the test period, labelled by their verdicts (the ``verdicts`` table;
    :mod:`vigil.training.verdict_labels`, as ``vigil evaluate --feedback`` retrains).
    """

    strategy: Literal["full", "warm_start", "auto"] = "full"
    warm_start_days: int = Field(14, gt=0)
    warm_start_trees: int = Field(100, gt=0)
    warm_start_epochs: int = Field(5, gt=0)
    verdict_labels: bool = False


class TritonConfig(_Section):
    """The Triton Inference Server that scores when ``inference.backend`` is ``triton``."""

    url: str = "http://127.0.0.1:8010"  # its HTTP (KServe v2) endpoint
    model_name: str = "vigil"
    timeout_seconds: float = Field(5.0, gt=0)
    max_batch_rows: int = Field(4096, gt=0)  # the model's max_batch_size: longer batches split


class InferenceConfig(_Section):
    """Where the serving model lives, what runs it, and how decisions are explained."""

    model_path: Path = Path("models/current/model.onnx")
    reason_codes: int = Field(3, ge=0)
    batch_size: int = Field(4096, gt=0)
    # onnxruntime: in process; triton: a Triton server serving the same model file
    # (`python -m vigil.providers.triton`), the file still giving the contract and metadata.
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    triton: TritonConfig = TritonConfig()


class ServingConfig(_Section):
    """HTTP service settings."""

    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    api_key: SecretStr = Field(SecretStr(DEFAULT_API_KEY), min_length=1)
    max_upload_bytes: int = Field(10_000_000, gt=0)
    max_batch_rows: int = Field(10_000, gt=0)
    # Idle keep-alive connections are closed after this long. Above the idle expiry of the
    # clients and proxies in front (httpx 5 s, uvicorn's own default; nginx upstream and AWS
    # ALB 60 s), so the client closes an idle connection first: a server that times out
    # first can close it while the client's next request is on its way, unanswered.
    keep_alive_s: int = Field(75, gt=0)
    # Admission control of /predict and /forward (serving/admission.py): requests admitted
    # and not yet answered; one more is refused at once with 503 and Retry-After. The limit
    # is max_in_flight, or, with latency_target_ms > 0, follows the admitted requests'
    # latency (AIMD, capped by max_in_flight); a request that waited more than max_queue_ms
    # before its handler started is refused then; every one is refused while the event loop
    # runs more than max_loop_lag_ms late. 0 turns each of the three off: set them only where
    # the process has its CPU to itself, or CPU contention becomes 503s (ADR 0019).
    max_in_flight: int = Field(128, gt=0)
    latency_target_ms: float = Field(0.0, ge=0)
    max_queue_ms: float = Field(0.0, ge=0)
    max_loop_lag_ms: float = Field(0.0, ge=0)
    retry_after_s: int = Field(1, ge=0)

    @field_serializer("api_key")
    def _dump_key(self, key: SecretStr, info: SerializationInfo) -> str:
        return key.get_secret_value() if revealed(info) else MASK


class StorageConfig(_Section):
    """Database, online state store and the group-commit writer."""

    database_url: str = "sqlite:///data/vigil.db"
    state_url: str = "memory://"
    commit_max_batch: int = Field(256, gt=0)
    commit_max_delay_ms: float = Field(0.0, ge=0)  # linger; 0: commit when a connection is free
    queue_max: int = Field(10_000, gt=0)
    # PostgreSQL day partitions (``vigil db maintain``): created this many days ahead; days
    # older than ``retention_days`` dropped (null keeps everything).
    partition_days_ahead: int = Field(7, ge=0)
    retention_days: int | None = Field(None, ge=1)
    # Automatic recovery of a Redis state store (vigil.decisions.recovery, ADR 0013): the
    # servers' run ids are checked this often; after a restart or failover the transactions
    # and labels received from this long before the old server was last seen are re-recorded
    # from the database (Redis may lose up to ~3 s of acknowledged writes; the rest is slack
    # for clock skew and for records received before their state write, retries included).
    state_check_seconds: float = Field(5.0, gt=0)
    state_rewarm_margin_seconds: float = Field(60.0, ge=0)

    @field_serializer("database_url", "state_url")
    def _dump_url(self, url: str, info: SerializationInfo) -> str:
        return url if revealed(info) else mask_url(url)


class BrokerConfig(_Section):
    """RabbitMQ topology and consumer settings; ``url: null`` scores in-process."""

    url: str | None = None
    prefetch: int = Field(256, gt=0)
    batch_size: int = Field(128, gt=0)
    transactions_queue: str = "transactions"
    decisions_exchange: str = "decisions"
    labels_queue: str = "labels"
    # 0: one transactions queue; N: N queues partitioned by customer, one active worker each
    partitions: int = Field(0, ge=0, le=1024)
    heartbeat_s: float = Field(1.0, gt=0)  # partitioned workers' membership heartbeat

    @field_serializer("url")
    def _dump_url(self, url: str | None, info: SerializationInfo) -> str | None:
        return url if url is None or revealed(info) else mask_url(url)


class TrackingConfig(_Section):
    """MLflow tracking store and registry."""

    mlflow_uri: str = "file:./mlruns"
    registered_model: str = "vigil-fraud"

    @field_serializer("mlflow_uri")
    def _dump_url(self, url: str, info: SerializationInfo) -> str:
        return url if revealed(info) else mask_url(url)


class MonitoringConfig(_Section):
    """Drift and delayed-label monitoring (the Dagster marts, read back by ``/metrics``)."""

    drift_reference_days: int = Field(7, gt=0)
    drift_current_days: int = Field(7, gt=0)
    drift_columns: list[str] = Field(default_factory=list)
    drift_method: str = "psi"
    drift_threshold: float = Field(0.1, gt=0)
    drift_share: float = Field(0.5, gt=0, le=1)
    performance_days: int = Field(28, gt=0)
    marts_dir: Path = Path("data/marts")
    retrain_on_drift: bool = True


class CasesConfig(_Section):
    """The analysts' case queue: how many cards a day the team reviews, what a case shows."""

    review_budget: int = Field(100, gt=0, le=10_000)  # cards reviewed a day (the k of CP@k)
    habit_days: int = Field(30, gt=0, le=366)  # the card's habit: its amounts over these days
    fraud_run_days: int = Field(28, gt=0, le=366)  # the terminal's recent known frauds
    # the day's ranking is recomputed in the background once older than this (0: every read)
    ranking_refresh_seconds: float = Field(30.0, ge=0, le=3600)
    # the day's built queue likewise (a verdict given through this API replaces it at once)
    queue_refresh_seconds: float = Field(2.0, ge=0, le=3600)
    # a verdict also labels the card's unlabelled transactions of these days up to the case
    # day's end (the day included), as the evaluation's investigator reviewing at the day's end
    # (``vigil evaluate --feedback --lookback-days``, whose default this is); 0 or 1: the day only
    lookback_days: int = Field(7, ge=0, le=366)
    # a card with a fraud known in these days before the day's start (a fraud verdict, a fraud
    # label) is blocked: left out of the day's queue, served and simulated alike (the review
    # rule, :mod:`vigil.cases.rule`)
    block_days: int = Field(14, ge=0, le=366)


class Settings(BaseSettings):
    """The whole configuration of one Vigil process."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    data: DataConfig = DataConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    retrain: RetrainConfig = RetrainConfig()
    inference: InferenceConfig = InferenceConfig()
    serving: ServingConfig = ServingConfig()
    storage: StorageConfig = StorageConfig()
    broker: BrokerConfig = BrokerConfig()
    tracking: TrackingConfig = TrackingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    cases: CasesConfig = CasesConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit values: the file and environment are read by :func:`load_settings`."""
        return (init_settings,)


def _parse_value(raw: str) -> Any:
    """Read an override value as YAML so ``0.1``, ``[1, 7]``, ``null`` and ``true`` get types."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _set_dotted(tree: dict[str, Any], dotted_key: str, value: Any) -> None:
    parts = [p for p in dotted_key.split(".") if p]
    if not parts:
        raise ConfigError(f"empty configuration key in override {dotted_key!r}")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"configuration key {dotted_key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    """``VIGIL_TRAIN__LR=0.01`` becomes ``("train.lr", 0.01)``."""
    overrides = []
    for name, raw in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            overrides.append((key, _parse_value(raw)))
    return overrides


def _parse_set(assignments: Sequence[str]) -> list[tuple[str, Any]]:
    """``section.key=value`` items, or ``@FILE``: every key of a YAML file of sections (a
    partial configuration such as ``configs/datasets/v2-drift.yaml``)."""
    overrides: list[tuple[str, Any]] = []
    for item in assignments:
        if item.startswith("@"):
            path = Path(item[1:])
            if not path.is_file():
                raise ConfigError(f"override file {path} (from --set {item}) does not exist")
            overrides.extend(flatten(_read_yaml(path)).items())
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value or @FILE")
        overrides.append((key.strip(), _parse_value(raw)))
    return overrides


def _tree(overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in overrides:
        _set_dotted(tree, key, value)
    return tree


class _TreeSource(PydanticBaseSettingsSource):
    """One configuration source (file, environment or ``--set``) as a tree of sections."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]):
        super().__init__(settings_cls)
        self._values: dict[str, Any] = json.loads(json.dumps(dict(values), default=str))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._values


def _read_yaml(path: Path) -> dict[str, Any]:
    """The YAML configuration file: a mapping of sections."""
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"configuration file {path} is not readable: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration file {path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping of sections")
    return loaded


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (a nested key replaces only itself)."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, dict):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


def _validate(sources: Sequence[PydanticBaseSettingsSource]) -> Settings:
    """Merge sources (lowest precedence first) and validate, naming any bad key."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged = _merge(merged, source())
    try:
        return Settings.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error)) from None


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(p) for p in problem["loc"])
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown configuration key {key!r}")
        else:
            shown = json.dumps(problem.get("input"), default=str)
            lines.append(f"bad value for {key!r}: {problem['msg']} (got {shown})")
    return "; ".join(lines)


def build_settings(
    tree: Mapping[str, Any],
    overrides: Sequence[tuple[str, Any]] = (),
) -> Settings:
    """Validate a configuration tree with dotted-key overrides applied on top."""
    return _validate([_TreeSource(Settings, tree), _TreeSource(Settings, _tree(overrides))])


def locate_config(environ: Mapping[str, str], cwd: Path | None = None) -> Path:
    """The configuration file: ``VIGIL_CONFIG``, else ``configs/vigil.yaml`` of the project root.

    The project root is the working directory or its nearest parent holding that file, else
    the source checkout Vigil is installed from (``pip install -e``). Nothing found is an error
    naming where it looked, never an empty configuration.
    """
    if environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"configuration file {path} (from {CONFIG_ENV}) does not exist")
        return path
    here = (cwd or Path.cwd()).resolve()
    candidates = [d / DEFAULT_CONFIG_PATH for d in (here, *here.parents)]
    candidates.append(_SOURCE_ROOT / DEFAULT_CONFIG_PATH)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no configuration file: {DEFAULT_CONFIG_PATH} is in neither {here} nor its parents, "
        f"nor in {_SOURCE_ROOT}; run from the project, set {CONFIG_ENV}=PATH or pass --config PATH"
    )


def load_settings(
    path: Path | None = DEFAULT_CONFIG_PATH,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load the YAML file, apply ``VIGIL_*`` env vars, then ``--set`` overrides.

    ``path`` is the file to read; the default (``configs/vigil.yaml``) is located with
    :func:`locate_config`; ``None`` reads no file (the embedded defaults).
    """
    env = environ if environ is not None else {}
    tree: dict[str, Any] = {}
    if path is not None:
        if path == DEFAULT_CONFIG_PATH:
            path = locate_config(env)
        elif not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        tree = _read_yaml(path)
    return _validate(
        [
            _TreeSource(Settings, tree),
            _TreeSource(Settings, _tree(_env_overrides(env))),
            _TreeSource(Settings, _tree(_parse_set(overrides))),
        ]
    )


def settings_to_dict(settings: Settings, *, secrets: bool = False) -> dict[str, Any]:
    """The resolved configuration as plain JSON types, secrets masked (for logs, tracking,
    printing); ``secrets=True`` keeps them, only to hand the settings to another process."""
    return settings.model_dump(mode="json", context={"reveal_secrets": secrets})


SECRET_KEYS = (
    "serving.api_key",
    "storage.database_url",
    "storage.state_url",
    "broker.url",
    "tracking.mlflow_uri",
)
"""Settings masked in every dump; a child process receives them through its environment."""


def write_settings(path: Path, settings: Settings) -> Path:
    """The resolved configuration as YAML, secrets masked, readable by the owner only."""
    text = yaml.safe_dump(settings_to_dict(settings), sort_keys=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return path


def secret_environment(settings: Settings) -> dict[str, str]:
    """``VIGIL_*`` variables carrying the secrets that :func:`write_settings` masks."""
    tree = settings_to_dict(settings, secrets=True)
    environment = {}
    for key in SECRET_KEYS:
        section, name = key.split(".")
        value = tree[section][name]
        if value is not None:
            raw = str(value)  # quoted when YAML would read it as another type
            environment[f"{ENV_PREFIX}{section.upper()}__{name.upper()}"] = (
                raw if _parse_value(raw) == raw else json.dumps(raw)
            )
    return environment


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` becomes ``{"train.lr": 0.1}`` (for MLflow params, DVC)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat
