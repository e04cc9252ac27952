"""stages/train.py's outputs checked against each other and against hand-written expectations: the
summary line against the history file, the history's number format, the metrics' rounding."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from stages.train import main
from tests.conftest import write_params
from tests.test_train import PATHS, write_features

ARGUMENTS = [word for key, path in PATHS.items() for word in (f"--{key.replace('_', '-')}", path)]


def rows() -> list[dict[str, str]]:
    with open(PATHS["history"], newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_summary_line_is_the_last_history_row(in_tmp, capsys):
    write_features()
    write_params(in_tmp / "p.yaml", train={"epochs": 4, "lr": 0.5})
    main(["--params", "p.yaml", *ARGUMENTS])
    last = rows()[-1]
    assert capsys.readouterr().out == (
        f"train: 4 epochs, kept epoch 4, train loss {float(last['train_loss']):.6f} accuracy "
        f"{float(last['train_accuracy']):.4f}, valid loss {float(last['valid_loss']):.6f} accuracy "
        f"{float(last['valid_accuracy']):.4f}\n"
    )


def test_the_history_has_8_significant_digits_and_the_metrics_are_its_kept_row_rounded(in_tmp):
    write_features()
    write_params(in_tmp / "p.yaml", train={"epochs": 3, "lr": 0.5, "batch_size": 8})
    main(["--params", "p.yaml", *ARGUMENTS])
    history = rows()
    assert [row["epoch"] for row in history] == ["0", "1", "2", "3"]
    for row in history:
        for key in ("train_loss", "valid_loss"):
            digits = re.sub(r"^0\.0*|\.|e.*$", "", row[key])
            assert len(digits) <= 8, row[key]
    assert any(len(re.sub(r"^0\.0*|\.", "", row["train_loss"])) == 8 for row in history)  # not fewer
    metrics = json.loads(Path(PATHS["metrics"]).read_text())
    assert metrics == {
        "train_loss": round(float(history[-1]["train_loss"]), 8),
        "train_accuracy": round(float(history[-1]["train_accuracy"]), 6),
        "epoch": 3,
    }
    assert Path(PATHS["metrics"]).read_text().startswith('{\n  "train_loss": ')
