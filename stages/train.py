"""Stage 4, train: the article's single neuron, a = sigmoid(X W + b), by full-batch gradient descent.

Notation (rows are examples): X (m, n) float32 features, y (m,) labels in {0, 1}, W (n,), b scalar,
z = X W + b (m,), a = sigmoid(z) (m,). The article's notebook used the transpose (X of shape (n, m)).

Writes models/weights.npz (W, b, and the preprocessing a new photo needs), the per-epoch history
plots/train_history.csv and the final training metrics metrics/train.json.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import (
    PARAMS_FILE,
    ParamError,
    atomic_path,
    check_choice,
    check_number,
    load_npz,
    load_section,
    run_cli,
    save_json,
    save_npz,
)
from stages.flatten_normalize import FEATURES_DIR, PIXEL_SCALE

WEIGHTS_FILE = Path("models/weights.npz")
HISTORY_FILE = Path("plots/train_history.csv")
METRICS_FILE = Path("metrics/train.json")
LOSSES = ("mse", "cross_entropy")
GRADIENTS = ("exact", "notebook")
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy")


@dataclass(frozen=True)
class TrainParams:
    lr: float
    epochs: int
    loss: str = "mse"
    gradient: str = "exact"


def read_params(path: Path = PARAMS_FILE) -> TrainParams:
    """Checked `train` group of params.yaml."""
    group = load_section("train", ("lr", "epochs", "loss", "gradient"), path)
    params = TrainParams(
        lr=float(check_number("train.lr", group["lr"], low=0, low_open=True)),
        epochs=check_number("train.epochs", group["epochs"], integer=True, low=1, high=10_000_000),
        loss=check_choice("train.loss", group["loss"], LOSSES),
        gradient=check_choice("train.gradient", group["gradient"], GRADIENTS),
    )
    if params.gradient == "notebook" and params.loss != "mse":
        raise ParamError(
            f"params.yaml: train.gradient = 'notebook' is only defined for train.loss = 'mse' "
            f"(got train.loss = {params.loss!r}); use train.gradient = 'exact'"
        )
    return params


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written as exp(-log(1 + exp(-z))) so that no exp overflows."""
    return np.exp(-np.logaddexp(0, -z))


def loss_value(loss: str, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    """Mean loss J over the m examples, accumulated in float64."""
    z, a, y = (np.asarray(v, dtype=np.float64) for v in (z, a, y))
    if loss == "mse":
        return float(0.5 * np.mean((a - y) ** 2))  # J = 1/(2m) sum (a - y)^2
    # J = -1/m sum y log a + (1 - y) log(1 - a) = 1/m sum log(1 + e^z) - y z, stable for any z
    return float(np.mean(np.logaddexp(0, z) - y * z))


def loss_gradient(loss: str, gradient: str, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dJ/dz (m,): how the mean loss changes with each example's z."""
    m = a.shape[0]
    if loss == "cross_entropy":
        return (a - y) / m  # sigmoid' = a (1 - a) cancels the log's 1 / (a (1 - a))
    s = sigmoid(a) if gradient == "notebook" else a  # notebook: sigmoid applied to A a second time
    return (a - y) * s * (1 - s) / m  # chain rule: (a - y) * sigmoid'(z), sigmoid'(z) = a (1 - a)


def fit(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    progress: bool = True,
) -> tuple[np.ndarray, np.float32, pd.DataFrame]:
    """Full-batch gradient descent from W = 0, b = 0.

    Parameters: X (m, n) and X_valid (m_valid, n) float32; y (m,), y_valid (m_valid,) in {0, 1}.
    Returns W (n,) float32, b float32, and the history: one row per epoch 0..epochs, row k holding
    the losses and accuracies (threshold 0.5) after k updates.
    """
    y = y.astype(np.float32)
    y_valid = y_valid.astype(np.float32)
    lr = np.float32(params.lr)
    W = np.zeros(X.shape[1], dtype=np.float32)
    b = np.float32(0.0)
    history = np.zeros((params.epochs + 1, len(HISTORY_COLUMNS)))
    bar = tqdm(total=params.epochs, desc="train", unit="epoch", disable=not progress, mininterval=0.5)
    for epoch in range(params.epochs + 1):
        z = X @ W + b
        a = sigmoid(z)
        z_valid = X_valid @ W + b
        a_valid = sigmoid(z_valid)
        history[epoch] = (
            epoch,
            loss_value(params.loss, z, a, y),
            loss_value(params.loss, z_valid, a_valid, y_valid),
            np.mean((a > 0.5) == y),
            np.mean((a_valid > 0.5) == y_valid),
        )
        if epoch == params.epochs:
            break
        dz = loss_gradient(params.loss, params.gradient, a, y)
        W -= lr * (dz @ X)  # dJ/dW = X^T dz
        b -= lr * dz.sum()  # dJ/db = sum(dz)
        bar.update()
        if epoch % 100 == 0:
            bar.set_postfix(train_loss=f"{history[epoch, 1]:.6f}", valid_loss=f"{history[epoch, 2]:.6f}")
    bar.close()
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": int})
    return W, np.float32(b), frame


def train(params: TrainParams, features_dir: Path = FEATURES_DIR, progress: bool = True) -> pd.DataFrame:
    """Run the stage: read the features, fit, write weights, history and metrics. Returns the history."""
    data = load_npz(Path(features_dir) / "train.npz", ("X", "y", "image_size"))
    valid = load_npz(Path(features_dir) / "valid.npz", ("X", "y"))
    W, b, history = fit(data["X"], data["y"], valid["X"], valid["y"], params, progress)
    save_npz(WEIGHTS_FILE, W=W, b=b, image_size=data["image_size"], pixel_scale=np.float32(PIXEL_SCALE))
    with atomic_path(HISTORY_FILE) as tmp:
        history.to_csv(tmp, index=False, float_format="%.8g")
    final = history.iloc[-1]
    save_json(
        METRICS_FILE,
        {"train_loss": round(float(final.train_loss), 8), "train_accuracy": round(float(final.train_accuracy), 6)},
    )
    return history


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.train",
        description="Train the single neuron on data/features/train.npz by full-batch gradient descent, "
        "tracking data/features/valid.npz every epoch. Writes models/weights.npz, plots/train_history.csv "
        "and metrics/train.json. Parameters: the `train` group of params.yaml.",
    )
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    args = parser.parse_args(argv)
    params = read_params(args.params)
    final = train(params).iloc[-1]
    print(
        f"train: {params.epochs} epochs, train loss {final.train_loss:.6f} accuracy {final.train_accuracy:.4f}, "
        f"valid loss {final.valid_loss:.6f} accuracy {final.valid_accuracy:.4f}"
    )


if __name__ == "__main__":
    run_cli(main)
