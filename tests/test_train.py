import hashlib

import numpy as np
import pytest

from stages.common import ParamError, save_npz
from stages.train import TrainParams, read_params, train
from tests.conftest import write_params
from tests.test_fit import toy_problem


def test_train_stage_writes_bit_identical_weights(in_tmp):
    X, y = toy_problem()
    for split, rows in (("train", slice(0, 40)), ("valid", slice(40, None))):
        save_npz(f"data/features/{split}.npz", X=X[rows], y=y[rows], image_size=np.int64(2), draft=np.bool_(True))
    digests = []
    for _ in range(2):
        train(TrainParams(lr=0.5, epochs=50), progress=False)
        digests.append(hashlib.sha256(open("models/weights.npz", "rb").read()).hexdigest())
    assert digests[0] == digests[1]
    assert open("plots/train_history.csv").readline().strip() == "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": -0.1}, r"train.lr = -0.1 is out of range, expected a number > 0"),
        ({"loss": "hinge"}, r"train.loss = 'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ({"epochs": 0}, r"train.epochs = 0 is out of range"),
        ({"gradient": "notebook", "loss": "cross_entropy"}, r"train.gradient = 'notebook' is only defined"),
        ({"lr": "1e-3"}, r"train.lr = '1e-3' is text"),
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
        read_params(write_params(tmp_path / "params.yaml", train=changes))


def test_read_params_reads_yaml_1e_minus_3_as_text(tmp_path):
    path = write_params(tmp_path / "params.yaml", train={"lr": 0.125})
    defaults = path.read_text()
    assert "lr: 0.125" in defaults
    path.write_text(defaults.replace("lr: 0.125", "lr: 1e-3"))
    with pytest.raises(ParamError, match=r"1.0e-3"):
        read_params(path)
    path.write_text(defaults.replace("lr: 0.125", "lr: 1.0e-3"))
    assert read_params(path).lr == 0.001


