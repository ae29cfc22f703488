"""How many FSDP2 shards of a Llama flavor are 16-byte aligned: the Triton kernel's fast path.

    python -m torch.distributed.run --nproc_per_node=2 --standalone scripts/shard_alignment.py --flavor 160M

Each rank builds the flavor on the meta device, shards it with TorchTitan's own
``apply_fsdp`` (one FSDP2 unit per transformer block, then the root, as training does),
materialises its shards, builds GPA-AdamW's state (z and the two moments), runs one
forward and backward pass on a few tokens (the gradients are FSDP2's reduce-scatter
output, viewed per parameter), and counts, per kind, the local tensors whose data pointer
is a multiple of 16 bytes. "all five" is what the kernel needs to put a tensor on its
vectorised launch (``triton_kernel.launch_plan``). The counts are per rank; rank 0 prints
one markdown row per rank. CPU/gloo here; the same command runs on GPUs over NCCL.

FSDP2 gives each parameter shard its own allocation, and the gradients of one unit share
one buffer at offsets that are sums of the padded shard sizes: a gradient is aligned when
the padded shard sizes before it in its unit are multiples of 4 float32 elements.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torchtitan.models.llama3 import Transformer
from torchtitan.models.llama3.infra.parallelize import apply_fsdp

from gpa_titan.optim import GPAAdamW
from gpa_titan.optim.triton_kernel import launch_plan
from gpa_titan.titan.cpu_compat import force_sum_reductions, has_accelerator
from gpa_titan.titan.models import FLAVORS, flavor_args

KINDS = ("parameters", "gradients", "z", "exp_avg", "exp_avg_sq")


def aligned(t: torch.Tensor) -> bool:
    return t.data_ptr() % 16 == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flavor", default="160M", choices=sorted(FLAVORS))
    ap.add_argument("--tokens", type=int, default=8, help="sequence length of the one batch (1 sequence)")
    a = ap.parse_args()
    if "RANK" not in os.environ:
        ap.error("run it under torchrun: python -m torch.distributed.run --nproc_per_node=2 --standalone "
                 f"scripts/shard_alignment.py --flavor {a.flavor}")
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if has_accelerator() else torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    world, rank = dist.get_world_size(), dist.get_rank()
    mesh = init_device_mesh(device.type, (world,))
    args = flavor_args(a.flavor)
    with torch.device("meta"):
        model = Transformer(args)
    apply_fsdp(model, mesh, param_dtype=torch.float32, reduce_dtype=torch.float32, pp_enabled=False)
    if device.type == "cpu":
        force_sum_reductions(model)
    model.to_empty(device=device)
    with torch.no_grad():
        model.init_weights(buffer_device=device)
    opt = GPAAdamW(model.parameters(), lr=1e-4, mu_x=0.99, mu_y=0.9, implementation="foreach")
    tokens = torch.randint(0, args.vocab_size, (1, a.tokens), device=device)
    model(tokens).float().square().mean().backward()

    named = [(n, p) for n, p in model.named_parameters() if p.to_local().numel() > 0]  # empty shards launch nothing
    params = [p for _, p in named]
    locals_ = {
        "parameters": [p.to_local() for p in params],
        "gradients": [p.grad.to_local() for p in params],
        **{k: [opt.state[p][k].to_local() for p in params] for k in ("z", "exp_avg", "exp_avg_sq")},
    }
    counts = [sum(aligned(t) for t in locals_[k]) for k in KINDS]
    plan = launch_plan([tuple(locals_[k][i].data_ptr() for k in KINDS) for i in range(len(params))])
    vectorised = sum(len(idx) for flag, idx in plan if flag)
    offenders = [n for (n, _), g in zip(named, locals_["gradients"]) if not aligned(g)][:5]
    row = torch.tensor([len(params), *counts, vectorised], dtype=torch.int64)
    rows = [torch.zeros_like(row) for _ in range(world)]
    dist.all_gather(rows, row)
    names = [None] * world
    dist.all_gather_object(names, offenders)
    if rank == 0:
        print(f"# {a.flavor}: FSDP2 over {world} ranks ({backend}), local shards 16-byte aligned, per rank")
        print("| rank | tensors | " + " | ".join(KINDS) + " | all five (vectorised launch) "
              "| first unaligned gradients |")
        print("|---:|---:|" + "---:|" * (len(KINDS) + 1) + "---|")
        for r, (values, bad) in enumerate(zip(rows, names)):
            v = values.tolist()
            print(f"| {r} | {v[0]} | " + " | ".join(str(x) for x in v[1:]) + f" | {', '.join(bad) or '-'} |")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
