"""GPA over any base optimizer (``gpa_titan.optim.GPA``): Algorithm 1 against float64
references, the base alone at mu_x = 0, the base's state as the parameters' state (state_dict,
TorchTitan's DCP path, add_param_group), and the refusals (sharded non-elementwise bases)."""

import copy

import pytest
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from gpa_titan.optim import GPA, GPAAdamW
from gpa_titan.optim import gpa as gpa_module
from gpa_titan.optim.reference import ReferenceGPA
from helpers import QuadraticProblem, warmup_cosine

STEPS = 100
ADAMW = dict(betas=(0.9, 0.95), eps=1e-8)


class MatrixProblem(QuadraticProblem):
    """The quadratic problem over 2-D weights only (Muon's domain), one of them tall."""

    shapes = [(8, 4), (4, 6)]


def max_diff(a, b):
    return max((x.detach().to(torch.float64) - y.detach().to(torch.float64)).abs().max().item() for x, y in zip(a, b))


def set_lr_and_grads(opt, params, problem, t, steps=STEPS, peak_lr=1e-2):
    lr = warmup_cosine(t, steps, peak_lr)
    for group in opt.param_groups:
        group["lr"] = lr
    for p, g in zip(params, problem.grads([p.detach() for p in params], t)):
        p.grad = g
    return lr


def side_by_side(problem, make_a, make_b, steps=STEPS, peak_lr=1e-2, dtype=torch.float64):
    """Step two optimizers (each an ``optimizer_factory(params)``, gradients at each one's own
    weights) under warmup+cosine; return the worst difference of the training weights and,
    through eval() and back every 10 steps, of the evaluation weights."""
    params_a = [torch.nn.Parameter(p.clone().to(dtype)) for p in problem.init]
    params_b = [torch.nn.Parameter(p.clone().to(dtype)) for p in problem.init]
    a, b = make_a(params_a), make_b(params_b)
    worst_train = worst_eval = 0.0
    for t in range(steps):
        for opt, params in ((a, params_a), (b, params_b)):
            set_lr_and_grads(opt, params, problem, t, steps, peak_lr)
            opt.step()
        worst_train = max(worst_train, max_diff(params_a, params_b))
        if t % 10 == 9:
            for opt in (a, b):
                getattr(opt, "eval", lambda: None)()  # a base alone holds its only weights
            worst_eval = max(worst_eval, max_diff(params_a, params_b))
            for opt in (a, b):
                getattr(opt, "train", lambda: None)()
    return worst_train, worst_eval


def against_reference(problem, base, mu_x, mu_y, peak_lr=1e-2, **base_kwargs):
    """GPA in float64 against ``ReferenceGPA`` (x, y, z kept explicitly) over the same base."""
    params = [torch.nn.Parameter(p.clone().double()) for p in problem.init]
    opt = GPA(params, base=base, mu_x=mu_x, mu_y=mu_y, **base_kwargs)
    ref = ReferenceGPA(problem.init, base, mu_x=mu_x, mu_y=mu_y, **base_kwargs)
    worst_train = worst_eval = 0.0
    for t in range(STEPS):
        lr = set_lr_and_grads(opt, params, problem, t, peak_lr=peak_lr)
        opt.step()
        ref.step(problem.grads(ref.training_weights(), t), lr)
        worst_train = max(worst_train, max_diff(params, ref.training_weights()))
        if t % 10 == 9:
            opt.eval()
            worst_eval = max(worst_eval, max_diff(params, ref.evaluation_weights()))
            opt.train()
    return worst_train, worst_eval


# ---------------------------------------------------------------------- Algorithm 1
MUS = [(0.9967, 0.9), (0.9, 1.0), (0.99, 0.2), (0.5, 0.8)]


