"""Muon (gpa_titan.optim.muon) against torch.optim.Muon + torch.optim.AdamW, its parameter split,
state_dict round trips, argument checks and the communication figures. The sharded path runs in
tests/integration/test_muon_fsdp.py (2 gloo ranks)."""

import copy

import pytest
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from gpa_titan.optim.gpa import GPA
from gpa_titan.optim.gpa_muon import GPAMuon
from gpa_titan.optim.muon import (
    Muon,
    adjusted_lr,
    assign_owners,
    communication_bytes_per_step,
    muon_param_groups,
    orthogonalize,
    shard_rows,
)
from gpa_titan.optim.reference import ReferenceGPA
from helpers import warmup_cosine


class Block(torch.nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.attention_norm = torch.nn.RMSNorm(dim)
        self.wq = torch.nn.Linear(dim, dim, bias=False)
        self.w1 = torch.nn.Linear(dim, hidden, bias=True)  # a bias: AdamW
        self.w2 = torch.nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        x = x + self.wq(self.attention_norm(x))
        return x + self.w2(torch.nn.functional.silu(self.w1(x)))


class TinyLlama(torch.nn.Module):
    """TorchTitan Llama's parameter names: tok_embeddings, layers.N.*, norm, output."""

    def __init__(self, vocab: int = 13, dim: int = 8, hidden: int = 12, n_layers: int = 2) -> None:
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList(Block(dim, hidden) for _ in range(n_layers))
        self.norm = torch.nn.RMSNorm(dim)
        self.output = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))


def make_model(seed: int = 0) -> TinyLlama:
    torch.manual_seed(seed)
    model = TinyLlama()
    with torch.no_grad():  # non-trivial norm weights
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def backward(model: TinyLlama, t: int) -> None:
    gen = torch.Generator().manual_seed(100 + t)
    tokens = torch.randint(0, 13, (4, 6), generator=gen)
    logits = model(tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits.reshape(-1, 13), tokens[:, 1:].reshape(-1)).backward()


def train(model, optimizers, start: int, stop: int, total: int = 20, peaks=(2e-2, 3e-3)) -> None:
    """Steps ``start..stop`` with warmup + cosine: AdamW's peak for "adamw" groups and torch's
    AdamW, Muon's for the rest."""
    for t in range(start, stop):
        for opt in optimizers:
            for group in opt.param_groups:
                adamw = group.get("algorithm") == "adamw" or isinstance(opt, torch.optim.AdamW)
                peak = peaks[1] if adamw else peaks[0]
                group["lr"] = warmup_cosine(t, total, peak)
        backward(model, t)
        for opt in optimizers:
            opt.step()
            opt.zero_grad()


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_split_follows_ndim_and_torchtitan_names():
    groups = muon_param_groups(make_model().named_parameters())
    names = {g["algorithm"]: [n for n, _ in g["params"]] for g in groups}
    assert names["muon"] == [f"layers.{i}.{w}.weight" for i in range(2) for w in ("wq", "w1", "w2")]
    assert set(names["adamw"]) == {
        "tok_embeddings.weight", "output.weight", "norm.weight",
        *(f"layers.{i}.{n}" for i in range(2) for n in ("attention_norm.weight", "w1.bias")),
    }
    # a wrapper's prefix does not hide a name; without names only ndim decides
    prefixed = muon_param_groups([("_orig_mod.output.weight", torch.zeros(3, 2))])
    assert prefixed[0]["algorithm"] == "adamw"
    assert [g["algorithm"] for g in muon_param_groups([torch.zeros(3, 2), torch.zeros(3)])] == ["muon", "adamw"]


def test_torch_newton_schulz_runs_in_bfloat16():
    """Why updates may travel in bfloat16: torch's Newton-Schulz casts its input first and
    returns bfloat16, so casting before the all_to_all changes nothing."""
    update = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    out = orthogonalize(update, (3.4445, -4.775, 2.0315), 5, 1e-7)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, orthogonalize(update.bfloat16(), (3.4445, -4.775, 2.0315), 5, 1e-7))


@pytest.mark.parametrize(
    "hp",
    [
        dict(),
        dict(nesterov=False, momentum=0.9, adjust_lr_fn="match_rms_adamw", weight_decay=0.05),
        dict(adjust_lr_fn="original", ns_steps=3, ns_coefficients=(3.0, -3.2, 1.2)),
    ],
)
def test_equals_torch_muon_plus_adamw(hp):
    """Bitwise: Muon == torch.optim.Muon on the hidden matrices + torch.optim.AdamW on the rest,
    over 20 warmup + cosine steps."""
    ours, theirs = make_model(), make_model()
    opt = Muon(ours.named_parameters(), betas=(0.9, 0.95), eps=1e-8, adamw_weight_decay=0.01, **hp)
    split = {g["algorithm"]: [p for _, p in g["params"]] for g in muon_param_groups(theirs.named_parameters())}
    torch_hp = {("eps" if k == "ns_eps" else k): v for k, v in hp.items()}
    reference = [
        torch.optim.Muon(split["muon"], **torch_hp),
        torch.optim.AdamW(split["adamw"], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01),
    ]
    train(ours, [opt], 0, 20)
    train(theirs, reference, 0, 20)
    for a, b in zip(weights(ours), weights(theirs), strict=True):
        assert torch.equal(a, b)
    assert weights(ours)[1].ne(make_model().layers[0].attention_norm.weight).any()


