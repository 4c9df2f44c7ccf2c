"""Fit a BiLSTM-CRF tagger on tagged sentences with the shared Trainer (early stopping on validation F1)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepmine.exceptions import DataError
from deepmine.tagging.config import TaggingRunConfig
from deepmine.tagging.encode import Encoded, TagBatches, TagEncoder
from deepmine.tagging.metrics import entity_scores
from deepmine.tagging.model import Tagger, TaggingLoss
from deepmine.tagging.predictor import TaggerPredictor, decode_items
from deepmine.tagging.readers import Sentence
from deepmine.tagging.schemes import check_prefixed, check_scheme, detect
from deepmine.train.callbacks import Callback
from deepmine.train.seeding import seed_everything
from deepmine.train.trainer import Trainer


def model_spec(config: TaggingRunConfig, encoder: TagEncoder) -> dict[str, Any]:
    m = config.model
    return {
        "sizes": encoder.sizes(),
        "tags": encoder.tags,
        "internal": encoder.internal,
        "constrain": config.tagging.constrain,
        **m.model_dump(exclude={"word_dropout", "feature_dropout"}),
    }


def _evaluator(tags: list[str], raw: bool):
    def evaluate(model: Tagger, items: Sequence[Encoded], _target: Any) -> dict[str, float]:
        guess = [[tags[i] for i in ids] for ids in decode_items(model, items)]
        truth = [[tags[i] for i in e.tags] for e in items]
        scores = entity_scores(truth, guess, raw=raw)
        return {k: scores[k] for k in ("f1", "precision", "recall", "accuracy")}

    return evaluate


def _holdout(sentences: list[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    order = np.random.default_rng(seed).permutation(len(sentences))
    cut = max(1, int(round(len(sentences) * fraction)))
    if len(sentences) - cut < 1:
        raise DataError(f"{len(sentences)} sentence(s) are too few to hold some out; pass --valid FILE")
    return [sentences[i] for i in np.sort(order[cut:])], [sentences[i] for i in np.sort(order[:cut])]


def _check(sentences: Sequence[Sentence], where: str, scheme: str) -> list[Sentence]:
    """The sentences with tokens; a one-line error when there are none or a tag breaks the file's IOB form."""
    kept = [s for s in sentences if s.tokens]
    if not kept:
        raise DataError(f"{where} holds no tagged tokens; expected token lines (token [features...] tag)")
    if scheme != "raw":
        check_prefixed([s.tags or [] for s in kept], where)
    return kept


def fit_tagger(
    train: Sequence[Sentence],
    config: TaggingRunConfig | None = None,
    valid: Sequence[Sentence] | None = None,
    where: str = "the training data",
    callbacks: Sequence[Callback] = (),
    valid_where: str = "the validation data",
) -> TaggerPredictor:
    """Fit on ``train`` (tagged sentences); stop early on ``valid`` (else a held-out share of ``train``).

    ``callbacks``: extra Trainer callbacks (for example to log each epoch)."""
    config = config or TaggingRunConfig()
    started = time.perf_counter()
    given = config.tagging.scheme
    train = _check(train, where, given)
    valid_name = valid_where if valid is not None else f"the validation split of {where}"
    if valid is None:
        train, valid = _holdout(train, config.trainer.valid_fraction, config.seed)
        valid = _check(valid, valid_name, "raw")  # its tags were checked with train's
    else:
        valid = _check(valid, valid_name, given)
    scheme = detect([s.tags for s in train]) if given == "auto" else check_scheme(given, where)
    widths = {len(s.features) for s in valid}
    use_features = config.tagging.features and bool(train[0].features) and widths == {len(train[0].features)}
    encoder = TagEncoder.build(train, config.tagging, scheme, use_features)
    valid_scheme = detect([s.tags for s in valid])
    valid_scheme = scheme if (valid_scheme == "raw") != (scheme == "raw") else valid_scheme
    train_items = [encoder.encode(s) for s in train]
    valid_items = [encoder.encode(s, valid_scheme) for s in valid]
    spec = model_spec(config, encoder)
    generator = seed_everything(config.seed)
    model = Tagger(spec)
    batch = len(train_items) if config.trainer.batch_size == "full" else int(config.trainer.batch_size)
    source = TagBatches(
        train_items, batch, config.model.word_dropout, encoder.state["singletons_from"], config.model.feature_dropout
    )
    trainer = Trainer(
        model,
        TaggingLoss(model),
        config.trainer,
        config.optimizer,
        generator=generator,
        evaluate=_evaluator(encoder.tags, encoder.internal == "raw"),
        callbacks=callbacks,
    )
    history = trainer.fit(source, valid_inputs=valid_items)
    predictor = TaggerPredictor(config, spec, model.eval(), encoder.state)
    predictor.metrics["valid"] = predictor.score(valid, valid_name)
    predictor.training = {
        "sentences": len(train_items),
        "tokens": int(sum(len(e.words) for e in train_items)),
        "valid_sentences": len(valid_items),
        "epochs": len(history),
        "best_epoch": trainer.best_epoch + 1,
        "history": [{k: round(v, 5) for k, v in h.items()} for h in history],
        "seconds": round(time.perf_counter() - started, 3),
    }
    return predictor