@pytest.mark.parametrize("mu_x,mu_y", MUS)
@pytest.mark.parametrize("weight_decay", [0.1, 0.0])
def test_gpa_over_adamw_equals_gpa_adamw(problem, mu_x, mu_y, weight_decay):
    """The generic path over torch's AdamW computes what the fused GPA-AdamW computes."""
    hp = dict(mu_x=mu_x, mu_y=mu_y, weight_decay=weight_decay, **ADAMW)
    worst_y, worst_x = side_by_side(
        problem, lambda ps: GPA(ps, base=torch.optim.AdamW, **hp), lambda ps: GPAAdamW(ps, lr=1e-2, **hp)
    )
    assert worst_y < 1e-12 and worst_x < 1e-12, (worst_y, worst_x)


BASES = {
    "SGD momentum": (QuadraticProblem, torch.optim.SGD, dict(momentum=0.9, weight_decay=0.1)),
    "SGD nesterov": (QuadraticProblem, torch.optim.SGD, dict(momentum=0.9, nesterov=True, weight_decay=0.01)),
    "AdamW": (QuadraticProblem, torch.optim.AdamW, dict(weight_decay=0.1, **ADAMW)),
    "Muon": (MatrixProblem, torch.optim.Muon, dict(momentum=0.95, weight_decay=0.1)),
}


# Muon's Newton-Schulz steps are slow on a busy CPU: it runs at the paper's mu values and one more
REFERENCE_CASES = [(name, *mu) for name in BASES for mu in (MUS[::3] if name == "Muon" else MUS)]


@pytest.mark.parametrize("name,mu_x,mu_y", REFERENCE_CASES)
def test_gpa_matches_the_three_sequence_reference(name, mu_x, mu_y):
    problem_cls, base, hp = BASES[name]
    worst_y, worst_x = against_reference(problem_cls(STEPS), base, mu_x, mu_y, **hp)
    assert worst_y < 1e-10, f"{name}: y drifted from Algorithm 1 by {worst_y}"
    assert worst_x < 1e-10, f"{name}: x drifted from Algorithm 1 by {worst_x}"


def test_reference_check_can_fail():
    """The comparison is sensitive: a reference with another mu_y is far off within 5 steps."""
    problem = QuadraticProblem(STEPS)
    params = [torch.nn.Parameter(p.clone().double()) for p in problem.init]
    opt = GPA(params, base=torch.optim.SGD, lr=1e-2, momentum=0.9, mu_x=0.99, mu_y=0.9)
    ref = ReferenceGPA(problem.init, torch.optim.SGD, mu_x=0.99, mu_y=0.8, lr=1e-2, momentum=0.9)
    for t in range(5):
        lr = set_lr_and_grads(opt, params, problem, t)
        opt.step()
        ref.step(problem.grads(ref.training_weights(), t), lr)
    assert max_diff(params, ref.training_weights()) > 1e-4


ZERO_STEP_CASES = {
    "AdamW": (QuadraticProblem, torch.optim.AdamW, dict(weight_decay=0.1, **ADAMW)),
    "AdamW amsgrad": (QuadraticProblem, torch.optim.AdamW, dict(weight_decay=0.1, amsgrad=True)),
    "Adam L2": (QuadraticProblem, torch.optim.Adam, dict(weight_decay=0.1)),
    "SGD momentum L2": (QuadraticProblem, torch.optim.SGD, dict(momentum=0.9, weight_decay=0.1)),
    "SGD plain": (QuadraticProblem, torch.optim.SGD, dict()),
    "RAdam": (QuadraticProblem, torch.optim.RAdam, dict(weight_decay=0.1, decoupled_weight_decay=True)),
    "RMSprop centered": (QuadraticProblem, torch.optim.RMSprop, dict(momentum=0.5, centered=True, weight_decay=0.1)),
    "Adafactor": (MatrixProblem, torch.optim.Adafactor, dict(weight_decay=0.1)),
    "Muon": (MatrixProblem, torch.optim.Muon, dict(momentum=0.95, weight_decay=0.1)),
}


