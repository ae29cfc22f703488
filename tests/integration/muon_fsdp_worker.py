"""Run under `torchrun --nproc_per_node=2 muon_fsdp_worker.py RESULTS.json`: Muon on DTensors vs.
one plain copy.

A small Llama-named model (tok_embeddings, layers.N.{wq,w1,w2,gate}, norms, output) whose Muon
matrices have uneven row counts (7 rows: 4 + 3) and one row (rank 1's shard is empty), over a
2-rank gloo mesh, for 10 steps with warmup + cosine:

- "fsdp2 same grads": FSDP2-sharded parameters given, every step, the very gradients the plain
  copy gets (sharded with distribute_tensor): the distributed orthogonalisation (owners,
  all_to_all) must give the plain weights bit for bit.
- "fsdp2 backward": forward and backward through FSDP2, each rank on half of the batch; the
  gradients differ from the plain ones by float rounding, which bfloat16 Newton-Schulz may round
  up to a bfloat16 step of the update.
- "gpa-muon fsdp2 same grads": GPA-Muon (GPA over this Muon) on FSDP2 shards against a plain
  GPA-Muon, given the plain gradients as above: bit for bit as well, in train and eval mode.
- "shard(1) and replicate": DTensor parameters sharded on columns (the gather-everywhere path) or
  replicated (the local path), given the plain copy's gradients.

Rank 0 writes, per case, the worst difference between the weights, the steps, the all_to_all
calls and the bytes it sent to the other rank per step, and what ``communication_bytes_per_step``
predicts.
"""

import json
import math
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

from gpa_titan.optim.gpa_muon import GPAMuon
from gpa_titan.optim.muon import Muon, communication_bytes_per_step, muon_param_groups

STEPS = 10
VOCAB, DIM, HIDDEN = 13, 6, 7
HP = dict(lr=0.02, adamw_lr=3e-3, weight_decay=0.1, adamw_weight_decay=0.01, adjust_lr_fn="match_rms_adamw")


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention_norm = torch.nn.RMSNorm(DIM)
        self.wq = torch.nn.Linear(DIM, DIM, bias=False)
        self.w1 = torch.nn.Linear(DIM, HIDDEN, bias=False)  # 7 rows over 2 ranks: 4 + 3
        self.w2 = torch.nn.Linear(HIDDEN, DIM, bias=True)
        self.gate = torch.nn.Linear(DIM, 1, bias=False)  # 1 row: rank 1's shard is empty

    def forward(self, x):
        x = x + self.wq(self.attention_norm(x))
        return x + self.w2(torch.nn.functional.silu(self.w1(x))) * torch.sigmoid(self.gate(x))


class TinyLlama(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(VOCAB, DIM)
        self.layers = torch.nn.ModuleList(Block() for _ in range(2))
        self.norm = torch.nn.RMSNorm(DIM)
        self.output = torch.nn.Linear(DIM, VOCAB, bias=False)  # 13 rows: 7 + 6

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))


def build() -> TinyLlama:
    torch.manual_seed(0)
    return TinyLlama()


def fsdp(model: TinyLlama, mesh) -> TinyLlama:
    for layer in model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_force_sum_reduction_for_comms(True)  # gloo has no AVG/PREMUL_SUM
    return model


def lr_at(t: int, peak: float) -> float:
    return peak * min(1.0, (t + 1) / 3) * (0.5 + 0.5 * math.cos(math.pi * t / STEPS))


def set_lrs(opt: Muon, t: int) -> None:
    for group in opt.param_groups:
        group["lr"] = lr_at(t, HP["lr"] if group["algorithm"] == "muon" else HP["adamw_lr"])


def tokens_at(t: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (4, 6), generator=torch.Generator().manual_seed(100 + t))


def loss_of(model, tokens, total_rows: int) -> torch.Tensor:
    """Summed over this batch's predictions, divided by the whole batch's count: the ranks' sum
    is the whole batch's mean."""
    logits = model(tokens[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1), reduction="sum") / (
        total_rows * (tokens.shape[1] - 1)
    )


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def worst_difference(sharded, plain) -> float:
    return max((full(a.detach()) - b.detach()).abs().max().item() for a, b in zip(sharded, plain, strict=True))


class CountingAllToAll:
    """Wraps ``dist.all_to_all_single`` to count the calls and the bytes this rank sends to others."""

    def __init__(self, rank: int) -> None:
        self.rank, self.calls, self.sent = rank, 0, 0
        self.original = dist.all_to_all_single

    def __call__(self, output, input, output_split_sizes=None, input_split_sizes=None, group=None, async_op=False):
        self.calls += 1
        self.sent += (sum(input_split_sizes) - input_split_sizes[self.rank]) * input.element_size()
        return self.original(output, input, output_split_sizes, input_split_sizes, group=group, async_op=async_op)


def run_case(name: str, mesh, rank: int, world: int) -> dict:
    make = (lambda ps: GPAMuon(ps, mu_x=0.9, mu_y=0.8, **HP)) if name.startswith("gpa-muon") else (
        lambda ps: Muon(ps, **HP))
    plain = build()
    plain_opt = make(plain.named_parameters())
    model = build()
    if name == "shard(1) and replicate":
        placements = {n: [Shard(1)] if p.ndim == 2 and n.startswith("layers.0") else [Replicate()]
                      for n, p in model.named_parameters()}
        params = [(n, torch.nn.Parameter(distribute_tensor(p.detach(), mesh, placements[n])))
                  for n, p in model.named_parameters()]
    else:
        params = list(fsdp(model, mesh).named_parameters())
    opt = make(params)
    worst = 0.0
    counter = dist.all_to_all_single = CountingAllToAll(rank)
    for t in range(STEPS):
        set_lrs(opt, t)
        set_lrs(plain_opt, t)
        tokens = tokens_at(t)
        loss_of(plain, tokens, tokens.shape[0]).backward()
        if name == "fsdp2 backward":
            half = tokens.shape[0] // world
            loss_of(model, tokens[rank * half:(rank + 1) * half], tokens.shape[0]).backward()
        else:
            for (_, p), q in zip(params, plain.parameters(), strict=True):
                p.grad = distribute_tensor(q.grad, mesh, p.placements)
        opt.step()
        opt.zero_grad()
        plain_opt.step()
        plain_opt.zero_grad()
        worst = max(worst, worst_difference([p for _, p in params], list(plain.parameters())))
    if isinstance(opt, GPAMuon):  # the evaluation weights x too
        opt.eval()
        plain_opt.eval()
        worst = max(worst, worst_difference([p for _, p in params], list(plain.parameters())))
    dist.all_to_all_single = counter.original
    return {"max_diff": worst, "steps": STEPS, "all_to_all_calls": counter.calls,
            "bytes_sent_per_step": counter.sent / STEPS}


def main(results_path: str) -> int:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results = {name: run_case(name, mesh, rank, world)
               for name in ("fsdp2 same grads", "fsdp2 backward", "gpa-muon fsdp2 same grads",
                            "shard(1) and replicate")}
    muon = next(g for g in muon_param_groups(build().named_parameters()) if g["algorithm"] == "muon")
    shapes = [tuple(p.shape) for _, p in muon["params"]]
    results["communication"] = communication_bytes_per_step(shapes, world)._asdict()
    if rank == 0:
        with open(results_path, "w") as f:
            json.dump(results, f, indent=2)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as distributed_optimizer_worker.py: no C++ static destructors after gloo
