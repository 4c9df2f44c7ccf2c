"""Run configuration: one pydantic model, loadable from YAML and overridable by ``--set key=value``."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from deepmine.exceptions import ConfigError, did_you_mean
from deepmine.urls import redact_url


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """How to read the source."""

    sep: str | None = Field(None, description="CSV delimiter; sniffed when unset.")
    encoding: str | None = Field(None, description="Text encoding; sniffed when unset.")
    header: bool | None = Field(None, description="Whether the first row names the columns; sniffed when unset.")
    table: str | None = Field(None, description="SQL table name (SQLAlchemy URL sources).")
    query: str | None = Field(None, description="SQL query (SQLAlchemy URL sources).")
    na_values: list[str] = Field(default_factory=lambda: ["", "?", "NA", "N/A", "NaN", "nan", "null", "NULL"])
    streaming: bool | None = Field(
        None, description="Train from Arrow record batches read from disk; auto = Parquet/CSV files over 1 GiB."
    )
    sample_rows: int = Field(200_000, ge=100, description="Streaming: rows (the first N) that fit preprocessing.")
    chunk_rows: int = Field(65_536, ge=256, description="Streaming: rows per record batch read and shuffled.")


class ColumnsConfig(_Section):
    """Which column is the target, which keeps ids, and role overrides."""

    target: str | None = None
    id: str | None = Field(None, description="Column copied into predictions to identify rows.")
    weight: str | None = Field(
        None,
        description="Column of row weights (numbers >= 0: frequencies, survey or importance weights) that scale "
        "each training row's loss, as scikit-learn's sample_weight; not a feature.",
    )
    roles: dict[str, str] = Field(default_factory=dict, description="Force a role per column.")
    drop: list[str] = Field(default_factory=list)
    label_sep: str | None = Field(
        None, description="Multilabel: delimiter between a target value's labels ('|', ';', ','); detected if unset."
    )


class PreprocessConfig(_Section):
    """Per-role preprocessing settings."""

    rare_min_count: int = Field(5, ge=1, description="Categories seen fewer times fold into one 'rare' bucket.")
    max_categories: int = Field(1000, ge=2)
    numeric_scaling: Literal["quantile", "standard"] = "quantile"
    numeric_bins: int = Field(
        64,
        ge=0,
        description="Piecewise-linear bins per numeric column (tree split points, else quantiles); 0 = off.",
    )
    infinite: Literal["error", "missing"] = "error"


Activation = Literal["relu", "tanh", "sigmoid", "gelu"]


class ModelConfig(_Section):
    """The network built from the schema."""

    name: str = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    activation: Activation = "relu"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    batch_norm: bool = False
    embedding_dim: int | None = Field(None, ge=1, description="Categorical embedding size; auto when unset.")
    ensemble: int = Field(3, ge=1, le=32, description="Members of a deep ensemble (averaged).")
    trees: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Blend gradient-boosted trees (grown by LightGBM on the same inputs) with the network, "
        "weighted on validation; auto = on for binary, multiclass (up to 100 classes) and regression tables "
        "of numeric and categorical columns while rows × input width × classes stay within 10^8; never beside "
        "text columns.",
    )
    numeric_embedding: int | None = Field(
        None,
        ge=0,
        description="Per-numeric-column embedding size; 0 feeds raw features; auto: 16 up to "
        "64 numeric columns, else 0 (their cost grows with the square of the column count).",
    )

    @field_validator("trees", mode="before")
    @classmethod
    def _trees_switch(cls, value: Any) -> Any:
        """``--set model.trees=true/false`` (YAML booleans) mean on/off."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class OptimizerConfig(_Section):
    """Optimizer and penalties."""

    name: Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty.")
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights.")


class TrainerConfig(_Section):
    """The training loop."""

    epochs: int = Field(40, ge=1)
    batch_size: int | Literal["full"] = 256
    schedule: Literal["none", "cosine", "onecycle", "plateau"] = "none"
    early_stopping: bool = True
    patience: int = Field(6, ge=1)
    monitor: str = Field("auto", description="Validation metric for early stopping; 'auto' = loss.")
    min_delta: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Smallest relative improvement of the monitored value that resets patience; auto = 0.01 "
        "for text ensembles with solved linear members (they damp the validation loss), else 0.",
    )
    class_weight: Literal["none", "balanced"] = "none"
    loss: Literal["cross_entropy", "focal"] = Field(
        "cross_entropy", description="Classification loss; focal (Lin et al. 2017) down-weights easy examples."
    )
    threshold: str = Field(
        "argmax",
        description="Binary decision threshold, chosen on validation: argmax, f1, precision_at_recall=R, "
        "recall_at_precision=P.",
    )
    grad_clip: float | None = Field(None, gt=0)
    valid_fraction: float = Field(0.15, gt=0, lt=0.9)
    checkpoint: bool = True
    progress: bool | None = Field(None, description="Show a progress bar; auto = when stderr is a terminal.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; unset = torch's default.")