def test_state_dict_round_trip_and_dcp_path():
    """Stopping after 7 steps, saving (torch state_dict, or TorchTitan's DCP flattening by FQN)
    and resuming in a new optimizer gives the uninterrupted run's weights."""
    straight = make_model()
    opt = Muon(straight.named_parameters(), adamw_lr=1e-3)
    train(straight, [opt], 0, 14)
    for save in ("torch", "dcp"):
        first = make_model()
        opt1 = Muon(first.named_parameters(), adamw_lr=1e-3)
        train(first, [opt1], 0, 7)
        resumed = copy.deepcopy(first)
        opt2 = Muon(resumed.named_parameters(), adamw_lr=1e-3)
        if save == "torch":
            opt2.load_state_dict(copy.deepcopy(opt1.state_dict()))
        else:
            options = StateDictOptions(flatten_optimizer_state_dict=True)
            flat = get_optimizer_state_dict(first, opt1, options=options)
            assert "state.layers.0.wq.weight.momentum_buffer" in flat
            assert "state.output.weight.exp_avg_sq" in flat
            set_optimizer_state_dict(resumed, opt2, copy.deepcopy(flat), options=options)
        train(resumed, [opt2], 7, 14)
        for a, b in zip(weights(resumed), weights(straight), strict=True):
            assert torch.equal(a, b), save


def test_state_is_eager_and_named_like_torch():
    model = make_model()
    opt = Muon(model.named_parameters())
    assert set(opt.state[model.layers[0].wq.weight]) == {"momentum_buffer"}
    assert set(opt.state[model.output.weight]) == {"step", "exp_avg", "exp_avg_sq"}
    assert Muon.handles_sharded_matrices


def test_bfloat16_momentum_buffer_is_not_overwritten():
    """torch's Newton-Schulz divides a bfloat16 input in place; without Nesterov the update is the
    momentum buffer itself, so Muon must hand it a copy."""
    w = torch.nn.Parameter(torch.zeros(4, 3, dtype=torch.bfloat16))
    opt = Muon([w], momentum=0.5, nesterov=False)
    w.grad = torch.full((4, 3), 2.0, dtype=torch.bfloat16)
    opt.step()
    assert torch.equal(opt.state[w]["momentum_buffer"], torch.full((4, 3), 1.0, dtype=torch.bfloat16))


def test_argument_errors_name_the_key():
    w, b = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="algorithm.*muon_param_groups"):
        Muon([{"params": [w]}])
    with pytest.raises(ValueError, match="2-D matrices only"):
        Muon([{"params": [b], "algorithm": "muon"}])
    with pytest.raises(ValueError, match="momentum=1.0"):
        Muon([w], momentum=1.0)
    with pytest.raises(ValueError, match="adjust_lr_fn"):
        Muon([w], adjust_lr_fn="spectral")
    with pytest.raises(ValueError, match="ns_steps=100"):
        Muon([w], ns_steps=100)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        Muon([b], betas=(0.9, 1.0))
    opt = Muon([w])
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": [b], "algorithm": "adamw", "eps": 0.0})
    assert len(opt.param_groups) == 1


def test_config_values_are_what_the_classes_take():
    """A TOML config has no None: adjust_lr_fn is a name ("original" is torch's None) and
    adamw_lr / adamw_weight_decay = -1 mean Muon's lr / weight_decay; the classes take exactly that."""
    w, b = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"adjust_lr_fn=None .* one of \['original', 'match_rms_adamw'\]"):
        Muon([w], adjust_lr_fn=None)
    with pytest.raises(ValueError, match=r"adamw_lr=-0.5 .* \(or -1 for the same as Muon's lr\)"):
        Muon([w], adamw_lr=-0.5)
    with pytest.raises(ValueError, match=r"adamw_weight_decay=-2 .* \(or -1 for the same as Muon's weight_decay\)"):
        GPAMuon([b], adamw_weight_decay=-2)
    groups = {g["algorithm"]: g for g in Muon([w, b], lr=0.02, weight_decay=0.1).param_groups}
    assert (groups["adamw"]["lr"], groups["adamw"]["weight_decay"]) == (0.02, 0.1)
    groups = {g["algorithm"]: g for g in Muon([w, b], lr=0.02, adamw_lr=0.0, adamw_weight_decay=0.0).param_groups}
    assert (groups["adamw"]["lr"], groups["adamw"]["weight_decay"], groups["muon"]["lr"]) == (0.0, 0.0, 0.02)
    assert adjusted_lr(1.0, "original", (8, 2)) == torch.optim._muon._adjust_lr(1.0, None, torch.Size((8, 2)))
    with pytest.raises(TypeError):  # code-only settings are keyword-only (not [optimizer] fields)
        Muon([w], 1e-3, 0.1, 0.95, True, 5, "original", -1.0, -1.0, (0.9, 0.95), 1e-8, (3.0, -3.2, 1.2))


