"""Modes, state_dict round trips, TorchTitan's checkpoint path, and argument checks."""

import copy

import pytest
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from gpa_titan.optim import DiLoCoAdamW, GPAAdamW, ScheduleFreeAdamW
from helpers import QuadraticProblem, warmup_cosine

OPTIMIZERS = {
    "gpa": (GPAAdamW, dict(mu_x=0.99, mu_y=0.8)),
    "diloco": (DiLoCoAdamW, dict(inner_steps=5, outer_lr=0.7, outer_momentum=0.9)),
    "schedule_free": (ScheduleFreeAdamW, dict(warmup_steps=5)),
}


class TinyModel(torch.nn.Module):
    def __init__(self, problem):
        super().__init__()
        self.ws = torch.nn.ParameterList([torch.nn.Parameter(p.clone()) for p in problem.init])


def train(model, opt, problem, start, stop, total=40):
    for t in range(start, stop):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(t, total, 1e-2)
        grads = problem.grads([p.detach() for p in model.ws], t)
        for p, g in zip(model.ws, grads):
            p.grad = g
        opt.step()
        opt.zero_grad()


def weights(model):
    return [p.detach().clone() for p in model.ws]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_eval_train_round_trip_and_idempotence(name):
    cls, hp = OPTIMIZERS[name]
    problem = QuadraticProblem(40)
    model = TinyModel(problem)
    opt = cls(model.ws, lr=1e-2, **hp)
    train(model, opt, problem, 0, 12)
    y = weights(model)
    opt.eval()
    x = weights(model)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(x, y)), "eval() must change the weights"
    opt.eval()  # idempotent
    assert all(torch.equal(a, b) for a, b in zip(x, weights(model)))
    with pytest.raises(RuntimeError, match="eval mode"):
        opt.step()
    opt.train()
    opt.train()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(y, weights(model)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_resume_is_exact(name):
    """Save mid-run (in the middle of a DiLoCo period), load into a fresh optimizer, continue."""
    cls, hp = OPTIMIZERS[name]
    problem = QuadraticProblem(40)
    ref_model = TinyModel(problem)
    ref_opt = cls(ref_model.ws, lr=1e-2, **hp)
    train(ref_model, ref_opt, problem, 0, 30)

    model = TinyModel(problem)
    opt = cls(model.ws, lr=1e-2, **hp)
    train(model, opt, problem, 0, 13)  # 13 % 5 != 0: mid-period
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())

    model2 = TinyModel(problem)
    model2.load_state_dict(saved_model)
    opt2 = cls(model2.ws, lr=1e-2, **hp)
    opt2.load_state_dict(saved_opt)
    train(model2, opt2, problem, 13, 30)
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))
    ref_opt.eval()
    opt2.eval()
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_dcp_flattened_state_dict_round_trip(name):
    """TorchTitan checkpoints through get/set_optimizer_state_dict with flattened FQN keys,
    saved in eval mode (the model holds the evaluation weights)."""
    cls, hp = OPTIMIZERS[name]
    options = StateDictOptions(flatten_optimizer_state_dict=True)
    problem = QuadraticProblem(40)
    ref_model = TinyModel(problem)
    ref_opt = cls(ref_model.ws, lr=1e-2, **hp)
    train(ref_model, ref_opt, problem, 0, 13)
    ref_opt.eval()  # the uninterrupted run checkpoints at step 13 too
    ref_opt.train()
    train(ref_model, ref_opt, problem, 13, 30)

    model = TinyModel(problem)
    opt = cls(model.ws, lr=1e-2, **hp)
    train(model, opt, problem, 0, 13)
    opt.eval()
    osd = copy.deepcopy(get_optimizer_state_dict(model, opt, options=options))
    msd = copy.deepcopy(model.state_dict())
    assert any(k.startswith("state.ws.0.") for k in osd), sorted(osd)[:5]
    assert osd["param_groups.ws.0.step"] == 13
    assert osd["param_groups.ws.0.train_mode"] is False

    model2 = TinyModel(problem)
    opt2 = cls(model2.ws, lr=1e-2, **hp)
    model2.load_state_dict(msd)
    set_optimizer_state_dict(model2, opt2, optim_state_dict=osd, options=options)
    assert not opt2.training
    opt2.train()
    train(model2, opt2, problem, 13, 30)
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_is_eager_so_checkpoint_init_takes_no_step(name):
    """get_optimizer_state_dict runs a zero-grad, lr=0 step when the state is empty; for
    GPA that step would move x towards z. The state is created eagerly, so nothing moves."""
    cls, hp = OPTIMIZERS[name]
    problem = QuadraticProblem(40)
    model = TinyModel(problem)
    opt = cls(model.ws, lr=1e-2, **hp)
    before = weights(model)
    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(flatten_optimizer_state_dict=True))
    assert all(torch.equal(a, b) for a, b in zip(before, weights(model)))
    assert all(g["step"] == 0 for g in opt.param_groups)
    assert sd["param_groups.ws.0.step"] == 0
    opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(before, weights(model))), "x0 = y0 = z0"


