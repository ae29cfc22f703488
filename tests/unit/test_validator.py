"""The fixed-set validator: same weights give the same number, at the evaluation weights."""

import contextlib
import os

import pytest
import torch
from torchtitan.components.loss import build_cross_entropy_loss, cross_entropy_loss
from torchtitan.config import ConfigManager
from torchtitan.distributed import ParallelDims
from torchtitan.models.llama3 import Transformer

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW
from gpa_titan.titan.dataloader import build_tokenizer
from gpa_titan.titan.models import flavor_args
from gpa_titan.titan.optimizer_container import EvalWeightsOptimizersContainer
from gpa_titan.titan.validation import FixedSetValidator
from helpers import REPO


class RecordingMetrics:
    def __init__(self):
        self.ntokens_since_last_log = 0
        self.logged = []

    def log_validation(self, loss, step, extra_metrics=None):
        self.logged.append((step, loss, extra_metrics))


@pytest.fixture(scope="module")
def setup(demo_assets):
    assets = demo_assets
    cfg = ConfigManager().parse_args([
        "--job.config_file", os.path.join(REPO, "configs", "debug_cpu.toml"),
        "--model.hf_assets_path", assets, "--training.dataset_path", assets, "--validation.dataset_path", assets,
        "--training.seq_len", "64", "--validation.seq_len", "64", "--validation.steps", "3",
        "--validation.local_batch_size", "4",
    ])
    return cfg, build_tokenizer(cfg)


@pytest.mark.parametrize("cls,hp", [(GPAAdamW, dict(mu_x=0.9, mu_y=0.8)), (DiLoCoAdamW, dict(inner_steps=4))])
def test_validation_runs_at_evaluation_weights_and_repeats_exactly(setup, cls, hp):
    cfg, tokenizer = setup
    torch.manual_seed(0)
    model = Transformer(flavor_args("debug", cfg))
    with torch.no_grad():
        model.init_weights()
    optimizers = EvalWeightsOptimizersContainer([model], cls, dict(lr=3e-3, **hp))
    metrics = RecordingMetrics()
    parallel_dims = ParallelDims(dp_replicate=1, dp_shard=1, cp=1, tp=1, pp=1, ep=1, etp=1, world_size=1)
    validator = FixedSetValidator(
        job_config=cfg, dp_world_size=1, dp_rank=0, tokenizer=tokenizer, parallel_dims=parallel_dims,
        loss_fn=build_cross_entropy_loss(cfg), validation_context=contextlib.nullcontext,
        maybe_enable_amp=contextlib.nullcontext(), metrics_processor=metrics,
    )
    validator.optimizers = optimizers
    # a few training steps so that the evaluation weights differ from the training weights
    x, y = validator.batches[0]
    for _ in range(6):
        cross_entropy_loss(model(x), y).div(y.numel()).backward()
        optimizers.step()
        optimizers.zero_grad()
    train_weights = [p.detach().clone() for p in model.parameters()]

    validator.validate([model], step=6)
    validator.validate([model], step=6)
    (_, first, extra), (_, second, _) = metrics.logged
    assert first == second, "two evaluations of the same weights must give the same number"
    assert extra["validation_metrics/perplexity"] == pytest.approx(torch.tensor(first).exp().item())

    after = [p.detach() for p in model.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(train_weights, after)), "train weights restored"

    with torch.no_grad():
        at_train = sum(cross_entropy_loss(model(a), b).item() / b.numel() for a, b in validator.batches) / 3
        optimizers.eval()
        at_eval = sum(cross_entropy_loss(model(a), b).item() / b.numel() for a, b in validator.batches) / 3
        optimizers.train()
    assert first == pytest.approx(at_eval, rel=1e-6)
    assert abs(at_eval - at_train) > 1e-4, "the test must be able to tell the two weight sets apart"
