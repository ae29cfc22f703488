"""The fast optimizers agree with the plain float64 reference implementations."""

import pytest
import torch

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW
from gpa_titan.optim.reference import ReferenceDiLoCoAdamW, ReferenceGPAAdamW
from helpers import warmup_cosine

STEPS = 100
IMPLS = ["fused", "foreach", "for-loop"]


def max_diff(a, b):
    return max((x.to(torch.float64) - y).abs().max().item() for x, y in zip(a, b))


def run_against_reference(opt_cls, ref_cls, problem, impl, steps=STEPS, peak_lr=1e-2, dtype=torch.float64,
                          eval_at=(10, 9), **hp):
    """Step a fast optimizer and its reference side by side (gradients at each one's own
    training weights) under warmup+cosine; return the worst difference of the training
    weights and, through eval() and back at steps t % eval_at[0] == eval_at[1], of the
    evaluation weights."""
    params = [torch.nn.Parameter(p.clone().to(dtype)) for p in problem.init]
    opt = opt_cls(params, lr=peak_lr, implementation=impl, **hp)
    ref = ref_cls(problem.init, **hp)
    worst_train = worst_eval = 0.0
    for t in range(steps):
        lr = warmup_cosine(t, steps, peak_lr)
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
            p.grad = g
        opt.step()
        ref.step(problem.grads(ref.training_weights(), t), lr)
        worst_train = max(worst_train, max_diff([p.detach() for p in params], ref.training_weights()))
        if t % eval_at[0] == eval_at[1]:
            opt.eval()
            worst_eval = max(worst_eval, max_diff([p.detach() for p in params], ref.evaluation_weights()))
            opt.train()
    return worst_train, worst_eval


def run_gpa(problem, impl, **kw):
    return run_against_reference(GPAAdamW, ReferenceGPAAdamW, problem, impl, **kw)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "mu_x,mu_y,weight_decay",
    [(0.9967, 0.9, 0.1), (0.9, 1.0, 0.1), (0.99, 0.1, 0.0), (0.5, 0.8, 0.3), (0.0, 0.9, 0.1)],
)
def test_gpa_matches_reference(problem, impl, mu_x, mu_y, weight_decay):
    worst_y, worst_x = run_gpa(problem, impl, mu_x=mu_x, mu_y=mu_y, weight_decay=weight_decay)
    assert worst_y < 1e-5, f"y drifted from Algorithm 1 by {worst_y}"
    assert worst_x < 1e-5, f"x drifted from Algorithm 1 by {worst_x}"


@pytest.mark.parametrize("impl", IMPLS)
def test_gpa_float32_matches_reference(problem, impl):
    """The training dtype, at the paper's mu values. (Recovering x = y/mu_y + (1-1/mu_y) z
    multiplies float32 rounding by about 1/mu_y, so tiny mu_y are checked in float64 above.)"""
    worst_y, worst_x = run_gpa(problem, impl, dtype=torch.float32, mu_x=0.9967, mu_y=0.9)
    assert worst_y < 1e-5
    assert worst_x < 1e-5


@pytest.mark.parametrize(
    "mu_x,mu_y,weight_decay", [(0.9967, 0.9, 0.1), (0.9, 1.0, 0.1), (0.99, 0.5, 0.0), (0.0, 0.9, 0.1)]
)
def test_gpa_triton_kernel_matches_reference_in_float32(problem, mu_x, mu_y, weight_decay):
    """The GPU kernel itself (under Triton's interpreter on CPU), through GPAAdamW, over odd
    tensor sizes, 100 warmup+cosine steps."""
    worst_y, worst_x = run_gpa(problem, "triton", dtype=torch.float32, mu_x=mu_x, mu_y=mu_y, weight_decay=weight_decay)
    assert worst_y < 1e-5, f"y drifted from Algorithm 1 by {worst_y}"
    assert worst_x < 1e-5, f"x drifted from Algorithm 1 by {worst_x}"


def test_gpa_reference_check_can_fail(problem):
    """The comparison is sensitive: a wrong mu_y in the reference is caught at once."""
    params = [torch.nn.Parameter(p.clone()) for p in problem.init]
    opt = GPAAdamW(params, lr=1e-2, mu_x=0.99, mu_y=0.9)
    ref = ReferenceGPAAdamW(problem.init, mu_x=0.99, mu_y=0.8)
    for t in range(5):
        for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
            p.grad = g
        opt.step()
        ref.step(problem.grads(ref.y(), t), 1e-2)
    assert max_diff([p.detach() for p in params], ref.y()) > 1e-4


