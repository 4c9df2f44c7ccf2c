"""deepmine: deep learning for data mining.

Public API::

    import deepmine
    predictor = deepmine.fit("adult.csv", target="income")
    predictor.evaluate("adult_test.csv")
    predictor.save("adult-model")
    deepmine.load("adult-model").predict(new_rows)
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "fit",
    "load",
    "profile",
    "Predictor",
    "Recommender",
    "RunConfig",
    "TabularClassifier",
    "TabularRegressor",
    "TextClassifier",
    "ImageClassifier",
    "SequenceClassifier",
    "embed",
    "load_vectors",
    "WordVectors",
]

if TYPE_CHECKING:
    from deepmine.config import RunConfig
    from deepmine.images.estimator import ImageClassifier
    from deepmine.predictor import Predictor
    from deepmine.recommender import Recommender
    from deepmine.sklearn_api import TabularClassifier, TabularRegressor, TextClassifier
    from deepmine.text.vectors import WordVectors


def fit(data: Any, target: str | None = None, *, valid: Any = None, config: Any = None, **settings: Any) -> Predictor:
    """Fit a model on ``data`` (path, SQL URL or DataFrame) to predict ``target``; image folders, IDX/NPZ files
    and tables with an image-path column train an image classifier (an ImagePredictor).

    ``settings`` are config fields, either dotted (``**{"trainer.epochs": 5}``) or by section
    (``trainer={"epochs": 5}``), or top-level fields such as ``seed`` and ``task``.
    """
    from deepmine.config import build_config
    from deepmine.tasks.supervised import fit_table

    overrides: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and key not in ("columns.roles",):
            overrides.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            overrides[key.replace("__", ".")] = value
    if target is not None:
        overrides["columns.target"] = target
    from deepmine import tracking
    from deepmine.images.sources import is_image_source

    if is_image_source(data, overrides.get("images.path_column")):  # image folder, IDX/NPZ, table of image paths
        from deepmine.images.config import build_image_config
        from deepmine.images.task import fit_images

        run: Any = build_image_config(config, overrides)
        predictor, tracker = tracking.tracked_fit(run, lambda: fit_images(data, run, valid=valid))
    else:
        run = build_config(config, overrides)
        predictor, tracker = tracking.tracked_fit(run, lambda: fit_table(data, run, valid=valid))
    if tracker is not None:
        source = str(data) if isinstance(data, str | PathLike) else f"the {type(data).__name__}"  # "the DataFrame"
        predictor.training["run_id"] = tracker.record(predictor, source=source, command="api")
    return predictor


def load(path: Any) -> Predictor | Recommender:
    """Load a saved artifact folder: a Predictor, or a Recommender for `deepmine recommend` artifacts."""
    from deepmine.artifact import load_predictor
    from deepmine.recommender import Recommender, artifact_kind

    kind = artifact_kind(path)
    if kind == "recommender":
        return Recommender.load(path)
    if kind == "sequence":
        from deepmine.tasks.sequence import SequencePredictor

        return SequencePredictor.load(path)
    if kind == "tagger":
        from deepmine.tagging.predictor import TaggerPredictor

        return TaggerPredictor.load(path)
    if kind == "forecaster":
        from deepmine.tasks.forecast import ForecastPredictor

        return ForecastPredictor.load(path)
    if kind == "image":
        from deepmine.images.predictor import ImagePredictor

        return ImagePredictor.load_artifact(path)
    return load_predictor(path)


def profile(data: Any, target: str | None = None, **read_options: Any) -> dict[str, Any]:
    """Per-column roles (with reasons), missing share, distinct counts, statistics, target balance."""
    from deepmine.config import DataConfig
    from deepmine.profile import profile_table

    return profile_table(data, target, DataConfig(**read_options))


def embed(corpus: Any, output: Any = None, *, seed: int = 0, **settings: Any) -> WordVectors:
    """Train word vectors (gensim Word2Vec) on ``corpus``: a .txt file (one document per line), a folder of
    .txt files, a table file or DataFrame (its text column, or ``column=``), or a list of strings.

    ``settings``: ``dim=100, window=5, min_count=2, epochs=5, method="skipgram"|"cbow", column=None,
    tokenizer="auto"|"word"|"jieba"|"char", workers=1`` (more workers: faster, not reproducible).
    Writes the word2vec text format to ``output`` when given."""
    from deepmine.text.embed import train_vectors

    vectors = train_vectors(corpus, seed=seed, **settings).vectors
    if output is not None:
        vectors.save(output)
    return vectors


def load_vectors(path: Any, limit: int | None = None) -> WordVectors:
    """Read word2vec/GloVe text-format vectors (.gz too); ``vectors.nearest(word, k)`` lists neighbours."""
    from deepmine.text.vectors import load_vectors as read

    return read(path, limit)


def __getattr__(name: str) -> Any:
    if name in ("TabularClassifier", "TabularRegressor", "TextClassifier"):
        from deepmine import sklearn_api

        return getattr(sklearn_api, name)
    if name == "ImageClassifier":
        from deepmine.images.estimator import ImageClassifier

        return ImageClassifier
    if name == "SequenceClassifier":
        from deepmine.sequences.estimator import SequenceClassifier

        return SequenceClassifier
    if name == "Recommender":
        from deepmine.recommender import Recommender

        return Recommender
    if name == "Predictor":
        from deepmine.predictor import Predictor

        return Predictor
    if name == "WordVectors":
        from deepmine.text.vectors import WordVectors

        return WordVectors
    if name == "RunConfig":
        from deepmine.config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'deepmine' has no attribute {name!r}")
