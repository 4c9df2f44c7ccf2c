"""A fitted tagger: encoder state + network; tags sentences, finds entity spans, scores like conlleval, and
saves/loads the artifact (``deepmine.json`` with ``"kind": "tagger"`` + safetensors, no pickle)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmine.exceptions import DataError, DeepmineWarning
from deepmine.tagging.config import TaggingRunConfig
from deepmine.tagging.encode import Encoded, TagEncoder, by_length, collate
from deepmine.tagging.metrics import entity_scores
from deepmine.tagging.model import Tagger
from deepmine.tagging.readers import Sentence, tokenize
from deepmine.tagging.schemes import check_prefixed, convert, detect, spans

KIND = "tagger"
BATCH = 128


def decode_items(model: Tagger, items: Sequence[Encoded], batch_size: int = BATCH) -> list[np.ndarray]:
    """Best internal tag ids of every encoded sentence (an empty sentence gets an empty array)."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in items]
    model.eval()
    with torch.inference_mode():
        for positions, batch in by_length(items, batch_size):
            inputs, _ = collate(batch)
            lengths = inputs[4]
            mask = torch.arange(inputs[0].shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            best = model.decode(model(*inputs), mask).numpy()
            for row, position in enumerate(positions):
                out[position] = best[row, : lengths[row]]
    return out


class TaggerPredictor:
    """Tags token sequences; ``predict`` returns tokens, tags (in the training file's scheme) and entities."""

    def __init__(
        self,
        config: TaggingRunConfig,
        spec: dict[str, Any],
        model: Tagger,
        state: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.spec, self.model, self.state = config, spec, model, state
        self.encoder = TagEncoder(state)
        self.metrics = metrics or {}
        self.training = training or {}

    @property
    def task(self) -> str:
        return "tagging"

    @property
    def scheme(self) -> str:
        """The tag scheme of the training file (predictions are written in it)."""
        return self.state["scheme"]

    @property
    def types(self) -> list[str]:
        return list(self.state["types"])

    def _sentences(self, data: Any) -> list[Sentence]:
        from deepmine.tagging.tables import is_table_source, read_table_texts

        features = self.state.get("file_features", len(self.encoder.features))
        if isinstance(data, pd.DataFrame) or (isinstance(data, Path) and is_table_source(data, features)):
            return [Sentence(tokenize(text)) for text in read_table_texts(data).texts]
        if isinstance(data, Path):
            from deepmine.tagging.readers import read_for_prediction

            return read_for_prediction(data, features)
        if isinstance(data, str):
            data = [data]
        sentences = []
        for item in data:
            if isinstance(item, Sentence):
                sentences.append(item)
            elif isinstance(item, str):
                sentences.append(Sentence(tokenize(item)))
            elif isinstance(item, list | tuple) and all(isinstance(t, str) for t in item):
                sentences.append(Sentence(list(item)))
            else:
                raise DataError(
                    f"cannot tag {type(item).__name__} {str(item)[:40]!r}; pass strings (plain text), token lists, "
                    "a DataFrame with a text column, or a Path to a CoNLL/JSONL/text/CSV/Parquet file"
                )
        return sentences

    def tag(self, sentences: Sequence[Sentence], scheme: str | None = None) -> list[list[str]]:
        """Tags of each sentence in ``scheme`` (default: the training file's); long ones are tagged in pieces."""
        limit = self.config.tagging.max_length
        pieces: list[Sentence] = []
        owners: list[int] = []
        for i, s in enumerate(sentences):
            for begin in range(0, max(len(s.tokens), 1), limit):
                end = begin + limit
                pieces.append(Sentence(s.tokens[begin:end], None, [f[begin:end] for f in s.features]))
                owners.append(i)
        decoded = decode_items(self.model, [self.encoder.encode(p) for p in pieces])
        internal: list[list[str]] = [[] for _ in sentences]
        for owner, ids in zip(owners, decoded, strict=True):
            internal[owner].extend(self.encoder.tags[i] for i in ids)
        return [convert(tags, self.encoder.internal, scheme or self.scheme) for tags in internal]

    def predict(self, data: Any) -> list[dict[str, Any]]:
        """For plain-text strings, token lists, a DataFrame's text column or a file (CoNLL, JSONL, text lines, or a
        CSV/Parquet table's text column): ``{tokens, tags, entities: [{type, start, end, text}]}`` per sentence
        (``end`` exclusive, in tokens)."""
        sentences = self._sentences(data)
        out = []
        for sentence, tags in zip(sentences, self.tag(sentences), strict=True):
            entities = [
                {"type": s.type, "start": s.start, "end": s.end, "text": " ".join(sentence.tokens[s.start : s.end])}
                for s in spans(tags, self.scheme)
            ]
            out.append({"tokens": sentence.tokens, "tags": tags, "entities": entities})
        return out

    def score(self, sentences: Sequence[Sentence], where: str = "the test data") -> dict[str, Any]:
        """conlleval figures (fractions) on tagged sentences, in their own scheme (detected; else the model's).
        Entity types the model never saw are scored like the others (as conlleval does), with a warning."""
        truth = [s.tags or [] for s in sentences]
        scheme = detect(truth)
        if self.scheme == "raw":  # a model of plain labels (prefixed or not) scores the labels it knows
            known = {*self.types, "O"}
            if all(t in known for tags in truth for t in tags):
                scheme = "raw"
        else:
            check_prefixed(truth, where)
        if (scheme == "raw") != (self.scheme == "raw"):
            raise DataError(
                f"{where}: the tags look {scheme.upper()} but the model was trained on {self.scheme.upper()} tags; "
                "evaluate on a file tagged like the training file"
            )
        guess = self.tag(sentences, scheme)
        scores = entity_scores(truth, guess, raw=scheme == "raw")
        unseen = {kind: row["support"] for kind, row in scores["per_type"].items() if kind not in self.types}
        if any(unseen.values()):
            named = ", ".join(f"{kind} ({count})" for kind, count in unseen.items() if count)
            warnings.warn(
                f"{where}: entity type(s) {named} never occurred in training, so the model cannot tag them; they "
                f"are scored (recall 0) and count in the overall figures; trained types: {', '.join(self.types)}",
                DeepmineWarning,
                stacklevel=2,
            )
        return {"scheme": scheme, "units": "fractions (conlleval prints percent)", **scores}

    # ---- artifact ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact folder atomically: deepmine.json, weights.safetensors, checksum.sha256."""
        from deepmine.artifact import write_model_artifact

        fields = {
            "config": self.config.model_dump(mode="json"),
            "model": self.spec,
            "state": self.state,
            "metrics": self.metrics,
            "training": self.training,
        }
        return write_model_artifact(path, KIND, fields, self.model)

    @classmethod
    def load(cls, path: str | Path) -> TaggerPredictor:
        """Read an artifact written by :meth:`save` (checksums verified, no pickle)."""
        from deepmine.artifact import load_weights, read_manifest

        path = Path(path)
        manifest = read_manifest(path, KIND, "deepmine fit --task tagging")
        model = Tagger(manifest["model"])
        load_weights(model, path)
        config = TaggingRunConfig.model_validate(manifest["config"])
        return cls(
            config, manifest["model"], model, manifest["state"], manifest.get("metrics"), manifest.get("training")
        )
