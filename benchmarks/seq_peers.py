"""Sequence and forecasting peers for the ett, ucr and mnist-rows benchmarks, written plainly (one child
process each, hand-written NumPy / PyTorch loops; nothing from deepmine).

    python benchmarks/seq_peers.py naive CSV HORIZON          last-value and seasonal-naive (24 h) on ETTh1
    python benchmarks/seq_peers.py lstm-forecast CSV HORIZON  an LSTM encoder + linear head, plain PyTorch loop
    python benchmarks/seq_peers.py lstm-ucr TRAIN TEST        an LSTM classifier on a UCR train/test pair
    python benchmarks/seq_peers.py lstm-mnist FOLDER          the classic MNIST-rows LSTM(128), 28 steps × 28

Each prints one JSON object on stdout. ETTh1 protocol: rows 0..8640 train, next 2880 validation, next 2880
test, standardized with training statistics, lookback 96, every test window (its lookback may reach back
into validation), MSE/MAE over all 7 variables on standardized values.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

TRAIN, VALID, TEST, LOOKBACK, SEASON = 8640, 2880, 2880, 96, 24


def ett(path: Path) -> np.ndarray:
    values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 8), dtype=np.float64)
    mean, std = values[:TRAIN].mean(0), values[:TRAIN].std(0)
    return ((values - mean) / std).astype(np.float32)


def starts(first: int, end: int, horizon: int) -> np.ndarray:
    return np.arange(first - LOOKBACK, end - LOOKBACK - horizon + 1)


def windows(z: np.ndarray, begin: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    past = z[begin[:, None] + np.arange(LOOKBACK)]
    future = z[begin[:, None] + LOOKBACK + np.arange(horizon)]
    return past, future


def naive(args: argparse.Namespace) -> dict:
    z = ett(args.path)
    started = time.perf_counter()
    past, future = windows(z, starts(TRAIN + VALID, TRAIN + VALID + TEST, args.horizon), args.horizon)
    last = np.repeat(past[:, -1:], args.horizon, axis=1)
    season = past[:, -SEASON:]
    seasonal = np.concatenate([season] * (args.horizon // SEASON + 1), axis=1)[:, : args.horizon]
    out = {}
    for name, pred in (("last_value", last), ("seasonal_naive", seasonal)):
        out[name] = {"mse": float(np.mean((pred - future) ** 2)), "mae": float(np.mean(np.abs(pred - future)))}
    return {**out, "windows": len(past), "seconds": time.perf_counter() - started}


class LSTMForecast(nn.Module):
    def __init__(self, channels: int, horizon: int, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon * channels)
        self.horizon, self.channels = horizon, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1]).view(-1, self.horizon, self.channels)


def mse_of(model: nn.Module, past: np.ndarray, future: np.ndarray) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(past[i : i + 512])) for i in range(0, len(past), 512)]).numpy()
    return float(np.mean((pred - future) ** 2)), float(np.mean(np.abs(pred - future)))


def lstm_forecast(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    z, h = ett(args.path), args.horizon
    train = windows(z, np.arange(0, TRAIN - LOOKBACK - h + 1), h)
    valid = windows(z, starts(TRAIN, TRAIN + VALID, h), h)
    test = windows(z, starts(TRAIN + VALID, TRAIN + VALID + TEST, h), h)
    model = LSTMForecast(7, h)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    best, best_state, started = float("inf"), None, time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        valid_mse = mse_of(model, *valid)[0]
        if valid_mse < best:
            best, best_state = valid_mse, {k: v.clone() for k, v in model.state_dict().items()}
    fit_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    started = time.perf_counter()
    mse, mae = mse_of(model, *test)
    return {
        "mse": mse,
        "mae": mae,
        "valid_mse": best,
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - started,
        "epochs": args.epochs,
        "windows": len(test[0]),
    }


class LSTMClassifier(nn.Module):
    def __init__(self, channels: int, classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return self.head(h[-1])


def train_classifier(x, y, xt, yt, classes, epochs, batch, lr, hidden) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = LSTMClassifier(x.shape[2], classes, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.eval()
    with torch.no_grad():
        xt_ = torch.from_numpy(xt)
        pred = torch.cat([model(xt_[i : i + 1024]).argmax(1) for i in range(0, len(xt_), 1024)]).numpy()
    return {
        "accuracy": float((pred == yt).mean()),
        "fit_seconds": fit_seconds,
        "predict_seconds": time.perf_counter() - started,
        "epochs": epochs,
    }


def lstm_ucr(args: argparse.Namespace) -> dict:
    train, test = np.loadtxt(args.train, delimiter="\t"), np.loadtxt(args.test, delimiter="\t")
    labels = {v: i for i, v in enumerate(sorted(set(train[:, 0])))}
    y, yt = (np.array([labels[v] for v in part[:, 0]], dtype=np.int64) for part in (train, test))
    x, xt = (part[:, 1:, None].astype(np.float32) for part in (train, test))
    return train_classifier(x, y, xt, yt, len(labels), args.epochs, 16, 1e-3, 128)


def lstm_mnist(args: argparse.Namespace) -> dict:
    import gzip

    def idx(name: str) -> np.ndarray:
        with gzip.open(args.folder / name) as handle:
            data = handle.read()
        dims = data[3]
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)

    x = idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    xt = idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y, yt = idx("train-labels-idx1-ubyte.gz").astype(np.int64), idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return train_classifier(x, y, xt, yt, 10, args.epochs, 128, 1e-3, 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seq_peers.py")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("naive", "lstm-forecast"):
        p = sub.add_parser(name)
        p.add_argument("path", type=Path)
        p.add_argument("horizon", type=int)
        p.add_argument("--epochs", type=int, default=10)
    p = sub.add_parser("lstm-ucr")
    p.add_argument("train", type=Path)
    p.add_argument("test", type=Path)
    p.add_argument("--epochs", type=int, default=100)
    p = sub.add_parser("lstm-mnist")
    p.add_argument("folder", type=Path)
    p.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    handler = {"naive": naive, "lstm-forecast": lstm_forecast, "lstm-ucr": lstm_ucr, "lstm-mnist": lstm_mnist}
    sys.stdout.write(json.dumps(handler[args.command](args)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
