"""Checks that need a CUDA device (``pytest -m gpu``, run by ``scripts/gpu_check.sh``); skipped elsewhere.

The Triton kernel against the float64 reference on CUDA in float32 and bfloat16, FSDP2 over
all visible GPUs against one plain process, and a compiled bf16 training run.
"""

import json
import os

import pytest
import torch

from gpa_titan.optim import GPAAdamW
from gpa_titan.optim.gpa_adamw import GPACoefficients
from gpa_titan.optim.reference import ReferenceGPAAdamW
from helpers import (
    REPO,
    TRAIN_LOSS,
    QuadraticProblem,
    ieee_float32_step,
    run,
    run_trainer,
    scalars,
    tiny_args,
    torchrun_cmd,
    warmup_cosine,
)

pytestmark = pytest.mark.gpu
STEPS = 100


@pytest.mark.parametrize("mu_x,mu_y,weight_decay", [(0.9967, 0.9, 0.1), (0.99, 0.5, 0.0), (0.0, 0.9, 0.1)])
def test_cuda_kernel_float32_matches_reference(mu_x, mu_y, weight_decay):
    problem = QuadraticProblem(STEPS)
    params = [torch.nn.Parameter(p.clone().cuda()) for p in problem.init]
    opt = GPAAdamW(params, lr=1e-2, mu_x=mu_x, mu_y=mu_y, weight_decay=weight_decay, implementation="fused")
    ref = ReferenceGPAAdamW(problem.init, mu_x=mu_x, mu_y=mu_y, weight_decay=weight_decay)
    worst = 0.0
    for t in range(STEPS):
        lr = warmup_cosine(t, STEPS, 1e-2)
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, problem.grads([p.detach().cpu() for p in params], t)):
            p.grad = g.cuda()
        opt.step()
        ref.step(problem.grads(ref.y(), t), lr)
        worst = max(worst, max((p.detach().cpu().double() - r).abs().max().item() for p, r in zip(params, ref.y())))
    assert worst < 1e-5, f"y drifted from Algorithm 1 by {worst} on CUDA"


def test_cuda_kernel_bfloat16_steps_round_once():
    """Each step from bf16 state equals the float64 update of that state within one bf16
    rounding of the result (the kernel computes in float32 and rounds once on store)."""
    gen = torch.Generator().manual_seed(0)
    sizes = [1, 33, 1025, 4099, 0]
    params = [torch.nn.Parameter(torch.randn(n, generator=gen).to(torch.bfloat16).cuda()) for n in sizes]
    opt = GPAAdamW(params, lr=1e-2, mu_x=0.9, mu_y=0.8, implementation="fused")
    keys = ("z", "exp_avg", "exp_avg_sq")
    for step in range(1, 6):
        before = [[p.detach().cpu().double()] + [opt.state[p][k].cpu().double() for k in keys] for p in params]
        grads = [torch.randn(n, generator=gen).to(torch.bfloat16) for n in sizes]
        for p, g in zip(params, grads):
            p.grad = g.cuda()
        opt.step()
        c = GPACoefficients.for_step(1e-2, 0.1, 0.9, 0.95, 1e-8, 0.9, 0.8, step)
        for p, (y, z, m, v), g in zip(params, before, grads):
            g = g.double()
            m = m + (g - m) * c.one_minus_beta1
            v = v * c.beta2 + g * g * c.one_minus_beta2
            u = m / (v.sqrt() * c.inv_sqrt_bias_correction2 + c.eps)
            expected = {"y": y * c.mu_x + z * c.y_from_z + u * c.y_from_u, "z": z - z * c.lr_wd + u * c.z_from_u,
                        "exp_avg": m, "exp_avg_sq": v}
            got = {"y": p.detach()} | {k: opt.state[p][k] for k in keys}
            for name, want in expected.items():
                diff = (got[name].cpu().double() - want).abs()
                bound = 2.0**-8 * want.abs() + 1e-6 * (1 + want.abs())  # one bf16 rounding, float32 slack
                assert (diff <= bound).all(), f"{name} at step {step}: {(diff - bound).max().item():.3e} over"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_kernel_is_bitwise_the_ieee_float32_update(dtype):
    """The launcher turns mul+add contraction off and the kernel uses sqrt_rn/div_rn, so on
    the GPU every stored value equals the IEEE float32 computation (made on the CPU) bit for
    bit, rounded once to bf16 for bf16 storage: no tolerance. One tensor is an odd view, so
    both the aligned and the unaligned variant run."""
    from gpa_titan.optim import triton_kernel as K

    gen = torch.Generator().manual_seed(0)
    sizes = [1, 33, 1025, 4099, 1 << 20]
    state = [[(torch.randn(n, generator=gen) * (0.1 if k == 3 else 1)).to(dtype) for n in sizes] for k in range(5)]
    state[4] = [(v.float() ** 2 * 0.01 + 1e-4).to(dtype) for v in state[4]]
    c = GPACoefficients.for_step(3e-3, 0.1, 0.9, 0.95, 1e-8, 0.99, 0.9, 7)
    want = [ieee_float32_step(*(lst[i] for lst in state), c) for i in range(len(sizes))]
    cuda = [[t.cuda() for t in lst] for lst in state]
    odd = torch.empty(sizes[2] + 1, dtype=dtype, device="cuda")[1:]
    odd.copy_(cuda[1][2])
    cuda[1][2] = odd
    assert [flag for flag, _ in K.launch_plan([tuple(lst[i].data_ptr() for lst in cuda)
                                               for i in range(len(sizes))])] == [True, False]
    K.gpa_adamw_triton_step(*cuda, c)
    for i, expected in enumerate(want):
        for name, k, ref in zip("yzmv", (0, 1, 3, 4), expected):
            got = cuda[k][i].cpu()
            worst = (got.double() - ref.double()).abs().max()
            assert torch.equal(got, ref.to(dtype)), f"{name}[{i}] ({dtype}): off by up to {worst}"


def test_fsdp2_over_all_gpus_matches_one_plain_process(tmp_path):
    gpus = torch.cuda.device_count()
    if gpus < 2:
        pytest.skip("needs 2 or more GPUs")
    results_path = tmp_path / "results.json"
    worker = os.path.join(REPO, "tests", "integration", "distributed_optimizer_worker.py")
    run(torchrun_cmd(gpus, [worker, str(results_path)]), env={"GPA_TEST_DEVICE": "cuda"}, timeout=900)
    results = json.loads(results_path.read_text())
    for name, result in results.items():
        assert result["max_diff"] <= 1e-5, f"{name}: {result['max_diff']:.3e}"


def test_compiled_bf16_training_run(tmp_path, demo_assets):
    dump = str(tmp_path / "run")
    run_trainer(1, tiny_args(dump, demo_assets, 30, "--optimizer.name", "GPA-AdamW", "--compile.enable",
                             "--training.mixed_precision_param", "bfloat16", "--checkpoint.no-enable"))
    losses = scalars(dump, TRAIN_LOSS)
    assert losses[30] < losses[1] - 1.0