def test_owners_and_communication_bytes():
    assert shard_rows(7, 2) == [4, 3]
    assert shard_rows(1, 2) == [1, 0]
    assert shard_rows(5, 4) == [2, 2, 1, 0]
    # largest cost first to the least-loaded rank: (8, 8) -> 0, (8, 4) -> 1, (4, 4) -> 1
    assert assign_owners([(4, 4), (8, 8), (8, 4)], 2) == [1, 0, 1]
    comm = communication_bytes_per_step([(4, 4), (8, 8), (8, 4)], 2)
    # gather: rank 1 sends rank 0 its half of (8, 8) (4*8), rank 0 sends rank 1 its halves of (4, 4)
    # and (8, 4) (2*4 + 4*4); the results' halves go back the other way; bfloat16: 2 bytes
    assert comm.sent == (2 * (2 * 4 + 4 * 4 + 4 * 8),) * 2
    assert comm.received == comm.sent
    assert comm.all_gather_received == (2 * (2 * 4 + 4 * 8 + 4 * 4),) * 2
    assert comm.total == sum(comm.sent)
    assert communication_bytes_per_step([(4, 4)], 1).total == 0


# ---------------------------------------------------------------------- GPA-Muon
def test_gpa_muon_with_mu_x_zero_is_muon_bit_for_bit():
    """mu_x = 0: x = y = z, so GPA-Muon is Muon (and AdamW on the rest), through eval() too."""
    a, b = make_model(), make_model()
    gpa = GPAMuon(a.named_parameters(), lr=2e-2, adamw_lr=3e-3, mu_x=0.0, mu_y=0.9)
    muon = Muon(b.named_parameters(), lr=2e-2, adamw_lr=3e-3)
    train(a, [gpa], 0, 8)
    train(b, [muon], 0, 8)
    gpa.eval()
    assert all(torch.equal(p, q) for p, q in zip(weights(a), weights(b)))


def test_gpa_muon_is_gpa_over_muon_and_keeps_muons_state_per_parameter():
    a, b = make_model(), make_model()
    hp = dict(lr=2e-2, adamw_lr=3e-3, momentum=0.9, mu_x=0.95, mu_y=0.8)
    named = GPAMuon(a.named_parameters(), **hp)
    generic = GPA(b.named_parameters(), base=Muon, **hp)
    train(a, [named], 0, 8)
    train(b, [generic], 0, 8)
    assert all(torch.equal(p, q) for p, q in zip(weights(a), weights(b)))
    assert set(named.state[a.layers[0].wq.weight]) == {"momentum_buffer", "z"}
    assert set(named.state[a.output.weight]) == {"step", "exp_avg", "exp_avg_sq", "z"}


class _Matrices:
    """The quadratic problem of tests/helpers.py over 2-D weights only (Muon's domain)."""

    shapes = [(8, 4), (4, 6)]

    def __init__(self, steps: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.init = [torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes]
        self.a = [torch.rand(s, generator=gen, dtype=torch.float64) + 0.5 for s in self.shapes]
        self.noise = [[0.3 * torch.randn(s, generator=gen, dtype=torch.float64) for s in self.shapes]
                      for _ in range(steps)]

    def grads(self, weights, t):
        return [a * w.detach().double() + n for w, a, n in zip(weights, self.a, self.noise[t])]


@pytest.mark.parametrize("mu_x,mu_y", [(0.9967, 0.9), (0.9, 0.5)])
def test_gpa_muon_matches_the_three_sequence_reference(mu_x, mu_y):
    """100 warmup+cosine steps in float64 against Algorithm 1 written out (x, y, z) over
    torch.optim.Muon: y during training and x after eval()."""
    steps = 100
    problem = _Matrices(steps)
    params = [torch.nn.Parameter(p.clone()) for p in problem.init]
    opt = GPAMuon(params, momentum=0.95, weight_decay=0.1, mu_x=mu_x, mu_y=mu_y)
    ref = ReferenceGPA(problem.init, torch.optim.Muon, mu_x=mu_x, mu_y=mu_y, momentum=0.95, weight_decay=0.1)
    worst = 0.0
    for t in range(steps):
        lr = warmup_cosine(t, steps, 2e-2)
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, problem.grads(params, t)):
            p.grad = g
        opt.step()
        ref.step(problem.grads(ref.training_weights(), t), lr)
        worst = max(worst, max((p.detach() - r).abs().max().item() for p, r in zip(params, ref.training_weights())))
    opt.eval()
    worst_x = max((p.detach() - r).abs().max().item() for p, r in zip(params, ref.evaluation_weights()))
    assert worst < 1e-10 and worst_x < 1e-10, (worst, worst_x)
