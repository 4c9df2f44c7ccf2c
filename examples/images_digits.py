"""Classify scikit-learn's 8x8 digits with deepmine's ImageClassifier, save the model, load it back.

python examples/images_digits.py
"""

from __future__ import annotations

import tempfile

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import deepmine
from deepmine import ImageClassifier

digits = load_digits()
images = (digits.images * 255 / 16).astype(np.uint8)  # (n, 8, 8) gray pixels
x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=0.25, random_state=0)
model = ImageClassifier(epochs=15, seed=0).fit(x_train, y_train)
print(f"test accuracy {model.score(x_test, y_test):.4f}")
with tempfile.TemporaryDirectory() as folder:
    model.predictor_.save(f"{folder}/digits-model")
    again = deepmine.load(f"{folder}/digits-model")
    print("same predictions after loading:", bool((again.predict(x_test) == model.predict(x_test)).all()))
