import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catsdogs.data.images import Preprocessing
from catsdogs.errors import ParamError
from catsdogs.neuron.reference import loss_value, predict, sigmoid
from catsdogs.pipeline.config import TrainParams
from catsdogs.pipeline.npz_files import load_npz, save_npz
from stages.train import main, train
from tests.conftest import ROOT, write_params
from tests.test_fit import toy_problem

PATHS = dict(
    preprocessing="in/preprocessing.json",
    train_features="in/train.npz",
    valid_features="in/valid.npz",
    model="out/w.npz",
    history="out/h.csv",
    metrics="out/m.json",
)


def write_features():
    X, y = toy_problem()
    for split, rows in (("train", slice(0, 40)), ("valid", slice(40, None))):
        save_npz(f"in/{split}.npz", X=X[rows], y=y[rows])
    Preprocessing(image_size=2, draft=True, pixel_scale=255.0).save("in/preprocessing.json")


def test_train_stage_writes_bit_identical_weights(in_tmp):
    write_features()
    digests = []
    for _ in range(2):
        train(TrainParams(lr=0.5, epochs=50), progress=False, **PATHS)
        digests.append(hashlib.sha256(open("out/w.npz", "rb").read()).hexdigest())
    assert digests[0] == digests[1]
    weights = load_npz("out/w.npz", ("image_size", "draft", "pixel_scale"))
    assert Preprocessing.from_mapping(weights, "weights") == Preprocessing(2, True, 255.0)  # stored unchanged
    assert open("out/h.csv").readline().strip() == "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy"


def test_the_command_line_names_every_file(in_tmp, capsys):
    write_features()
    write_params(in_tmp / "other.yaml", train={"epochs": 3, "lr": 0.5})
    arguments = [word for key, path in PATHS.items() for word in (f"--{key.replace('_', '-')}", path)]
    main(["--params", "other.yaml", *arguments])
    assert "train: 3 epochs" in capsys.readouterr().out
    assert json.loads(open("out/m.json").read())["epoch"] == 3
    assert set(np.load("out/w.npz").files) == {"W", "b", "image_size", "draft", "pixel_scale"}
    with pytest.raises(SystemExit):
        main(["--params", "other.yaml", *arguments[:-2]])  # without --metrics PATH
    assert "the following arguments are required: --metrics" in capsys.readouterr().err


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": -0.1}, r"train.lr = -0.1 is out of range, expected a number > 0"),
        ({"loss": "hinge"}, r"train.loss = 'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ({"epochs": 0}, r"train.epochs = 0 is out of range"),
        ({"gradient": "notebook", "loss": "cross_entropy"}, r"train.gradient = 'notebook' is only defined"),
        ({"lr": "0.1"}, r"train.lr = '0.1' is text"),
        ({"lr": 1.0e300}, r"train.lr = 1e\+300 is out of range, expected a number > 0 and <= 1000000.0"),
        ({"optimizer": "sgd"}, r"train.optimizer = 'sgd' is not allowed, expected one of: gd, adam"),
        ({"momentum": 1.0}, r"train.momentum = 1.0 is out of range, expected a number >= 0 and < 1"),
        ({"optimizer": "adam", "momentum": 0.9}, r"train.momentum = 0.9 is only used by train.optimizer = 'gd'"),
        ({"batch_size": -1}, r"train.batch_size = -1 is out of range, expected an integer >= 0"),
        ({"batch_size": 1.5}, r"train.batch_size = 1.5 is not allowed, expected an integer"),
        ({"l2": -0.1}, r"train.l2 = -0.1 is out of range, expected a number >= 0"),
        ({"early_stopping": -2}, r"train.early_stopping = -2 is out of range"),
        ({"seed": "x"}, r"train.seed = 'x' is text"),
    ],
)
def test_read_params_rejects_bad_values(tmp_path, changes, message):
    with pytest.raises(ParamError, match=message):
        TrainParams.read(write_params(tmp_path / "params.yaml", train=changes))


