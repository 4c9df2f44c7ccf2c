"""What a table fit does for its text columns: n-gram tables and model spec before the model is built,
n-gram ratios and word vectors into it afterwards, length-bucketed batches and the lines the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deepmine.config import RunConfig
from deepmine.features.pipeline import FeaturePipeline
from deepmine.text.batches import LengthBuckets
from deepmine.text.encoders import LinearNgramEncoder
from deepmine.text.linear import LINEAR_ENCODERS, NGRAM_ENCODERS, fit_linear, presence
from deepmine.text.ngrams import NgramTable

TEXT_START = 2  # model inputs: numeric block, categorical block, then one id block per text column


def label_indicators(task: str | None, target: torch.Tensor, n_classes: int) -> np.ndarray | None:
    """(rows, classes) 0/1 indicators for Naive-Bayes ratios; None for regression."""
    if task == "regression":
        return None
    y = target.numpy()
    if y.ndim == 2:  # multilabel
        return (y > 0.5).astype("float64")
    return np.eye(n_classes, dtype="float64")[y]


TEXT_ONLY_ENCODER = "ngram+nbsvm+tfidf"


def resolve_text_encoder(config: RunConfig, pipeline: FeaturePipeline) -> RunConfig:
    """``text.encoder=auto`` made concrete: the network plus the two solved linear members when the text
    columns are the only features, else the network alone (the linear members see only the text)."""
    if config.text.encoder != "auto" or not pipeline.text:
        return config
    text_only = not pipeline.numeric_widths and not pipeline.cardinalities
    text = config.text.model_copy(update={"encoder": TEXT_ONLY_ENCODER if text_only else "ngram"})
    return config.model_copy(update={"text": text})


def text_tables(
    pipeline: FeaturePipeline,
    config: RunConfig,
    x_train: Sequence[torch.Tensor],
    target: torch.Tensor,
    task: str | None,
    n_classes: int,
) -> list[NgramTable | None]:
    """One n-gram table per text column (the ngram, nbsvm and tfidf encoders), fitted on the training rows only,
    with the linear members solved on it."""
    t = config.text
    if not set(NGRAM_ENCODERS).intersection(t.encoders):
        return [None for _ in pipeline.text]
    labels = label_indicators(task, target, n_classes)
    outputs = 1 if task == "regression" else n_classes
    tables = []
    for ids, enc in zip(x_train[TEXT_START:], pipeline.text.values(), strict=True):
        rows = ids.numpy()
        table = NgramTable.fit(
            rows, enc.cardinality, t.ngrams, t.ngram_min_df, t.max_ngrams, labels, folds=t.ngram_folds
        )
        kinds = list(dict.fromkeys(e for e in t.encoders if e in LINEAR_ENCODERS))
        present = presence(rows, table.keys, enc.cardinality, t.ngrams) if kinds else None
        size = (len(rows), len(table.keys) + 1)
        for kind in kinds:
            table.linear[kind] = fit_linear(kind, present, size, target, task, outputs, table.ratios)
        tables.append(table)
    return tables


LINEAR_ENSEMBLE_DELTA = 0.01


def _linear_only(member: nn.Module) -> bool:
    return all(isinstance(encoder, LinearNgramEncoder) for encoder in member.texts)


def _freeze_to_linear_scores(member: nn.Module) -> None:
    """A member whose text encoders are all solved linear models outputs their scores alone (its network's head
    is zeroed) and trains nothing, so the validation loss that stops training follows the network members."""
    with torch.no_grad():
        member.head.weight.zero_()
        member.head.bias.zero_()
    for parameter in member.parameters():
        parameter.requires_grad_(False)


def text_spec(pipeline: FeaturePipeline, config: RunConfig, tables: list[NgramTable | None]) -> dict[str, Any]:
    """Model-spec entries for the text columns (sizes the builder needs to rebuild the model from JSON)."""
    if not pipeline.text:
        return {}
    specs = []
    for encoder, table in zip(pipeline.text.values(), tables, strict=True):
        spec = {"length": encoder.length}
        if table is not None:
            spec["ngram_rows"] = len(table.keys) + 1
        specs.append(spec)
    members = [{"text_encoder": name} for name in config.text.encoders]
    return {"text_specs": specs, "text": config.text.model_dump(mode="json"), "members": members}


def install_text(
    model: nn.Module, pipeline: FeaturePipeline, config: RunConfig, tables: list[NgramTable | None]
) -> None:
    """Copy the n-gram tables (and word vectors when ``text.vectors`` is set) into every member's encoders."""
    members = [m for m in model.modules() if hasattr(m, "texts") and isinstance(m.texts, nn.ModuleList)]
    matrices = _vector_matrices(pipeline, config)
    if any(not _linear_only(member) for member in members) and any(map(_linear_only, members)):
        for member in filter(_linear_only, members):
            _freeze_to_linear_scores(member)
        # the frozen members average into the validation loss, so the network's overfitting shows only as
        # 0.1 %-per-epoch steps (IMDB: 40 epochs instead of 8 for the same accuracy): ask for 1 % steps
        model.early_stopping_delta = LINEAR_ENSEMBLE_DELTA
    for member in members:
        for i, encoder in enumerate(member.texts):
            encoder.install(tables[i])
            if matrices is not None and hasattr(encoder, "embedding"):
                with torch.no_grad():
                    encoder.embedding.weight.copy_(torch.from_numpy(matrices[i]))
                encoder.embedding.weight.requires_grad_(not config.text.freeze)


def _vector_matrices(pipeline: FeaturePipeline, config: RunConfig) -> list[np.ndarray] | None:
    if not config.text.vectors:
        return None
    from deepmine.text.vectors import embedding_matrix, load_vectors

    vectors = load_vectors(config.text.vectors)
    return [
        embedding_matrix(vectors, enc.vocabulary.tokens, config.text.embedding_dim, config.seed)[0]
        for enc in pipeline.text.values()
    ]


def batch_source(config: RunConfig, x_train: Sequence[torch.Tensor], target: torch.Tensor) -> LengthBuckets | None:
    """Length-bucketed batches when the table has text columns (``text.bucket``), else None."""
    if len(x_train) <= TEXT_START or not config.text.bucket or config.trainer.batch_size == "full":
        return None
    return LengthBuckets(x_train, target, int(config.trainer.batch_size), range(TEXT_START, len(x_train)))


def describe_text(pipeline: FeaturePipeline) -> dict[str, Any]:
    """Per text column: tokenizer and why, vocabulary size, length and its percentile (artifact + CLI)."""
    return {
        name: {
            "tokenizer": enc.tokenizer,
            "reason": enc.reason,
            "vocabulary": enc.cardinality,
            "max_length": enc.length,
            "length": enc.length_stats,
            "line": enc.describe(name),
        }
        for name, enc in pipeline.text.items()
    }