class TextConfig(_Section):
    """Text columns: tokenizer, vocabulary, padding length and the encoder each column goes through."""

    tokenizer: Literal["auto", "word", "char", "bpe", "wordpiece", "jieba"] = Field(
        "auto", description="auto = jieba when a column is mostly CJK characters, else word."
    )
    max_tokens: int | None = Field(50000, ge=10, description="Vocabulary size (most frequent tokens).")
    min_freq: int = Field(2, ge=1, description="Tokens seen fewer times in training map to the unknown id.")
    max_length: int | None = Field(
        None, ge=1, description="Fixed padding/truncation length; unset = length_percentile of the training texts."
    )
    length_percentile: float = Field(95.0, gt=0, le=100, description="Percentile of training token counts kept.")
    length_cap: int = Field(1000, ge=1, description="Upper bound of the percentile-based length.")
    subword_vocab: int = Field(16000, ge=100, description="Vocabulary the bpe/wordpiece tokenizers learn.")
    encoder: str = Field(
        "auto",
        description="Text encoder: ngram (word-embedding bag + wide Naive-Bayes-weighted bag of 1..ngrams-grams), "
        "nbsvm / tfidf (linear models over the same n-grams, solved before training), bag, lstm, gru, cnn, "
        "transformer; 'a+b' = an ensemble with one member per encoder (replaces model.ensemble); "
        "auto = ngram+nbsvm+tfidf when the text columns are the only features, else ngram (linear members see "
        "only the text, so beside other columns they would drown them out).",
    )
    embedding_dim: int = Field(64, ge=1)
    hidden: int = Field(64, ge=1, description="RNN state / CNN filters per width / transformer feed-forward half.")
    layers: int = Field(1, ge=1)
    bidirectional: bool = False
    pooling: Literal["auto", "last", "mean", "max", "attention"] = Field(
        "auto", description="auto = last (RNN), max (CNN), mean (transformer)."
    )
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5])
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    ngrams: int = Field(3, ge=1, le=5, description="Longest word n-gram of the ngram encoder.")
    ngram_min_df: int = Field(2, ge=1, description="n-grams in fewer training texts are dropped.")
    ngram_folds: int = Field(
        5, ge=1, description="Training rows see Naive-Bayes ratios counted on the other folds (1 = no cross-fitting)."
    )
    max_ngrams: int | None = Field(2_000_000, ge=1)
    vectors: str | None = Field(None, description="word2vec/GloVe text file initialising the word embeddings.")
    freeze: bool = Field(False, description="Keep the loaded word vectors fixed.")
    bucket: bool = Field(True, description="Length-bucketed batches (less padding).")

    @field_validator("encoder")
    @classmethod
    def _known_encoders(cls, value: str) -> str:
        known = ("ngram", "nbsvm", "tfidf", "bag", "lstm", "gru", "cnn", "transformer")
        if value == "auto":
            return value
        for part in value.split("+"):
            if part not in known:
                raise ValueError(f"unknown text encoder '{part}'{did_you_mean(part, known)}; choose from {known}")
        return value

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TextConfig:
        if "transformer" in self.encoder.split("+") and self.embedding_dim % self.heads:
            fits = max(h for h in range(1, self.heads + 1) if self.embedding_dim % h == 0)  # fewer heads that fit
            raise ValueError(
                f"text.heads ({self.heads}) must divide text.embedding_dim ({self.embedding_dim}) for the transformer "
                f"encoder; use text.heads={fits} or an embedding_dim that is a multiple of {self.heads}"
            )
        return self

    @property
    def encoders(self) -> list[str]:
        """One encoder per ensemble member (``auto`` before a fit has resolved it: the network alone)."""
        return ["ngram"] if self.encoder == "auto" else self.encoder.split("+")


class ReportConfig(_Section):
    """What `fit` records for the HTML report and whether it writes ``report.html`` into the artifact."""

    enabled: bool = Field(True, description="Record report data at fit time and write report.html.")
    examples: int = Field(5, ge=0, le=50, description="Example validation rows explained in the report.")
    sample_rows: int = Field(5000, ge=100, description="Validation rows kept for ROC/PR/calibration/residuals.")


class TrackingConfig(_Section):
    """MLflow run tracking of every fit (embedded SQLite store in ./deepmine-runs by default)."""

    enabled: bool = Field(True, description="Record params, metrics and the artifact with MLflow.")
    uri: str | None = Field(None, description="Tracking URI; unset = $MLFLOW_TRACKING_URI, else ./deepmine-runs.")
    experiment: str = Field("deepmine", description="MLflow experiment the runs go to.")

    @field_serializer("uri", when_used="json")
    def _hide_password(self, uri: str | None) -> str | None:
        """Saved artifacts, tracked params and written configs (JSON dumps) never hold the URI's password; the
        running process keeps it."""
        return None if uri is None else redact_url(uri)


class RunConfig(_Section):
    """Everything one run needs. Every field can be set with ``--set section.key=value``."""

    task: Literal["auto", "binary", "multiclass", "regression", "multilabel"] = "auto"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