def test_zero_step_cases_cover_every_zero_step_base():
    assert {base for _, base, _ in ZERO_STEP_CASES.values()} == set(gpa_module.ZERO_STEP_BASES)


@pytest.mark.parametrize("name", ZERO_STEP_CASES)
def test_mu_x_zero_is_the_base_alone_bit_for_bit(name):
    """mu_x = 0 makes x = y = z: GPA is then its base, bit for bit in float32, through 100
    steps and eval(). This also shows that the eager state (one zero step, step counters reset)
    is exactly the state the base creates on its first step."""
    problem_cls, base, hp = ZERO_STEP_CASES[name]
    problem = problem_cls(STEPS)
    worst_y, worst_x = side_by_side(
        problem, lambda ps: GPA(ps, base=base, mu_x=0.0, mu_y=0.9, **hp), lambda ps: base(ps, **hp),
        dtype=torch.float32,
    )
    assert worst_y == 0.0 and worst_x == 0.0, (worst_y, worst_x)


def test_the_copy_path_for_tensor_subclasses_computes_the_same(monkeypatch):
    """Parameters whose local tensor is a subclass (torchao float8) are copied into and out of
    z instead of pointed at it; forced here on plain tensors, both paths agree bit for bit."""
    problem = QuadraticProblem(30)
    hp = dict(base=torch.optim.SGD, momentum=0.9, mu_x=0.9, mu_y=0.8)
    pointed = side_by_side(problem, lambda ps: GPA(ps, **hp), lambda ps: GPA(ps, **hp), steps=30)
    assert pointed == (0.0, 0.0)

    def make_copying(ps):
        return GPA(ps, **hp)

    params_a = [torch.nn.Parameter(p.clone()) for p in problem.init]
    params_b = [torch.nn.Parameter(p.clone()) for p in problem.init]
    a, b = GPA(params_a, **hp), make_copying(params_b)
    for t in range(30):
        set_lr_and_grads(a, params_a, problem, t, steps=30)
        a.step()
        set_lr_and_grads(b, params_b, problem, t, steps=30)
        with monkeypatch.context() as m:
            m.setattr(gpa_module, "is_plain_tensor", lambda t: False)
            b.step()
    assert all(torch.equal(x, y) for x, y in zip(params_a, params_b))
    assert all(torch.equal(a.state[p]["z"], b.state[q]["z"]) for p, q in zip(params_a, params_b))


@pytest.mark.parametrize("implementation", ["foreach", "fused", "for-loop"])
def test_implementations_agree(problem, implementation):
    hp = dict(base=torch.optim.AdamW, mu_x=0.99, mu_y=0.8, **ADAMW)
    worst = side_by_side(problem, lambda ps: GPA(ps, **hp), lambda ps: GPA(ps, implementation=implementation, **hp),
                         steps=20, dtype=torch.float32)
    assert worst == (0.0, 0.0)


# ---------------------------------------------------------------------- state, modes, checkpoints
class TinyModel(torch.nn.Module):
    def __init__(self, problem):
        super().__init__()
        self.ws = torch.nn.ParameterList([torch.nn.Parameter(p.clone()) for p in problem.init])


def train(model, opt, problem, start, stop, total=40):
    for t in range(start, stop):
        set_lr_and_grads(opt, list(model.ws), problem, t, steps=total)
        opt.step()
        opt.zero_grad()


def weights(model):
    return [p.detach().clone() for p in model.ws]


