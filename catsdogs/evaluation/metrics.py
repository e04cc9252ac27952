"""Validation metrics of the neuron's scores: accuracy, precision, recall, F1, ROC AUC, losses, confusion counts,
and the most confident mistakes.

Pure functions of labels y (m,) in {0, 1} and scores z = X W + b (m,); cat (1) is the positive class.
The evaluate group of params.yaml (the threshold) is declared here rather than in evaluate.py, so that
predict reads it without importing evaluate's plotting.
"""

from __future__ import annotations

import numpy as np

from catsdogs.neuron.reference import loss_value, predict, sigmoid


def refuse_nan(scores: np.ndarray) -> None:
    """ValueError when a score is NaN: it has no rank (a sort puts it anywhere) and no prediction."""
    if np.isnan(scores).any():
        raise ValueError(f"{int(np.isnan(scores).sum())} of {len(scores)} scores are NaN; metrics need numbers")


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (k,) as the threshold sweeps down through the distinct scores.

    Starts at (0, 0) and ends at (1, 1); tied scores make one diagonal step. Needs both classes in y and
    no NaN score (ValueError).
    """
    refuse_nan(scores)
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_y = scores[order], y[order].astype(np.int64)
    # ends of ties by comparison, not np.diff: inf - inf is NaN, which would split a tie of infinities
    last_of_tie = np.r_[np.flatnonzero(ranked_scores[1:] != ranked_scores[:-1]), len(scores) - 1]
    true_pos = np.cumsum(ranked_y)[last_of_tie]
    false_pos = last_of_tie + 1 - true_pos
    return np.r_[0.0, false_pos / false_pos[-1]], np.r_[0.0, true_pos / true_pos[-1]]


def classification_metrics(y: np.ndarray, z: np.ndarray, threshold: float = 0.5) -> dict[str, float | int | None]:
    """Metrics of scores z = X W + b (m,) against labels y (m,) in {0, 1}; cat (1) is the positive class.
    A NaN score or a label other than 0 and 1 is a ValueError (evaluate refuses non-finite weights and
    overflowing scores before)."""
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (dog) or 1 (cat)")
    y = np.asarray(y).astype(np.int64)
    z = np.asarray(z, dtype=np.float64)  # once: the sigmoid, the ranks and the losses of the same scores
    refuse_nan(z)
    a = sigmoid(z)
    predicted = predict(a, threshold)
    tp = int(np.sum((predicted == 1) & (y == 1)))
    fp = int(np.sum((predicted == 1) & (y == 0)))
    tn = int(np.sum((predicted == 0) & (y == 0)))
    fn = int(np.sum((predicted == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y.sum() < len(y)
    # AUC = area under the ROC curve = P(score of a random cat > score of a random dog), ties count 1/2
    # ranked by z, not a = sigmoid(z): a rounds to exactly 1.0 for z > ~37 and would create false ties
    roc_auc = float(np.trapezoid(*roc_curve(y, z)[::-1])) if both_classes else None
    metrics = {
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc,
        "log_loss": loss_value("cross_entropy", z, a, y),
        "mse_loss": loss_value("mse", z, a, y),
    }
    metrics = {key: None if value is None else round(float(value), 6) for key, value in metrics.items()}
    metrics.update(true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn, n_valid=len(y))
    return metrics


def most_confident_mistakes(y: np.ndarray, z: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k most confident false cats (dogs called cat: highest z first) and of the k most
    confident false dogs (cats called dog: lowest z first), for labels y (m,) and scores z (m,); ties
    keep row order. Ranked by z, not by P(cat), which rounds to 0 or 1 for large |z|."""
    y, z = np.asarray(y), np.asarray(z, dtype=np.float64)
    predicted = predict(sigmoid(z), threshold)
    cat_first, dog_first = np.argsort(-z, kind="stable"), np.argsort(z, kind="stable")
    false_cats = cat_first[(predicted[cat_first] == 1) & (y[cat_first] == 0)]
    false_dogs = dog_first[(predicted[dog_first] == 0) & (y[dog_first] == 1)]
    return false_cats[:k], false_dogs[:k]
