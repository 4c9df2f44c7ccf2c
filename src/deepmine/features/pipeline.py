"""FeaturePipeline: the fitted preprocessors of every input column plus the target encoding.

The same pipeline runs at training and at prediction, so training/serving skew cannot happen.
Its state is plain JSON.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepmine.config import PreprocessConfig, TextConfig
from deepmine.data.schema import Schema, to_native
from deepmine.exceptions import ColumnError, DataError, DeepmineWarning
from deepmine.features.categorical import CategoricalEncoder, as_keys
from deepmine.features.datetime import DatetimeEncoder
from deepmine.features.numeric import NumericEncoder, stacked_value_columns, to_numbers
from deepmine.text.column import TextColumnEncoder
from deepmine.text.linear import NGRAM_ENCODERS


@dataclass
class Blocks:
    """Model inputs: a float block, a categorical-index block and one id block per text column."""

    numeric: np.ndarray
    categorical: np.ndarray
    texts: list[np.ndarray]

    def as_list(self) -> list[np.ndarray]:
        return [self.numeric, self.categorical, *self.texts]

    def __len__(self) -> int:
        return len(self.numeric)


class FeaturePipeline:
    """Fit on the training split only; transform any split or new data the same way."""

    def __init__(
        self, schema: Schema, preprocess: PreprocessConfig | None = None, text: TextConfig | None = None
    ) -> None:
        self.schema = schema
        self.preprocess = preprocess or PreprocessConfig()
        self.text_config = text or TextConfig()
        self.numeric: dict[str, NumericEncoder | DatetimeEncoder] = {}
        self.categorical: dict[str, CategoricalEncoder] = {}
        self.text: dict[str, TextColumnEncoder] = {}
        self.target_mean = 0.0
        self.target_std = 1.0

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> FeaturePipeline:
        p = self.preprocess
        regression = self.schema.task == "regression"
        target = None
        if self.schema.target is not None and self.schema.target in frame.columns:
            target = (
                to_numbers(frame[self.schema.target]) if regression else as_keys(frame[self.schema.target]).to_numpy()
            )
            if self.schema.task == "multilabel":  # tree bins split on label combinations; empty = no labels
                target = np.where(pd.isna(target), "", target)
        for spec in self.schema.features:
            column = frame[spec.name]
            if spec.role == "numeric":
                encoder = NumericEncoder(p.numeric_scaling, p.numeric_bins, p.infinite, spec.missing)
                self.numeric[spec.name] = encoder.fit(column, target, regression)
            elif spec.role == "datetime":
                self.numeric[spec.name] = DatetimeEncoder().fit(column)
            elif spec.role in ("categorical", "binary"):
                self.categorical[spec.name] = CategoricalEncoder(p.rare_min_count, p.max_categories).fit(column)
            elif spec.role == "text":
                self.text[spec.name] = self._text_encoder().fit(column)
        if self.schema.task == "regression":
            y = to_numbers(frame[self.schema.target].dropna())
            self.target_mean, self.target_std = float(y.mean()), float(y.std()) or 1.0
        return self

    def _text_encoder(self) -> TextColumnEncoder:
        t = self.text_config
        return TextColumnEncoder(
            t.tokenizer,
            t.max_tokens,
            t.min_freq,
            t.max_length or t.length_cap,
            t.length_percentile,
            fixed_length=t.max_length is not None,
            subword_vocab=t.subword_vocab,
            chars=any(e in NGRAM_ENCODERS for e in t.encoders),
        )

    # ---- transforming --------------------------------------------------------------------
    def check_columns(self, frame: pd.DataFrame, where: str) -> None:
        """Missing training columns are an error; extra columns are ignored with a warning."""
        needed = [s.name for s in self.schema.features]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ColumnError(
                f"{where} lacks column(s) {missing} that the model was trained on; add them "
                f"(values may be empty) — expected columns: {needed}"
            )
        known = {s.name for s in self.schema.columns} | {self.schema.target}
        extra = [c for c in frame.columns if c not in known]
        if extra:
            warnings.warn(
                f"{where}: ignoring column(s) {extra} that the model was not trained on", DeepmineWarning, stacklevel=2
            )

    def transform(self, frame: pd.DataFrame, where: str = "the data") -> Blocks:
        self.check_columns(frame, where)
        n = len(frame)
        try:
            numeric = [
                enc.transform(frame[name], where) if isinstance(enc, DatetimeEncoder) else enc.transform(frame[name])
                for name, enc in self.numeric.items()
            ]
        except DataError as err:  # a bad value: name its file too (a --valid file, the rows being scored)
            raise DataError(f"{where}: {err}") from err
        categorical = [enc.transform(frame[name]) for name, enc in self.categorical.items()]
        return Blocks(
            numeric=np.concatenate(numeric, axis=1) if numeric else np.zeros((n, 0), dtype="float32"),
            categorical=np.stack(categorical, axis=1) if categorical else np.zeros((n, 0), dtype="int64"),
            texts=[enc.transform(frame[name]) for name, enc in self.text.items()],
        )

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, list[str]]:
        """Per categorical column, values never seen in training (mapped to 'unknown')."""
        found = {name: enc.unseen(frame[name]) for name, enc in self.categorical.items() if name in frame}
        return {k: v for k, v in found.items() if v}

    def encode_target(self, frame: pd.DataFrame, where: str = "the data") -> np.ndarray:
        """Class indices (int64), standardized values (float32) or a (rows, labels) 0/1 matrix (multilabel)."""
        column = frame[self.schema.target]
        if self.schema.task == "multilabel":
            from deepmine.tasks.multilabel import indicator_matrix

            sep = self.schema.label_sep or "|"
            return indicator_matrix(column, self.schema.classes, sep, self.schema.target, where)
        if self.schema.task == "regression":
            try:
                values = to_numbers(column, trained=True)
            except DataError as err:
                raise DataError(f"{where}: {err}") from err  # the target of rows being scored: name their file
            return ((values - self.target_mean) / self.target_std).astype("float32")
        keys = as_keys(column)
        lookup = {key: i for i, key in enumerate(as_keys(pd.Series(self.schema.classes)))}
        codes = keys.map(lookup)
        unknown = codes.isna() & keys.notna()
        if unknown.any():
            value = column[unknown].iloc[0]
            raise DataError(
                f"target column '{self.schema.target}' in {where} holds {to_native(value)!r}, which is not one of "
                f"the trained classes {self.schema.classes}; fix the labels (for example strip a trailing '.')"
            )
        return codes.to_numpy(dtype="int64")

    def decode_target(self, values: np.ndarray) -> np.ndarray:
        """Model outputs back to labels, label lists (multilabel: from decided 0/1 rows) or original-scale numbers."""
        if self.schema.task == "multilabel":
            from deepmine.tasks.multilabel import label_lists

            return label_lists(values, self.schema.classes)
        if self.schema.task == "regression":
            return values * self.target_std + self.target_mean
        classes = np.asarray(self.schema.classes, dtype=object)
        return classes[values]

    # ---- sizes for the model -------------------------------------------------------------
    @property
    def numeric_widths(self) -> list[int]:
        """Width of each numeric column's block of features, in order."""
        return [enc.width for enc in self.numeric.values()]

    @property
    def tree_columns(self) -> list[int]:
        """Positions in the trees' design (numeric block, then categorical codes) that trees are grown on: every
        numeric column's value and missing flag, without its piecewise-linear bins, and every categorical code."""
        width = sum(self.numeric_widths)
        return stacked_value_columns(self.numeric.values()) + list(range(width, width + len(self.categorical)))

    @property
    def cardinalities(self) -> list[int]:
        return [enc.cardinality for enc in self.categorical.values()]

    @property
    def text_cardinalities(self) -> list[int]:
        return [enc.cardinality for enc in self.text.values()]

    # ---- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "numeric": {
                name: {"kind": "datetime" if isinstance(enc, DatetimeEncoder) else "numeric", **enc.state()}
                for name, enc in self.numeric.items()
            },
            "categorical": {name: enc.state() for name, enc in self.categorical.items()},
            "text": {name: enc.state() for name, enc in self.text.items()},
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "preprocess": self.preprocess.model_dump(),
            "text_config": self.text_config.model_dump(),
        }

    @classmethod
    def from_state(cls, schema: Schema, state: dict[str, Any]) -> FeaturePipeline:
        pipeline = cls(
            schema,
            PreprocessConfig.model_validate(state["preprocess"]),
            TextConfig.model_validate(state.get("text_config", {})),
        )
        for name, enc_state in state["numeric"].items():
            enc_state = dict(enc_state)
            kind = enc_state.pop("kind")
            encoder_cls = DatetimeEncoder if kind == "datetime" else NumericEncoder
            pipeline.numeric[name] = encoder_cls.from_state(enc_state)
        pipeline.categorical = {n: CategoricalEncoder.from_state(s) for n, s in state["categorical"].items()}
        pipeline.text = {n: TextColumnEncoder.from_state(s) for n, s in state["text"].items()}
        pipeline.target_mean, pipeline.target_std = state["target_mean"], state["target_std"]
        return pipeline