OPTIMIZERS = {
    "AdamW": (QuadraticProblem, dict(base="AdamW", mu_x=0.99, mu_y=0.8, **ADAMW)),
    "SGD": (QuadraticProblem, dict(base="SGD", lr=1e-2, momentum=0.9, mu_x=0.9, mu_y=0.5)),
    "Muon": (MatrixProblem, dict(base="Muon", mu_x=0.99, mu_y=0.8)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_is_the_base_state_of_the_parameters_plus_z_created_eagerly(name):
    problem_cls, hp = OPTIMIZERS[name]
    problem = problem_cls(40)
    model, alone = TinyModel(problem), TinyModel(problem)
    opt = GPA(model.ws, **hp)
    base = opt.base_optimizer
    assert base.state is opt.state and base.param_groups is opt.param_groups
    assert set(opt.state) == set(model.ws), "the state is keyed by the model's own parameters"
    base_alone = type(base)(alone.ws, **{k: v for k, v in hp.items() if k not in ("base", "mu_x", "mu_y")})
    train(alone, base_alone, problem, 0, 1)
    for p, q in zip(model.ws, alone.ws):
        assert set(opt.state[p]) == set(base_alone.state[q]) | {"z"}, "one buffer beyond the base's state"
    train(model, opt, problem, 0, 3)
    assert base.state is opt.state and set(opt.state) == set(model.ws)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_eval_train_round_trip_and_idempotence(name):
    problem_cls, hp = OPTIMIZERS[name]
    problem = problem_cls(40)
    model = TinyModel(problem)
    opt = GPA(model.ws, **hp)
    train(model, opt, problem, 0, 12)
    y = weights(model)
    opt.eval()
    x = weights(model)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(x, y)), "eval() must change the weights"
    opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(x, weights(model)))
    with pytest.raises(RuntimeError, match="eval mode"):
        opt.step()
    opt.train()
    opt.train()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(y, weights(model)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_resume_is_exact(name):
    problem_cls, hp = OPTIMIZERS[name]
    problem = problem_cls(40)
    ref_model = TinyModel(problem)
    ref_opt = GPA(ref_model.ws, **hp)
    train(ref_model, ref_opt, problem, 0, 30)

    model = TinyModel(problem)
    opt = GPA(model.ws, **hp)
    train(model, opt, problem, 0, 13)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())

    model2 = TinyModel(problem)
    model2.load_state_dict(saved_model)
    opt2 = GPA(model2.ws, **hp)
    opt2.load_state_dict(saved_opt)
    assert opt2.base_optimizer.state is opt2.state and opt2.base_optimizer.param_groups is opt2.param_groups
    train(model2, opt2, problem, 13, 30)
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))
    ref_opt.eval()
    opt2.eval()
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_dcp_flattened_state_dict_round_trip(name):
    """TorchTitan's path: get/set_optimizer_state_dict with state flattened by parameter FQN,
    saved in eval mode; a fresh optimizer's template already holds every key (eager state)."""
    problem_cls, hp = OPTIMIZERS[name]
    options = StateDictOptions(flatten_optimizer_state_dict=True)
    problem = problem_cls(40)
    ref_model = TinyModel(problem)
    ref_opt = GPA(ref_model.ws, **hp)
    train(ref_model, ref_opt, problem, 0, 13)
    ref_opt.eval()
    ref_opt.train()
    train(ref_model, ref_opt, problem, 13, 30)

    model = TinyModel(problem)
    opt = GPA(model.ws, **hp)
    train(model, opt, problem, 0, 13)
    opt.eval()
    osd = copy.deepcopy(get_optimizer_state_dict(model, opt, options=options))
    msd = copy.deepcopy(model.state_dict())
    base_keys = set(opt.state[model.ws[0]]) - {"z"}
    assert base_keys, "the base keeps state of its own"
    assert {f"state.ws.0.{key}" for key in base_keys | {"z"}} <= set(osd), sorted(osd)[:8]
    assert osd["param_groups.ws.0.step"] == 13 and osd["param_groups.ws.0.train_mode"] is False

    model2 = TinyModel(problem)
    opt2 = GPA(model2.ws, **hp)
    template = get_optimizer_state_dict(model2, opt2, options=options)
    assert set(template) == set(osd), "a fresh optimizer's state dict has every key a trained one has"
    model2.load_state_dict(msd)
    set_optimizer_state_dict(model2, opt2, optim_state_dict=osd, options=options)
    assert not opt2.training and opt2.base_optimizer.state is opt2.state
    opt2.train()
    train(model2, opt2, problem, 13, 30)
    assert all(torch.equal(a, b) for a, b in zip(weights(ref_model), weights(model2)))