def run_diloco(problem, impl, dtype=torch.float32, **hp):
    # evaluation weights checked at t % 7 == 3: in the middle of DiLoCo's periods too
    return run_against_reference(DiLoCoAdamW, ReferenceDiLoCoAdamW, problem, impl, dtype=dtype, eval_at=(7, 3), **hp)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "inner_steps,outer_lr,outer_momentum",
    [(32, 0.75, 0.9), (1, 0.5, 0.9), (8, 1.0, 0.0), (5, 0.7, 0.5)],
)
def test_diloco_matches_reference(problem, impl, inner_steps, outer_lr, outer_momentum):
    worst_inner, worst_outer = run_diloco(
        problem, impl, inner_steps=inner_steps, outer_lr=outer_lr, outer_momentum=outer_momentum
    )
    assert worst_inner < 1e-5
    assert worst_outer < 1e-5


def run_adamw(problem, steps=STEPS, peak_lr=1e-2, weight_decay=0.1):
    params = [torch.nn.Parameter(p.clone()) for p in problem.init]
    opt = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=weight_decay)
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(t, steps, peak_lr)
        for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
            p.grad = g
        opt.step()
    return [p.detach() for p in params]


def final_params(opt_cls, problem, steps=STEPS, peak_lr=1e-2, **hp):
    params = [torch.nn.Parameter(p.clone()) for p in problem.init]
    opt = opt_cls(params, lr=peak_lr, **hp)
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(t, steps, peak_lr)
        for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
            p.grad = g
        opt.step()
    opt.eval()
    return [p.detach() for p in params]


@pytest.mark.parametrize("impl", IMPLS)
def test_gpa_with_mu_x_zero_is_adamw(problem, impl):
    expected = run_adamw(problem)
    got = final_params(GPAAdamW, problem, mu_x=0.0, mu_y=0.9, implementation=impl)
    assert max_diff(got, [e.double() for e in expected]) < 1e-6


@pytest.mark.parametrize("impl", IMPLS)
def test_diloco_h1_lr1_mu0_is_adamw(problem, impl):
    expected = run_adamw(problem)
    got = final_params(DiLoCoAdamW, problem, inner_steps=1, outer_lr=1.0, outer_momentum=0.0, implementation=impl)
    assert max_diff(got, [e.double() for e in expected]) < 1e-6


def run_schedule_free(problem, impl, **kw):
    from gpa_titan.optim import ScheduleFreeAdamW
    from gpa_titan.optim.reference import ReferenceScheduleFreeAdamW

    return run_against_reference(ScheduleFreeAdamW, ReferenceScheduleFreeAdamW, problem, impl, **kw)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("hp", [dict(), dict(weight_decay=0.0, warmup_steps=10), dict(betas=(0.5, 0.99))])
def test_schedule_free_matches_reference(problem, impl, hp):
    worst_y, worst_x = run_schedule_free(problem, impl, **hp)
    assert worst_y < 1e-5 and worst_x < 1e-5, (worst_y, worst_x)


def test_schedule_free_triton_kernel_matches_reference_in_float32(problem):
    worst_y, worst_x = run_schedule_free(problem, "triton", dtype=torch.float32, warmup_steps=10)
    assert worst_y < 1e-5 and worst_x < 1e-5, (worst_y, worst_x)


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_schedule_free_matches_the_schedulefree_package_without_weight_decay(problem, impl):
    schedulefree = pytest.importorskip("schedulefree")
    from gpa_titan.optim import ScheduleFreeAdamW

    ours = [torch.nn.Parameter(p.clone().double()) for p in problem.init]
    theirs = [torch.nn.Parameter(p.clone().double()) for p in problem.init]
    a = ScheduleFreeAdamW(ours, lr=1e-2, weight_decay=0.0, warmup_steps=10, implementation=impl)
    b = schedulefree.AdamWScheduleFree(theirs, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0, warmup_steps=10)
    b.train()
    for t in range(STEPS):
        for params in (ours, theirs):
            for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
                p.grad = g
        a.step()
        b.step()
    assert max_diff([p.detach() for p in ours], [p.detach() for p in theirs]) < 1e-10
    a.eval()
    b.eval()
    assert max_diff([p.detach() for p in ours], [p.detach() for p in theirs]) < 1e-10