def test_metrics_are_the_kept_epochs_under_early_stopping(in_tmp):
    # validation rows = the training rows with every 4th label flipped: with cross-entropy the validation
    # loss falls, then rises as the neuron grows confident on the flipped rows -> the best epoch is not the last
    X, y = toy_problem()
    y_valid = y[:40].copy()
    y_valid[::4] ^= 1
    save_npz("in/train.npz", X=X[:40], y=y[:40])
    save_npz("in/valid.npz", X=X[:40], y=y_valid)
    Preprocessing(image_size=2, draft=True, pixel_scale=255.0).save("in/preprocessing.json")
    train(TrainParams(lr=0.5, epochs=2000, loss="cross_entropy", early_stopping=10), progress=False, **PATHS)
    history = np.genfromtxt("out/h.csv", delimiter=",", names=True)
    best = int(np.argmin(history["valid_loss"]))
    assert 0 < best < len(history) - 1  # best is neither the start nor the last epoch
    metrics = json.loads(open("out/m.json").read())
    assert metrics["epoch"] == history["epoch"][best]
    assert metrics["train_loss"] == pytest.approx(history["train_loss"][best], rel=1e-7)
    assert metrics["train_accuracy"] == pytest.approx(history["train_accuracy"][best], abs=1e-6)
    assert history["train_accuracy"][best] != history["train_accuracy"][-1]
    # and they are the numbers of the saved weights, recomputed from the model file in float64
    model = load_npz("out/w.npz", ("W", "b"))
    z = X[:40].astype(np.float64) @ model["W"] + float(model["b"])
    assert metrics["train_loss"] == pytest.approx(loss_value("cross_entropy", z, sigmoid(z), y[:40]), rel=1e-5)
    assert metrics["train_accuracy"] == pytest.approx(np.mean(predict(sigmoid(z)) == y[:40]), abs=1e-6)


def test_two_processes_write_byte_identical_files(in_tmp):
    # the stage run twice as the pipeline runs it, each in its own Python process: every output file's
    # bytes equal (weights, history, metrics), and equal those of a run in this process
    write_features()
    write_params(in_tmp / "params.yaml", train={"epochs": 40, "lr": 0.5, "momentum": 0.5})
    outputs = {}
    for run in ("first", "second"):
        paths = {**PATHS, "model": f"{run}/w.npz", "history": f"{run}/h.csv", "metrics": f"{run}/m.json"}
        arguments = [word for key, path in paths.items() for word in (f"--{key.replace('_', '-')}", path)]
        subprocess.run(
            [sys.executable, "-m", "stages.train", "--params", "params.yaml", *arguments],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        outputs[run] = [open(paths[key], "rb").read() for key in ("model", "history", "metrics")]
    train(TrainParams(lr=0.5, epochs=40, momentum=0.5), progress=False, **PATHS)
    here = [open(PATHS[key], "rb").read() for key in ("model", "history", "metrics")]
    assert outputs["first"] == outputs["second"] == here
    assert len(outputs["first"][1].splitlines()) == 42  # header + epochs 0..40


def test_a_diverging_run_exits_2_with_the_epoch_and_what_to_change_and_writes_nothing(in_tmp):
    """lr x l2 = 10 (gradient descent with L2 is stable only below 2): the weights grow ~9x per epoch
    until the scores overflow float32. The stage run as dvc runs it stops there, exit status 2."""
    write_features()
    write_params(in_tmp / "params.yaml", train={"lr": 10.0, "l2": 1.0, "epochs": 300})
    arguments = [word for key, path in PATHS.items() for word in (f"--{key.replace('_', '-')}", path)]
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"train: error: params.yaml: train.lr = 10 made the training diverge: after \d+ of 300 epochs the scores "
        r"z = X W \+ b are no longer finite numbers \(they overflowed float32, the losses with them\); gradient "
        r"descent with L2 is only stable for train.lr x train.l2 < 2, here 10 x 1 = 10: lower train.lr or train.l2",
        last,
    ), last
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr  # only the project's own line
    assert not any(Path("out").glob("*"))  # no weights, history or metrics of the diverged run