def test_gpa_lr_zero_step_leaves_x_alone_only_at_start():
    """Documents why eager state matters: after training, an lr=0 step does move x."""
    problem = QuadraticProblem(40)
    model = TinyModel(problem)
    opt = GPAAdamW(model.ws, lr=1e-2, mu_x=0.9, mu_y=0.9)
    train(model, opt, problem, 0, 10)
    opt.eval()
    x_before = weights(model)
    opt.train()
    for p in model.ws:
        p.grad = torch.zeros_like(p)
    for g in opt.param_groups:
        g["lr"] = 0.0
    opt.step()
    opt.eval()
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(x_before, weights(model)))


def test_several_param_groups():
    problem = QuadraticProblem(40)
    model = TinyModel(problem)
    opt = GPAAdamW(
        [{"params": list(model.ws)[:2], "mu_x": 0.9}, {"params": list(model.ws)[2:], "weight_decay": 0.0}],
        lr=1e-2,
        mu_x=0.99,
    )
    train(model, opt, problem, 0, 5)
    assert opt.param_groups[0]["mu_x"] == 0.9 and opt.param_groups[1]["mu_x"] == 0.99
    assert [g["step"] for g in opt.param_groups] == [5, 5]
    with pytest.raises(ValueError, match="mu_x"):
        GPAAdamW([{"params": list(model.ws)[:1], "mu_x": 1.5}])


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(mu_x=1.0), "mu_x"),
        (dict(mu_x=-0.1), "mu_x"),
        (dict(mu_y=1.2), "mu_y"),
        (dict(mu_y=0.0), "mu_y=0"),
        (dict(lr=-1.0), "lr"),
        (dict(betas=(1.0, 0.9)), r"betas\[0\]"),
        (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
        (dict(eps=0.0), "eps"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(implementation="cuda-graphs"), "implementation"),
    ],
)
def test_gpa_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GPAAdamW([torch.nn.Parameter(torch.zeros(3))], **kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(inner_steps=0), "inner_steps"),
        (dict(inner_steps=2.5), "inner_steps"),
        (dict(outer_lr=0.0), "outer_lr"),
        (dict(outer_momentum=1.0), "outer_momentum"),
        (dict(lr=float("nan")), "lr"),
    ],
)
def test_diloco_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DiLoCoAdamW([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_diloco_keeps_exactly_two_extra_buffers_and_gpa_one():
    p = torch.nn.Parameter(torch.zeros(7))
    adamw = {"exp_avg", "exp_avg_sq"}
    gpa = GPAAdamW([p])
    assert {k for k, v in gpa.state[p].items() if torch.is_tensor(v) and v.shape == p.shape} - adamw == {"z"}
    diloco = DiLoCoAdamW([p])
    assert {k for k, v in diloco.state[p].items() if torch.is_tensor(v) and v.shape == p.shape} - adamw == {
        "outer",
        "outer_momentum",
    }


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_add_param_group_takes_the_construction_path(name):
    """A group added after construction gets defaults, checks and eager state, and the
    optimizer then computes what one built with both groups at once computes."""
    cls, hp = OPTIMIZERS[name]
    problem = QuadraticProblem(40)
    both, later = TinyModel(problem), TinyModel(problem)
    ws_both, ws_later = list(both.ws), list(later.ws)
    opt_both = cls([{"params": ws_both[:2]}, {"params": ws_both[2:], "lr": 5e-3}], lr=1e-2, **hp)
    opt_later = cls(ws_later[:2], lr=1e-2, **hp)
    opt_later.add_param_group({"params": ws_later[2:], "lr": 5e-3})
    assert all(len(opt_later.state[p]) == len(opt_both.state[q]) for p, q in zip(ws_later, ws_both))
    assert [g["step"] for g in opt_later.param_groups] == [0, 0]
    for t in range(12):
        for model, opt in ((both, opt_both), (later, opt_later)):
            for p, g in zip(model.ws, problem.grads([p.detach() for p in model.ws], t)):
                p.grad = g
            opt.step()
            opt.zero_grad()
    assert all(torch.equal(a, b) for a, b in zip(weights(both), weights(later)))
    opt_both.eval()
    opt_later.eval()
    assert all(torch.equal(a, b) for a, b in zip(weights(both), weights(later)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_add_param_group_rejects_a_bad_group_and_keeps_the_rest(name):
    cls, hp = OPTIMIZERS[name]
    opt = cls([torch.nn.Parameter(torch.zeros(3))], lr=1e-2, **hp)
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "eps": -1.0})
    assert len(opt.param_groups) == 1


def test_schedule_free_rejects_beta1_zero_naming_it():
    with pytest.raises(ValueError, match=r"betas\[0\]=0.0 is out of range.*Schedule-Free"):
        ScheduleFreeAdamW([torch.nn.Parameter(torch.zeros(3))], betas=(0.0, 0.95))
