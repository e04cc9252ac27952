"""Benchmark 3: wall time to reach the article recipe's final validation accuracy, on the pipeline's features.

Features: the pipeline's own (resize_split with the default params, then flatten_normalize) of the
embedded default set (2,000 images) and of a bigger generated set (bench/images.py). On each:
- the article's recipe (zeros, MSE, exact gradient, full-batch GD, lr 0.003, 5000 epochs) run by
  catsdogs.neuron.fit.fit: its final validation accuracy is the target; time until it first reaches it;
- the same recipe in the plain float64 loop (catsdogs.neuron.reference.reference_fit, the article's code): time per epoch
  measured over 20 epochs, times the epochs the recipe needs (every epoch costs the same);
- a faster recipe of catsdogs.neuron.fit (RECIPE): time until it reaches the target, and its whole run;
- scikit-learn's LogisticRegression (lbfgs) on the same features: default C = 1, and C = 0.001.

    python -m bench.time_to_accuracy [--sizes 2000 5000]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence

import numpy as np

from bench.common import CACHE_DIR, table, verdict
from bench.images import kaggle_layout
from catsdogs.data.images import PIXEL_SCALE, Preprocessing
from catsdogs.neuron.fit import fit, step_name
from catsdogs.neuron.history import kept_row
from catsdogs.neuron.reference import reference_fit
from catsdogs.pipeline.config import ResizeSplitParams, TrainParams
from catsdogs.pipeline.npz_files import load_npz
from stages.flatten_normalize import flatten_normalize
from stages.resize_split import resize_split

ARTICLE = TrainParams(lr=0.003, epochs=5000)
# Same model and loss as the article; heavy-ball momentum lets a 7x larger step stay stable.
RECIPE = TrainParams(lr=0.02, epochs=50, momentum=0.9, early_stopping=10)
TARGET = 50  # times sooner than the article's recipe
SKLEARN_C = (1.0, 0.001)


def pipeline_features(n_images: int) -> tuple[dict[str, np.ndarray], ...]:
    """The default pipeline's train and valid features of the n_images Kaggle-layout set (cached)."""
    folder = CACHE_DIR / f"features-{n_images}"
    if not (folder / "features/valid.npz").exists():
        paths = kaggle_layout(n_images)
        prepared = [folder / "prepared" / name for name in ("train.npz", "valid.npz", "preprocessing.json")]
        train_file, valid_file, preprocessing_file = prepared
        params = ResizeSplitParams(size=64, valid_fraction=0.2, seed=42)
        resize_split(params, paths[0].parent, train_file, valid_file, preprocessing_file, progress=False)
        for split in ("train", "valid"):
            flatten_normalize(
                folder / f"prepared/{split}.npz", folder / f"features/{split}.npz", Preprocessing.load(prepared[2])
            )
    return tuple(load_npz(folder / f"features/{split}.npz", ("X", "y")) for split in ("train", "valid"))


def timed_fit(train: dict, valid: dict, params: TrainParams) -> dict:
    """Run fit; return its wall time, the validation accuracy of the weights it returns, and per epoch
    the validation accuracy and the seconds since the start."""
    start = time.perf_counter()
    stamps = []
    _, _, history = fit(
        train["X"],
        train["y"],
        valid["X"],
        valid["y"],
        params,
        progress=False,
        on_epoch=lambda epoch, row: stamps.append(time.perf_counter() - start),
        pixel_scale=PIXEL_SCALE,  # the pipeline's features, as the train stage passes them
    )
    return {
        "seconds": time.perf_counter() - start,
        "accuracy": float(kept_row(history, params).valid_accuracy),
        "curve": history.valid_accuracy.to_numpy(),
        "stamps": np.array(stamps),
        "step": step_name(params),
    }


def first_reach(run: dict, target: float) -> str:
    """When `run` first reached `target` validation accuracy: "epoch k, t s" (lbfgs: iteration k), or "never"."""
    hits = np.flatnonzero(run["curve"] >= target)
    return f"{run['step']} {hits[0]}, {run['stamps'][hits[0]]:.2f} s" if len(hits) else "never"


