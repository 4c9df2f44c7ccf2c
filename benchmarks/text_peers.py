"""Text peers for the imdb and chnsenticorp benchmarks, written plainly (one child process each; nothing from
deepmine), and the data preparation both benchmarks share.

    python benchmarks/text_peers.py tfidf TRAIN TEST --analyzer word|char   TF-IDF + logistic regression
    python benchmarks/text_peers.py lstm TRAIN TEST                         Embedding(10000,64)+LSTM(64), pad 100

TRAIN and TEST are CSV files with columns ``text`` and ``label``. Each prints one JSON object on stdout.
TF-IDF: word 1–2-grams (sublinear tf, min_df 2, C=4) or character 1–3-grams (sublinear tf, C=4), lbfgs.
LSTM: the classic Keras recipe (Keras' tokenizer: lower-case words, top 10,000; pre-padding/truncation to 100),
Adam 1e-3, batch 32, 3 epochs, one thread, as a hand-written PyTorch loop.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

VOCAB, DIM, HIDDEN, PAD, EPOCHS, BATCH = 10000, 64, 64, 100, 3, 32


def read(path: Path) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(path)
    return frame["text"].fillna("").astype(str).tolist(), frame["label"].to_numpy()


def tfidf(args: argparse.Namespace) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    x_train, y_train = read(args.train)
    x_test, y_test = read(args.test)
    started = time.perf_counter()
    if args.analyzer == "word":
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    else:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    model = LogisticRegression(C=4, max_iter=1000)
    model.fit(vectorizer.fit_transform(x_train), y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pred = model.predict(vectorizer.transform(x_test))
    return {
        "accuracy": float(accuracy_score(y_test, pred)),
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - started,
        "features": len(vectorizer.vocabulary_),
    }


def keras_words(text: str) -> list[str]:
    return re.sub(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]", " ", text.lower()).split()


def lstm(args: argparse.Namespace) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, y_train = read(args.train)
    x_test, y_test = read(args.test)
    started = time.perf_counter()
    counts = Counter(w for text in x_train for w in keras_words(text))
    index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common(VOCAB - 1))}

    def encode(texts: list[str]) -> torch.Tensor:
        out = np.zeros((len(texts), PAD), dtype="int64")
        for row, text in enumerate(texts):
            ids = [index[w] for w in keras_words(text) if w in index][-PAD:]
            if ids:
                out[row, -len(ids) :] = ids
        return torch.from_numpy(out)

    class Classic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, DIM)
            self.lstm = nn.LSTM(DIM, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(self.embedding(x))
            return self.head(h[-1]).squeeze(-1)

    xs, ys = encode(x_train), torch.tensor(y_train, dtype=torch.float32)
    model = Classic()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(0)
    train_seconds = 0.0
    for _ in range(EPOCHS):
        epoch_start = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(xs), generator=generator).split(BATCH):
            optimizer.zero_grad()
            loss_fn(model(xs[idx]), ys[idx]).backward()
            optimizer.step()
        train_seconds += time.perf_counter() - epoch_start
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.eval()
    with torch.no_grad():
        xt = encode(x_test)
        logits = torch.cat([model(xt[i : i + 1024]) for i in range(0, len(xt), 1024)])
    accuracy = float(((logits > 0).numpy().astype(int) == y_test).mean())
    # forward + backward ≈ 3 × forward; forward per step: 4 gates × (DIM + HIDDEN) × HIDDEN multiply-adds
    flops = 3 * 2 * 4 * (DIM + HIDDEN) * HIDDEN * PAD * len(xs) * EPOCHS
    return {
        "accuracy": accuracy,
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - started,
        "epochs": EPOCHS,
        "lstm_gflops_per_second": flops / train_seconds / 1e9,
    }


def matmul_peak() -> dict:
    """fp32 GFLOP/s of a 2048×2048 matmul on all cores (as bench_mnist measures it)."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ b
    return {"matmul_peak_gflops": 2 * 2048**3 * repeats / (time.perf_counter() - started) / 1e9}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="peer", required=True)
    p = sub.add_parser("tfidf")
    p.add_argument("train", type=Path)
    p.add_argument("test", type=Path)
    p.add_argument("--analyzer", choices=["word", "char"], default="word")
    p = sub.add_parser("lstm")
    p.add_argument("train", type=Path)
    p.add_argument("test", type=Path)
    sub.add_parser("peak")
    args = parser.parse_args(argv)
    result = {"tfidf": tfidf, "lstm": lstm, "peak": lambda _: matmul_peak()}[args.peer](args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