SECTION_ALIASES = {"module": "model"}
# The optimizer belongs to the training loop, so its settings are also reachable under trainer.*
KEY_ALIASES = {
    "trainer.lr": "optimizer.lr",
    "trainer.optimizer": "optimizer.name",
    "trainer.momentum": "optimizer.momentum",
    "trainer.weight_decay": "optimizer.weight_decay",
    "trainer.l1": "optimizer.l1",
}


def config_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts (``optimizer.lr`` style)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(config_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _format_validation_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")  # our validators' own sentences
    given = first.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"  # a whole section: the message names the values
    return f"{where}: {loc}: {message}{shown}"


def _suggest_key(dotted: str, known: list[str]) -> str:
    """Suggest by the field name first (``trainer.lrr`` → ``optimizer.lr``), preferring the same section."""
    section, _, leaf = dotted.rpartition(".")
    by_leaf: dict[str, list[str]] = {}
    for key in known:
        by_leaf.setdefault(key.rpartition(".")[2], []).append(key)
    close = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
    if not close:
        return did_you_mean(dotted, known)
    options = by_leaf[close[0]]
    same_section = [k for k in options if k.rpartition(".")[0] == section]
    return f" (did you mean '{(same_section or options)[0]}'?)"


def _set_dotted(
    tree: dict[str, Any],
    key: str,
    value: Any,
    schema: type[BaseModel] = RunConfig,
    aliases: dict[str, str] | None = None,
    command: str = "fit",
) -> None:
    """Set ``tree[a][b] = value`` for ``key`` ``a.b`` after resolving aliases; unknown keys get a suggestion."""
    parts = key.split(".")
    if parts[0] in SECTION_ALIASES:
        parts[0] = SECTION_ALIASES[parts[0]]
    aliases = KEY_ALIASES if aliases is None else aliases
    dotted = aliases.get(".".join(parts), ".".join(parts))
    parts = dotted.split(".")
    known = config_keys(schema)
    if any(k.startswith(dotted + ".") for k in known):  # a whole section: `trainer: {epochs: 3}`, or `trainer:` empty
        if isinstance(value, dict):
            for leaf, leaf_value in value.items():
                _set_dotted(tree, f"{key}.{leaf}", leaf_value, schema, aliases, command)
            return
        if value is None:  # its keys all commented out
            return
        example = next(k for k in known if k.startswith(dotted + "."))
        raise ConfigError(
            f"config key '{key}' is a section, not a setting (got {value!r}); give it a mapping of its keys "
            f"({parts[-1]}: {{{example.rpartition('.')[2]}: ...}}) or set one key (--set {example}=...)"
        )
    if dotted not in known and not (len(parts) == 3 and ".".join(parts[:2]) == "columns.roles"):
        suggestion = _suggest_key(dotted, known)
        raise ConfigError(f"unknown config key '{key}'{suggestion}; see `deepmine {command} --help`")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got '{text}' (for example --set optimizer.lr=0.003)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def build_config(
    base: BaseModel | dict[str, Any] | str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    schema: type[BaseModel] = RunConfig,
    aliases: dict[str, str] | None = None,
    command: str = "fit",
) -> Any:
    """Merge a base config (object, dict or YAML path) with dotted overrides and validate against ``schema``."""
    keys = {"schema": schema, "aliases": aliases, "command": command}
    if base is None:
        tree: dict[str, Any] = {}
    elif isinstance(base, BaseModel):
        tree = base.model_dump()
    elif isinstance(base, dict):
        tree = copy.deepcopy(base)
    else:
        tree = load_yaml(Path(base), **keys)
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value, **keys)
    try:
        return schema.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, "config")) from err


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where (line and column as an editor numbers them), in one line."""
    if isinstance(err, yaml.reader.ReaderError):
        byte = err.character if isinstance(err.character, int) else ord(err.character[:1] or "\0")
        return (
            f"it is not UTF-8 text (byte 0x{byte:02x} at offset {err.position}); save it as UTF-8 (or UTF-16 with a "
            "byte-order mark)"
        )
    problem, mark = getattr(err, "problem", None), getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(err).splitlines()[0]


def load_yaml(path: Path, **keys: Any) -> dict[str, Any]:
    """Read a YAML config file into a dict, with clear errors (``keys`` as for :func:`_set_dotted`)."""
    if not path.exists():
        raise ConfigError(f"config file '{path}' does not exist; pass an existing YAML file to --config")
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a folder; pass a YAML file to --config")
    try:  # bytes: PyYAML reads UTF-8 and, by their byte-order mark, UTF-16 files
        tree = yaml.safe_load(path.read_bytes()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {_yaml_problem(err)}") from err
    if not isinstance(tree, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(tree).__name__}")
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and dotted != "columns.roles":
                walk(value, dotted + ".")
            else:
                flat[dotted] = value

    walk(tree, "")
    out: dict[str, Any] = {}
    for key, value in flat.items():
        _set_dotted(out, key, value, **keys)
    return out