def test_add_param_group_takes_the_construction_path():
    problem = QuadraticProblem(40)
    hp = OPTIMIZERS["SGD"][1]
    both, later = TinyModel(problem), TinyModel(problem)
    ws_both, ws_later = list(both.ws), list(later.ws)
    opt_both = GPA([{"params": ws_both[:2]}, {"params": ws_both[2:], "momentum": 0.5, "mu_x": 0.8}], **hp)
    opt_later = GPA(ws_later[:2], **hp)
    opt_later.add_param_group({"params": ws_later[2:], "momentum": 0.5, "mu_x": 0.8})
    assert opt_later.base_optimizer.param_groups is opt_later.param_groups
    assert all(set(opt_later.state[p]) == set(opt_both.state[q]) for p, q in zip(ws_later, ws_both))
    for t in range(12):
        for model, opt in ((both, opt_both), (later, opt_later)):
            for p, g in zip(model.ws, problem.grads([p.detach() for p in model.ws], t)):
                p.grad = g
            opt.step()
            opt.zero_grad()
    assert [g["step"] for g in opt_later.param_groups] == [12, 12]
    assert all(torch.equal(a, b) for a, b in zip(weights(both), weights(later)))
    opt_both.eval()
    opt_later.eval()
    assert all(torch.equal(a, b) for a, b in zip(weights(both), weights(later)))


def test_add_param_group_runs_the_base_checks_and_keeps_the_rest():
    opt = GPA([torch.nn.Parameter(torch.zeros(3, 2))], base="SGD", momentum=0.9)
    with pytest.raises(ValueError, match="mu_x"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, 2))], "mu_x": 1.5})
    with pytest.raises(ValueError, match="dampening=0"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(4))], "dampening": 0.5})
    muon = GPA([torch.nn.Parameter(torch.zeros(3, 2))], base="Muon")
    with pytest.raises(ValueError, match="Muon only supports 2D"):
        muon.add_param_group({"params": [torch.nn.Parameter(torch.zeros(4))]})
    assert len(muon.param_groups) == 1 and len(muon.state) == 1
    assert len(opt.param_groups) == 1 and len(opt.state) == 1


def test_reset_state_from_params_restarts_the_base_too():
    problem = QuadraticProblem(40)
    model, fresh = TinyModel(problem), TinyModel(problem)
    hp = OPTIMIZERS["AdamW"][1]
    opt = GPA(model.ws, **hp)
    train(model, opt, problem, 0, 5)
    with torch.no_grad():
        for p, q in zip(model.ws, fresh.ws):
            p.copy_(q)
    opt.reset_state_from_params()
    fresh_opt = GPA(fresh.ws, **hp)
    train(model, opt, problem, 0, 10)
    train(fresh, fresh_opt, problem, 0, 10)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(fresh)))


