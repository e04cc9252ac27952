"""scikit-learn's LogisticRegression on the pipeline's features, as one process a user would run: load the
training and validation features (.npz of flatten_normalize, read by catsdogs.pipeline.npz_files.load_npz as train
reads them), fit, score the validation set, write the weights. Prints one JSON line: iterations,
whether lbfgs converged, validation images right, load and fit seconds.

    python -m bench.sklearn_fit TRAIN.npz VALID.npz OUT.npz --C 0.003 [--tol 1e-4] [--max-iter 1000] [--float64]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from catsdogs.pipeline.npz_files import load_npz, save_npz


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sklearn_fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="training features (.npz: X, y)")
    parser.add_argument("valid", type=Path, help="validation features (.npz: X, y)")
    parser.add_argument("out", type=Path, help="weights to write (.npz: W, b)")
    parser.add_argument("--C", type=float, required=True, help="inverse L2 strength: l2 = 1 / (C m)")
    parser.add_argument("--tol", type=float, default=1e-4, help="lbfgs gradient tolerance (default: %(default)s)")
    parser.add_argument("--max-iter", type=int, default=1000, help="lbfgs iterations at most (default: %(default)s)")
    parser.add_argument("--float64", action="store_true", help="fit on float64 features (the reference optimum)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, valid = load_npz(args.train, ("X", "y")), load_npz(args.valid, ("X", "y"))
    X = train["X"].astype(np.float64) if args.float64 else train["X"]
    loaded = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression(C=args.C, tol=args.tol, max_iter=args.max_iter).fit(X, train["y"])
    converged = not any(issubclass(warning.category, ConvergenceWarning) for warning in caught)
    fitted = time.perf_counter()
    right = int(np.sum(model.predict(valid["X"]) == valid["y"]))
    save_npz(args.out, W=model.coef_[0], b=model.intercept_[0])
    print(
        json.dumps(
            {
                "iterations": int(model.n_iter_[0]),
                "converged": converged,
                "valid_right": right,
                "load_seconds": loaded - start,
                "fit_seconds": fitted - loaded,
            }
        )
    )


if __name__ == "__main__":
    main()