def sklearn_fit(train: dict, valid: dict, C: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model = LogisticRegression(C=C).fit(train["X"], train["y"])
        seconds = time.perf_counter() - start
    converged = "" if not caught else " (lbfgs stopped at max_iter=100, not converged)"
    return {"seconds": seconds, "accuracy": float(model.score(valid["X"], valid["y"])), "note": converged}


def run_one(n_images: int) -> list[list[str]]:
    train, valid = pipeline_features(n_images)
    label = f"{n_images:,} ({len(train['y']):,} train)"
    article = timed_fit(train, valid, ARTICLE)
    target = article["accuracy"]
    article_hit = np.flatnonzero(article["curve"] >= target)[0]
    stamps = []
    reference_fit(
        train["X"],
        train["y"],
        valid["X"],
        valid["y"],
        0.003,
        20,
        on_epoch=lambda *_: stamps.append(time.perf_counter()),
    )
    plain_epoch = np.median(np.diff(stamps))
    ours = timed_fit(train, valid, RECIPE)
    ours_hits = np.flatnonzero(ours["curve"] >= target)
    ours_time = ours["stamps"][ours_hits[0]] if len(ours_hits) else np.inf
    vs_plain = plain_epoch * article_hit / ours_time
    vs_fit = article["stamps"][article_hit] / ours_time
    rows = [
        [
            label,
            "article recipe, plain float64 loop (the article's code; extrapolated from 20 epochs)",
            f"{plain_epoch * ARTICLE.epochs:.0f} s",
            f"epoch {article_hit}, {plain_epoch * article_hit:.0f} s",
            "1x",
        ],
        [
            label,
            "article recipe, stages.train",
            f"{article['seconds']:.1f} s, acc {target:.4f}",
            first_reach(article, target),
            f"{plain_epoch * article_hit / article['stamps'][article_hit]:.0f}x sooner",
        ],
        [
            label,
            recipe_text(RECIPE),
            f"{ours['seconds']:.2f} s, acc {ours['accuracy']:.4f}",
            first_reach(ours, target),
            f"{vs_plain:.0f}x sooner (>= {TARGET}x: {verdict(vs_plain >= TARGET)}); {vs_fit:.1f}x sooner than the "
            "article recipe in stages.train",
        ],
    ]
    for C in SKLEARN_C:
        sk = sklearn_fit(train, valid, C)
        better = ours["accuracy"] >= sk["accuracy"] and ours["seconds"] < sk["seconds"]
        rows.append(
            [
                label,
                f"scikit-learn LogisticRegression(C={C}){sk['note']}",
                f"{sk['seconds']:.2f} s, acc {sk['accuracy']:.4f}",
                "",
                f"ours (whole run) equal or better acc in less time: {verdict(better)}",
            ]
        )
    return rows


def recipe_text(params: TrainParams) -> str:
    """The parameters where `params` differs from the article's recipe."""
    changed = {key: value for key, value in params.__dict__.items() if value != getattr(ARTICLE, key)}
    return "ours: " + ", ".join(f"{key}={value}" for key, value in changed.items())


def run(sizes: Sequence[int] = (2000, 5000)) -> str:
    rows = []
    for n_images in sizes:
        rows += run_one(n_images)
    return "\n".join(
        [
            "### Time to the article recipe's final validation accuracy (pipeline features, 64 x 64 x 3)",
            "",
            table(
                ["images", "method", "whole run", "first reaches the target", "time to target vs the article's code"],
                rows,
            ),
            "",
            "- Target: the validation accuracy the article's recipe ends with (5000 epochs) on the same features.",
            "- Ours, the whole run includes early stopping (at most 50 epochs, stops 10 epochs after the best validation loss and "
            "keeps those weights); acc is that of the kept weights.",
            "- One run each (times from the same run; the accuracies are deterministic).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.time_to_accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000], help="set sizes (default: %(default)s)")
    args = parser.parse_args(argv)
    print(run(args.sizes))


if __name__ == "__main__":
    main()