# ---------------------------------------------------------------------- arguments and refusals
def test_base_is_given_as_a_class_a_factory_or_a_name():
    p = torch.nn.Parameter(torch.zeros(3))
    assert type(GPA([p], base="SGD").base_optimizer) is torch.optim.SGD
    assert type(GPA([p], base="torch.optim.RMSprop").base_optimizer) is torch.optim.RMSprop
    assert type(GPA([p], base=torch.optim.Adam).base_optimizer) is torch.optim.Adam
    opt = GPA([p], base=lambda params, **kw: torch.optim.SGD(params, momentum=0.5, **kw), lr=0.3)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["lr"] == 0.3


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(mu_x=1.0), "mu_x"),
        (dict(mu_x=-0.1), "mu_x"),
        (dict(mu_y=1.2), "mu_y"),
        (dict(mu_y=0.0), "mu_y=0"),
        (dict(implementation="triton"), "implementation"),
        (dict(base="NoSuchOptimizer"), "names nothing in torch.optim"),
        (dict(base="no_such_package.Opt"), "names nothing in module 'no_such_package'"),
        (dict(base="Adamax"), "zero_step_creates_state = True"),
        (dict(base="SGD", momentum=0.9, dampening=0.1), "dampening=0"),
        (dict(base="SGD", lr=-1.0), "Invalid learning rate"),
        (dict(base=lambda params, **kw: object()), "not a torch.optim.Optimizer"),
    ],
)
def test_rejects_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPA([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_a_base_may_declare_that_a_zero_step_creates_its_state():
    class DeclaredAdamax(torch.optim.Adamax):
        zero_step_creates_state = True

    GPA([torch.nn.Parameter(torch.zeros(3))], base=DeclaredAdamax)


@pytest.fixture
def two_rank_mesh():
    """A 2-rank device mesh in this one process (a fake process group: collectives do nothing),
    enough to make DTensors with Shard placements."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        yield init_device_mesh("cpu", (2,))
    finally:
        dist.destroy_process_group()


def test_non_elementwise_bases_are_refused_on_sharded_parameters(two_rank_mesh):
    from torch.distributed.tensor import DTensor, Replicate, Shard

    def param(placement):  # a 6 x 4 matrix (the local values do not matter here)
        local = torch.randn(6, 4) if isinstance(placement, Replicate) else torch.randn(6, 4).chunk(2, placement.dim)[0]
        return torch.nn.Parameter(DTensor.from_local(local, two_rank_mesh, [placement], shape=(6, 4), stride=(4, 1)))

    with pytest.raises(ValueError, match=r"Muon is not elementwise.*sharded.*handles_sharded_matrices = True"):
        GPA([param(Shard(0))], base="Muon")
    with pytest.raises(ValueError, match="Adafactor is not elementwise"):
        GPA([param(Shard(1))], base="Adafactor")
    opt = GPA([torch.nn.Parameter(torch.zeros(2, 2))], base="Muon")
    with pytest.raises(ValueError, match="Muon is not elementwise"):
        opt.add_param_group({"params": [param(Shard(0))]})
    assert len(opt.param_groups) == 1

    class WholeMatrixMuon(torch.optim.Muon):  # what the FSDP2 Muon declares
        handles_sharded_matrices = True
        zero_step_creates_state = True

    GPA([param(Shard(0))], base=WholeMatrixMuon)
    GPA([param(Replicate())], base="Muon")  # every rank holds the whole matrix
    GPA([param(Shard(0))], base="AdamW")


def test_sharded_parameters_step_their_local_shards(two_rank_mesh):
    """An elementwise base on Shard(0) DTensor parameters (pointed at z through their local
    tensors) computes on this rank's shard what GPA computes on that part of plain tensors."""
    from torch.distributed.tensor import DTensor, Shard

    def rank0_part(t):  # this rank's (rank 0's) shard; the first dimension splits unevenly (33 = 17 + 16)
        return DTensor.from_local(t.chunk(2)[0].clone(), two_rank_mesh, [Shard(0)], shape=t.shape, stride=t.stride())

    problem = QuadraticProblem(20)
    hp = dict(base="AdamW", mu_x=0.9, mu_y=0.8, **ADAMW)
    dparams = [torch.nn.Parameter(rank0_part(p)) for p in problem.init]
    plain = [torch.nn.Parameter(p.clone()) for p in problem.init]
    dopt, opt = GPA(dparams, **hp), GPA(plain, **hp)
    for t in range(20):
        grads = problem.grads([p.detach() for p in plain], t)
        for p, q, g in zip(dparams, plain, grads):
            q.grad = g
            p.grad = rank0_part(g)
        dopt.step()
        opt.step()
    for mode in ("train", "eval"):
        getattr(dopt, mode)()
        getattr(opt, mode)()
        for p, q in zip(dparams, plain):
            assert torch.equal(p.to_local(), q.detach().chunk(2)[0])
