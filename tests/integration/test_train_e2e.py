"""End-to-end runs through the real TorchTitan Trainer on CPU, 1 and 2 (FSDP2) ranks."""

import os

import pytest

from helpers import TRAIN_LOSS, VAL_LOSS, independent_validation_loss, run_trainer, scalars, tiny_args

OPTIMIZERS = ["AdamW", "GPA-AdamW", "DiLoCo-AdamW", "ScheduleFree-AdamW", "Muon", "GPA-Muon"]


@pytest.mark.parametrize("nproc", [1, 2])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_training_through_torchtitan(tmp_path, demo_assets, optimizer, nproc):
    dump = str(tmp_path / "run")
    args = tiny_args(dump, demo_assets, 30, "--optimizer.name", optimizer, "--optimizer.inner_steps", "4")
    run_trainer(nproc, args)

    train = scalars(dump, TRAIN_LOSS)
    assert sorted(train) == list(range(1, 31))
    first, last = sum(train[s] for s in range(1, 4)) / 3, sum(train[s] for s in range(28, 31)) / 3
    assert last < first - 1.0, f"training loss did not go down: {first:.3f} -> {last:.3f}"

    val = scalars(dump, VAL_LOSS)
    assert sorted(val) == [1, 10, 20, 30]
    assert val[30] < val[1] - 1.0

    # The logged validation loss is the loss of the evaluation weights, which are also
    # what the final model-only checkpoint holds: recompute it from that file.
    recomputed = independent_validation_loss(os.path.join(dump, "checkpoint", "step-30"), args, nproc)
    assert abs(recomputed - val[30]) <= 1e-5 * abs(val[30]), (recomputed, val[30])
    assert os.path.exists(os.path.join(dump, "run_info.json"))


def test_bad_optimizer_name_fails_clearly(tmp_path, demo_assets):
    with pytest.raises(AssertionError, match=r"\[optimizer\] name = 'Adam' is not known"):
        run_trainer(1, tiny_args(str(tmp_path / "run"), demo_assets, 2, "--optimizer.name", "Adam"))


def test_out_of_range_mu_fails_clearly(tmp_path, demo_assets):
    with pytest.raises(AssertionError, match=r"\[optimizer\] mu_y = 1.5 is out of range"):
        run_trainer(1, tiny_args(str(tmp_path / "run"), demo_assets, 2, "--optimizer.mu_y", "1.5"))
