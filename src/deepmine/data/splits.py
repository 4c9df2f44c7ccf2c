"""Train/validation splits (stratified for classification when every class allows it)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from deepmine.exceptions import DataError, DeepmineWarning

MIN_ROWS = 4


def train_valid_split(
    frame: pd.DataFrame, target: str, fraction: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a validation split from ``frame``; stratified by ``target`` when asked and possible."""
    train, valid = split_positions(frame, target, fraction, seed, stratify)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[valid].reset_index(drop=True)


def split_positions(
    frame: pd.DataFrame, target: str, fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The positions (sorted) of :func:`train_valid_split`'s training and validation rows in ``frame``."""
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"the training data has {len(frame)} labelled row(s); at least {MIN_ROWS} are needed (some for validation)"
        )
    labels = frame[target]
    strat = None
    if stratify:
        counts = labels.value_counts()
        n_valid = max(1, round(fraction * len(frame)))
        if counts.min() >= 2 and n_valid >= len(counts):
            strat = labels
        elif counts.min() < 2:
            single = [str(value) for value in counts.index[counts < 2]]
            warnings.warn(
                f"target '{target}': class(es) {single[:5]}{' ...' if len(single) > 5 else ''} have a single row, "
                "so the validation split is not stratified and cannot measure them; add rows of these classes or "
                "drop them",
                DeepmineWarning,
                stacklevel=2,
            )
    index = np.arange(len(frame))
    train_idx, valid_idx = train_test_split(index, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(train_idx), np.sort(valid_idx)
